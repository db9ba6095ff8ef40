#!/usr/bin/env bash
# Set up, then run the bundled example stack: up, status, health.
# Stop it afterwards with: .venv/bin/opsctl -c examples/quickstart down
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
opsctl=.venv/bin/opsctl
$opsctl -c examples/quickstart up
$opsctl -c examples/quickstart status
$opsctl -c examples/quickstart health
