#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian or Ubuntu machine: the system services opsctl
# drives (redis-server) and a virtual environment in .venv with opsctl installed.
# Usage: scripts/setup.sh [--dev]   (--dev adds the test and lint tools)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "${1:-}" = "--dev" ]; then
    # The tests run a real Pushgateway and restic, check rendered rules with promtool, and
    # compare restores through the zstd program with the library's.
    command -v prometheus-pushgateway >/dev/null 2>&1 || need_apt+=(prometheus-pushgateway)
    command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
    command -v restic >/dev/null 2>&1 || need_apt+=(restic)
    command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing ${need_apt[*]} with apt-get" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    # Debian starts its own redis-server on 6379; opsctl runs its own on the configured port.
    # Only promtool is wanted from Debian's prometheus: its daemons would listen on every
    # address (9090, 9091; tests start their own Pushgateway on loopback).
    if command -v systemctl >/dev/null 2>&1; then
        for unit in redis-server prometheus prometheus-node-exporter prometheus-pushgateway; do
            if systemctl is-active --quiet "$unit" 2>/dev/null; then
                $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
            fi
        done
    fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "opsctl needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
    exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".${extras}"
