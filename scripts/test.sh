#!/usr/bin/env bash
# Set up, then run every check this project has: lint, format, types, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
bin=.venv/bin

$bin/ruff check src tests bench examples
$bin/ruff format --check src tests bench examples
$bin/mypy
# pytest exits 5 when it collected no test: that is a failure here, not a pass.
set +e
$bin/pytest "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
    echo "pytest collected no tests" >&2
    exit 1
fi
exit $status
