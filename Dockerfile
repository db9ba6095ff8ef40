# The unified production image: supervisord behind tini runs the stack's services, and
# opsctl inside it renders nothing and starts nothing on its own: the opsctl on the host
# creates the container and controls supervisord over a bind-mounted unix socket.
#
# Build with scripts/build-image.sh, which first collects the wheels of opsctl and its
# dependencies into build/wheels for the image's Python and architecture, and, given a
# project (OPSCTL_CONFIG), the wheels of each service's requirements into build/venvs/NAME:
# every service with its own Python environment gets one at /opt/venvs/NAME, built here.
#
# BASE_IMAGE defaults to NVIDIA's CUDA runtime on Ubuntu 24.04 (Python 3.12), which is
# published for amd64 and arm64; on a GH200 (Grace, aarch64) build on the host itself or
# with --platform linux/arm64 and the same tag. Any Debian-like image with Python 3.11 or
# newer works.
ARG BASE_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ARG DEBIAN_FRONTEND=noninteractive
# Install only what the base lacks, so a base that already has everything needs no network.
RUN set -e; missing=""; \
    for package in python3 python3-venv tini redis-server procps ca-certificates; do \
        dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $missing \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY build/wheels/ /tmp/wheels/
COPY build/venvs/ /tmp/venvs/
RUN python3 -m venv /opt/opsctl \
    && /opt/opsctl/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels opsctl \
    && for wheels in /tmp/venvs/*/; do \
        [ -d "$wheels" ] || continue; \
        name=$(basename "$wheels"); \
        python3 -m venv "/opt/venvs/$name" \
        && "/opt/venvs/$name/bin/pip" install --no-cache-dir --no-index --no-deps "$wheels"*.whl \
        || exit 1; \
    done \
    && rm -rf /tmp/wheels /tmp/venvs

ENV PATH="/opt/opsctl/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    OPSCTL_RUNTIME__KIND=local

# Healthy unless `opsctl health` says unhealthy (exit 1); degraded (3) is still healthy.
HEALTHCHECK --interval=30s --timeout=20s --start-period=30s \
    CMD ["sh", "-c", "opsctl -q health >/dev/null 2>&1; [ $? -ne 1 ]"]

ENTRYPOINT ["tini", "--"]
CMD ["opsctl", "--help"]
