#!/usr/bin/env bash
# Build (or reuse) the images the docker tests run: a Debian base made with mmdebstrap,
# since no registry can be reached, and the project's Dockerfile built on top of it.
# Both are cached by a key made from what they are built from. Prints the project
# image's tag on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${OPSCTL_TEST_CACHE:-$HOME/.cache/opsctl-test}
mkdir -p "$cache"

packages="python3,python3-venv,tini,redis-server,procps,ca-certificates"
recipe="bookworm apt merged-usr eatmydata $packages nodocs"
base_key=$(printf '%s' "$recipe" | sha256sum | cut -c1-12)
base="opsctl-test-base:$base_key"
if ! docker image inspect "$base" >/dev/null 2>&1; then
    archive="$cache/base-$base_key.tar.zst"
    if [ ! -s "$archive" ]; then
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        hooks=/usr/share/mmdebstrap/hooks
        # Write to a file and check the status first: a failed producer piped into
        # docker import would still tag an empty image.
        mmdebstrap --quiet --variant=apt --hook-dir="$hooks/merged-usr" --hook-dir="$hooks/eatmydata" \
            --include="$packages" \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            bookworm "$work/rootfs.tar" >&2
        zstd -q -T0 -3 "$work/rootfs.tar" -o "$archive.tmp" && mv "$archive.tmp" "$archive"
    fi
    zstd -q -d -c "$archive" | docker import - "$base" >/dev/null
fi

image_key=$(cat Dockerfile pyproject.toml $(git ls-files src 2>/dev/null || find src -type f -name '*.py' | sort) | sha256sum | cut -c1-12)
image="opsctl-unified:test-$image_key"
if ! docker image inspect "$image" >/dev/null 2>&1; then
    BASE_IMAGE="$base" scripts/build-image.sh "$image" >&2
fi
echo "$image"
