"""What ``opsctl monitor`` costs while it watches a stack: CPU share of one core and peak
memory, against the goals (2 % or less, 80 MB or less).

Starts a real stack under supervisord (``opsctl up``): an HTTP server, a redis-server and
an idle worker, with 50 health checks between them (15 HTTP, 10 TCP, 10 Redis, 10
commands, 5 disk). Runs ``opsctl monitor --interval 5`` as its own process, scraped over
HTTP every 15 s as Prometheus would, for ``--duration`` seconds (120 by default), then
reads the monitor's CPU time (utime + stime, and with the commands it ran, cutime +
cstime) and VmHWM from /proc, and stops everything.

    .venv/bin/python bench/monitor.py [--duration 120] [--interval 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CPU_GOAL_PERCENT = 2.0
RSS_GOAL_MB = 80.0
SCRAPE_EVERY_SECONDS = 15.0
_OPSCTL = [sys.executable, "-m", "opsctl"]


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:
            return port


def write_project(folder: Path, *, http_port: int, redis_port: int) -> Path:
    """An opsctl.toml with three services and 50 health checks; return its path."""
    (folder / "www").mkdir()
    (folder / "www" / "index.html").write_text("ok\n")
    lines = [
        "[project]",
        'name = "bench"',
        "[redis]",
        'service = "cache"',
        "[monitoring]",
        "interval_seconds = 5",
        f'disk = {{ paths = ["{folder}"] }}',
        "[services.web]",
        f'command = ["{sys.executable}", "-m", "http.server", "{http_port}",'
        f' "--bind", "127.0.0.1", "--directory", "{folder / "www"}"]',
        f"port = {http_port}",
        "[services.cache]",
        f"command = \"redis-server --port {redis_port} --bind 127.0.0.1 --save ''"
        f' --appendonly no --dir {folder}"',
        f"port = {redis_port}",
        "[services.worker]",
        'command = "sleep 100000"',
    ]
    checks: list[tuple[str, str]] = []
    checks += [
        ("web", f'kind = "http"\nname = "http {i}"\nurl = "http://127.0.0.1:{http_port}/"')
        for i in range(15)
    ]
    checks += [("web", f'kind = "tcp"\nname = "tcp {i}"\nport = {http_port}') for i in range(10)]
    checks += [("cache", f'kind = "redis"\nname = "redis {i}"') for i in range(10)]
    checks += [
        ("worker", f'kind = "command"\nname = "command {i}"\nargv = ["true"]') for i in range(10)
    ]
    checks += [("worker", f'kind = "disk"\nname = "disk {i}"\npath = "{folder}"') for i in range(5)]
    for service, body in checks:
        lines += [f"[[services.{service}.health]]", body]
    config = folder / "opsctl.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The process's own CPU seconds, and with its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    children = (int(fields[13]) + int(fields[14])) / ticks
    return own, own + children


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scrape(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310
            return len(answer.read())
    except OSError:
        return 0


def run(folder: Path, *, duration: float, interval: float) -> None:
    config = write_project(folder, http_port=free_port(), redis_port=free_port())
    opsctl = [*_OPSCTL, "-q", "-c", str(config)]
    subprocess.run([*opsctl, "up"], check=True)
    metrics_port = free_port()
    log = (folder / "monitor.log").open("wb")
    monitor = subprocess.Popen(
        [*opsctl, "monitor", "--interval", str(interval), "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        # Start-up (imports, first cycle) is not the steady cost the goal is about.
        time.sleep(interval + 2)
        own_start, all_start = cpu_seconds(monitor.pid)
        begin = time.monotonic()
        size = 0
        while time.monotonic() - begin < duration:
            size = scrape(metrics_port) or size
            time.sleep(min(SCRAPE_EVERY_SECONDS, max(duration - (time.monotonic() - begin), 0)))
        wall = time.monotonic() - begin
        own_end, all_end = cpu_seconds(monitor.pid)
        peak = peak_rss_mb(monitor.pid)
        cycles = scrape_cycles(metrics_port)
    finally:
        monitor.send_signal(signal.SIGTERM)
        code = monitor.wait(timeout=60)
        log.close()
        subprocess.run([*opsctl, "down"], check=False)

    own = 100 * (own_end - own_start) / wall
    total = 100 * (all_end - all_start) / wall
    print(
        f"monitor: 50 checks (+3 process, +1 disk), interval {interval:g} s, {wall:.0f} s measured"
    )
    print(f"cycles completed: {cycles}; /metrics size: {size} bytes; exit on SIGTERM: {code}")
    print(
        f"CPU of one core, monitor process:        {own:.2f} % (goal <= {CPU_GOAL_PERCENT:g} %,"
        f" ratio {own / CPU_GOAL_PERCENT:.2f})"
    )
    print(
        f"CPU of one core, with commands it ran:   {total:.2f} %"
        f" (ratio {total / CPU_GOAL_PERCENT:.2f})"
    )
    print(
        f"peak RSS (VmHWM):                        {peak:.1f} MB (goal <= {RSS_GOAL_MB:g} MB,"
        f" ratio {peak / RSS_GOAL_MB:.2f})"
    )
    errors = (folder / "monitor.log").read_text()
    if "Traceback" in errors or "error:" in errors:
        print("monitor log:\n" + errors)


def scrape_cycles(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310
            for line in answer.read().decode().splitlines():
                if line.startswith("opsctl_monitor_cycles_total "):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds measured")
    parser.add_argument("--interval", type=float, default=5.0, help="monitor interval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsctl-bench-monitor-") as folder:
        run(Path(folder), duration=args.duration, interval=args.interval)


if __name__ == "__main__":
    main()
