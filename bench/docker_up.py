"""How long `opsctl up` takes to bring the unified container to healthy, against
`docker run` of the same image and configuration plus polling the same health check.

Both sides start Redis under supervisord in a host-network container from the project's
image (built on the local test base by scripts/docker-test-images.sh) and end when Redis
answers PING. The reference runs supervisord with the programs set to start on their own,
as a hand-written `docker run` would, and polls PING every 50 ms. Each round starts from
no container. Prints the medians and their ratio. Goal: 1.2 or less.

    .venv/bin/python bench/docker_up.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.2
PORT = 26479
CONFIG = """
[project]
name = "bench"

[runtime]
kind = "docker"

[container]
image = "{image}"

[services.redis]
command = "redis-server --port {{port}} --bind 127.0.0.1 --save '' --appendonly no"
port = {port}

[[services.redis.health]]
kind = "redis"
"""


def run(argv: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    """Run a command; stop the benchmark with its output when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **options)  # type: ignore[call-overload]
    if done.returncode != 0:
        message = (
            f"error: {' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr[-1500:]}"
        )
        raise SystemExit(message)
    return done


def time_opsctl(folder: Path) -> float:
    """Seconds for `opsctl up` (it returns once the health checks pass)."""
    begin = time.perf_counter()
    run([sys.executable, "-m", "opsctl", "-c", str(folder), "up"])
    elapsed = time.perf_counter() - begin
    run([sys.executable, "-m", "opsctl", "-c", str(folder), "down"])
    return elapsed


def time_docker_run(folder: Path, image: str, conf: Path) -> float:
    """Seconds for `docker run` of the same image and conf, then PING until it answers."""
    import redis

    begin = time.perf_counter()
    run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            "opsctl-bench-reference",
            "--network",
            "host",
            "-v",
            f"{folder}:{folder}",
            "--entrypoint",
            "tini",
            image,
            "--",
            "supervisord",
            "-n",
            "-c",
            str(conf),
        ]
    )
    client = redis.Redis(port=PORT, socket_connect_timeout=1, socket_timeout=1)
    while True:
        try:
            if client.ping():
                break
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(0.05)
    elapsed = time.perf_counter() - begin
    run(["docker", "rm", "-f", "opsctl-bench-reference"])
    return elapsed


def reference_conf(folder: Path) -> Path:
    """The same supervisord.conf opsctl renders, with the programs starting on their own."""
    from opsctl.config import load_project
    from opsctl.runtime import Stack, get_runtime, render_supervisord_conf

    runtime = get_runtime(load_project(folder))
    Stack(runtime).write_state()
    conf = render_supervisord_conf(
        runtime.project, runtime.paths, launcher=runtime.launcher, daemon=False, autostart=True
    )
    path = folder / "reference-supervisord.conf"
    path.write_text(conf)
    return path


def main() -> int:
    """Build the images, time both ways round by round, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds")
    rounds = parser.parse_args().rounds

    run([str(ROOT / "scripts" / "docker-engine.sh")])
    image = run([str(ROOT / "scripts" / "docker-test-images.sh")], cwd=ROOT).stdout.split()[-1]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "opsctl.toml").write_text(CONFIG.format(image=image, port=PORT))
        conf = reference_conf(folder)
        time_opsctl(folder)  # warm-up: caches, the first container
        opsctl_times, reference_times = [], []
        for _ in range(rounds):
            opsctl_times.append(time_opsctl(folder))
            reference_times.append(time_docker_run(folder, image, conf))

    opsctl_median = statistics.median(opsctl_times)
    reference_median = statistics.median(reference_times)
    ratio = opsctl_median / reference_median
    print(
        f"opsctl up to healthy:        median {opsctl_median * 1000:7.0f} ms over {rounds} rounds"
    )
    print(f"docker run + polling PING:   median {reference_median * 1000:7.0f} ms")
    print(f"ratio {ratio:.2f}; goal {GOAL} or less: {'PASS' if ratio <= GOAL else 'ABOVE GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
