#!/usr/bin/env bash
# Make a Docker Engine answer on this machine for the docker tests: install Debian's
# docker.io (with mmdebstrap and zstd, which build the test base image) where missing,
# and start dockerd without a bridge, so containers use host networking and no traffic
# goes to Docker's private addresses. Exits non-zero when no engine can be had; the
# docker tests then skip and say why.
set -uo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
if [ ${#need[@]} -gt 0 ]; then
    echo "Installing ${need[*]} with apt-get" >&2
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null || exit 1
fi
log=${TMPDIR:-/tmp}/opsctl-dockerd.log
$sudo sh -c "nohup dockerd --iptables=false --ip6tables=false --bridge=none >'$log' 2>&1 &"
for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 0.5
done
echo "dockerd did not start; its log ends:" >&2
tail -n 5 "$log" >&2
exit 1
