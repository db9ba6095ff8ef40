#!/usr/bin/env bash
# Build the unified image: collect wheels for opsctl and its dependencies, then build the
# Dockerfile with them (the image build itself downloads nothing for Python).
#
# Usage: scripts/build-image.sh [TAG]            (default tag: opsctl-unified:latest)
# Environment:
#   BASE_IMAGE       the base image (default: the Dockerfile's CUDA runtime image)
#   IMAGE_PYTHON     the base image's Python as X.Y, when it differs from this host's
#   IMAGE_PLATFORM   the wheel platform tag when the image's architecture differs,
#                    e.g. manylinux2014_aarch64 for a GH200
#   OPSCTL_CONFIG    a project whose services' Python environments the image builds
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-opsctl-unified:latest}
repo=$PWD
python=$(command -v "${PYTHON:-python3}")
[ -x .venv/bin/python ] && python=$repo/.venv/bin/python

rm -rf build/wheels build/venvs
mkdir -p build/wheels build/venvs
if [ -n "${OPSCTL_CONFIG:-}" ]; then
    # The wheels of each service environment's requirements, resolved from the project's
    # root as pip resolves them there, one folder per service.
    "$python" - "$OPSCTL_CONFIG" <<'PY' |
import sys
from pathlib import Path
from opsctl.config import load_project
from opsctl.venvs import image_requirements
project = load_project(Path(sys.argv[1]), lenient=True)
for name, requirements in image_requirements(project).items():
    print(name, project.root, requirements, sep="\t")
PY
    while IFS=$'\t' read -r name root requirements; do
        (cd "$root" && "$python" -m pip wheel -q -w "$repo/build/venvs/$name" -r "$requirements")
    done
fi
"$python" -m pip wheel -q --no-deps -w build/wheels .
host_python=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ -n "${IMAGE_PYTHON:-}${IMAGE_PLATFORM:-}" ] && [ "${IMAGE_PYTHON:-$host_python}" != "$host_python" -o -n "${IMAGE_PLATFORM:-}" ]; then
    platform=${IMAGE_PLATFORM:-manylinux2014_$(uname -m)}
    "$python" -m pip download -q --only-binary=:all: -d build/wheels \
        --python-version "${IMAGE_PYTHON:-$host_python}" --platform "$platform" \
        --platform "manylinux_2_28_${platform##*_}" --platform "manylinux_2_17_${platform##*_}" \
        build/wheels/opsctl-*.whl
else
    # redis needs async-timeout on Python before 3.11.3, which an image may have while
    # this host has a later 3.11: include it so the image resolves either way.
    "$python" -m pip wheel -q -w build/wheels build/wheels/opsctl-*.whl 'async-timeout>=4.0.3'
fi

args=(--network host --force-rm -t "$tag")
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
DOCKER_BUILDKIT=0 docker build "${args[@]}" .
