"""How close ``verify`` runs 200 mixed checks to the time of its slowest single check.

Builds a project whose ``[[verify.checks]]`` hold 200 checks: HTTP against a local server
that answers after 100 ms, TCP connects, files and commands (50 of each). Runs the verify
engine in this process (``run_verify``, what ``opsctl verify`` calls, without interpreter
start-up) and divides its median wall time by the median wall time of the slowest check
run alone (one HTTP check). Goal: 1.3 or less.

    .venv/bin/python bench/verify_parallel.py [--rounds N]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _slow_http import start_slow_server
from opsctl.checks.verify import run_verify
from opsctl.config import load_project
from opsctl.runtime import get_runtime

GOAL = 1.3
ANSWER_DELAY_SECONDS = 0.1
EACH_KIND = 50


def write_config(folder: Path, *, http_port: int, tcp_port: int, count: int) -> Path:
    """Write an opsctl.toml with ``count`` checks of each kind; return its path."""
    lines = ["[verify]", "concurrency = 256", ""]
    for index in range(count):
        (folder / f"file{index}.txt").write_text("ready\n")
        lines += [
            "[[verify.checks]]",
            f'name = "http {index}"',
            'kind = "http"',
            f'url = "http://127.0.0.1:{http_port}/{index}"',
            "[[verify.checks]]",
            f'name = "tcp {index}"',
            'kind = "tcp"',
            f"port = {tcp_port}",
            "[[verify.checks]]",
            f'name = "file {index}"',
            'kind = "file"',
            f'path = "file{index}.txt"',
            'contains = "ready"',
            "[[verify.checks]]",
            f'name = "command {index}"',
            'kind = "command"',
            'argv = ["true"]',
        ]
    config = folder / "opsctl.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def time_verify(config: Path, *, only: list[str], rounds: int) -> tuple[float, int]:
    """Return the median wall seconds of ``run_verify`` over ``rounds`` and the check count."""
    project = load_project(config)
    runtime = get_runtime(project)
    run_verify(project, runtime, only=only)  # warm-up: imports, the shared HTTP client
    times = []
    count = 0
    for _ in range(rounds):
        begin = time.perf_counter()
        report = run_verify(project, runtime, only=only)
        times.append(time.perf_counter() - begin)
        count = len(report.checks)
        if report.status != "pass":
            failed = [c.name + ": " + c.detail for c in report.checks if c.status != "pass"]
            message = f"error: verify failed: {failed[:3]}"
            raise SystemExit(message)
    return statistics.median(times), count


def main() -> int:
    """Start the local servers, time both runs and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds")
    rounds = parser.parse_args().rounds

    server, http_port = start_slow_server(ANSWER_DELAY_SECONDS)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = write_config(
                Path(folder),
                http_port=http_port,
                tcp_port=listener.getsockname()[1],
                count=EACH_KIND,
            )
            single, _ = time_verify(config, only=["http 0"], rounds=rounds)
            total, count = time_verify(config, only=["checks"], rounds=rounds)
    finally:
        server.kill()
        server.wait()
        listener.close()

    ratio = total / single
    print(f"{count} checks: median {total * 1000:.1f} ms")
    print(f"slowest check alone (http): median {single * 1000:.1f} ms")
    print(f"ratio {ratio:.2f}; goal {GOAL} or less: {'PASS' if ratio <= GOAL else 'ABOVE GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
