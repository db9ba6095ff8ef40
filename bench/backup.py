"""``backup run`` and ``backup restore`` against tar and zstd, memory as data grows, and a
Redis snapshot against ``redis-cli --rdb``, all in one run.

1. Wall time of ``opsctl backup run`` on about 2 GB of mixed files against
   ``tar -c | zstd -T0 -3`` on the same files, and of ``opsctl backup restore --to``
   against ``zstd -d | tar -x``; medians of interleaved rounds. Goal: 1.1 or less each.
2. Peak RSS of ``opsctl backup run`` as the data grows from 0.5 to 2 GB. Goal: flat,
   150 MB or less.
3. ``opsctl backup run --source redis`` on a Redis holding about 1 GB against
   ``redis-cli --rdb``. Goal: 1.2 or less.

Every command is a fresh process, as cron runs it. Data lives in a temporary folder on
the same disk as the outputs.

    .venv/bin/python bench/backup.py [--size-gb 2] [--redis-gb 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OPSCTL = [sys.executable, "-m", "opsctl"]
RUN_GOAL = 1.1
RESTORE_GOAL = 1.1
RSS_GOAL_MB = 150
REDIS_GOAL = 1.2
STEPS_GB = (0.5, 1.0, 1.5, 2.0)
GIB = 1 << 30


# Data


def write_mixed(folder: Path, size_bytes: int, *, seed: int) -> None:
    """Write about ``size_bytes`` of mixed files: many small texts (compressible), source-like
    files, a few large random binaries (model weights) and large logs (compressible).
    """
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    words = [f"word{index}" for index in range(2000)]
    written = 0
    index = 0
    while written < size_bytes:
        kind = index % 10
        sub = folder / f"d{index % 37}" / f"e{index % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        if kind < 6:
            size = rng.randint(1_000, 64_000)
            text = " ".join(rng.choices(words, k=size // 6)).encode()[:size]
            (sub / f"note{index}.txt").write_bytes(text)
        elif kind < 8:
            size = rng.randint(64_000, 1_000_000)
            (sub / f"blob{index}.bin").write_bytes(rng.randbytes(size))
        elif kind == 8:
            size = rng.randint(4_000_000, 32_000_000)
            (sub / f"weights{index}.bin").write_bytes(os.urandom(size))
        else:
            line = " ".join(rng.choices(words, k=12)).encode() + b"\n"
            size = rng.randint(1_000_000, 16_000_000)
            (sub / f"app{index}.log").write_bytes(line * (size // len(line)))
        written += size
        index += 1


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# Measuring


def timed(command: list[str] | str, **options: object) -> float:
    """Run ``command`` (a shell line when a string); return wall seconds; fail loudly."""
    begin = time.perf_counter()
    completed = subprocess.run(
        command, shell=isinstance(command, str), capture_output=True, check=False, **options
    )  # type: ignore[call-overload]
    elapsed = time.perf_counter() - begin
    if completed.returncode != 0:
        message = f"error: {command} exited {completed.returncode}: {completed.stderr[-2000:]!r}"
        raise SystemExit(message)
    return elapsed


def peak_rss_mb(command: list[str], cwd: Path) -> float:
    """Run ``command`` and return its peak resident memory in MB."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        message = f"error: {command} exited {process.returncode}"
        raise SystemExit(message)
    return usage.ru_maxrss / 1024


def interleave(
    first: Callable[[], float], second: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Medians of ``first`` and ``second``, run alternately after one warm-up each."""
    first()
    second()
    a, b = [], []
    for _ in range(rounds):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def verdict(ratio: float, goal: float) -> str:
    return "PASS" if ratio <= goal else "ABOVE GOAL"


# Files


def write_config(root: Path, extra: str = "") -> None:
    (root / "opsctl.toml").write_text(
        f'[backup]\npaths = ["data"]\ndestination = "backups"\n{extra}'
    )


def bench_files(work: Path, size_gb: float, rounds: int) -> None:
    root = work / "files"
    data = root / "data"
    data.mkdir(parents=True)
    write_mixed(data, int(size_gb * GIB), seed=1)
    write_config(root)
    total = folder_size(data)
    print(f"data: {total / 1e9:.2f} GB in {sum(1 for _ in data.rglob('*'))} entries")
    reference_archive = work / "reference.tar.zst"

    def ours_run() -> float:
        shutil.rmtree(root / "backups", ignore_errors=True)
        return timed([*OPSCTL, "backup", "run"], cwd=root)

    def reference_run() -> float:
        reference_archive.unlink(missing_ok=True)
        return timed(f"tar -cf - -C {root} data | zstd -T0 -3 -q -o {reference_archive}")

    run_ours, run_reference = interleave(ours_run, reference_run, rounds)
    ratio = run_ours / run_reference
    print(
        f"backup run: {run_ours:.2f} s, tar | zstd -T0: {run_reference:.2f} s: ratio {ratio:.2f};"
        f" goal {RUN_GOAL} or less: {verdict(ratio, RUN_GOAL)}"
    )

    archive = next((root / "backups").glob("*.tar.zst"))
    backup_id = archive.name.removesuffix(".tar.zst")
    ours_target, reference_target = work / "restored-ours", work / "restored-reference"

    def ours_restore() -> float:
        shutil.rmtree(ours_target, ignore_errors=True)
        command = [*OPSCTL, "backup", "restore", backup_id, "--to", str(ours_target)]
        return timed(command, cwd=root)

    def reference_restore() -> float:
        shutil.rmtree(reference_target, ignore_errors=True)
        reference_target.mkdir()
        return timed(f"zstd -d -q -c {reference_archive} | tar -xf - -C {reference_target}")

    restore_ours, restore_reference = interleave(ours_restore, reference_restore, rounds)
    ratio = restore_ours / restore_reference
    print(
        f"backup restore: {restore_ours:.2f} s, zstd -d | tar -x: {restore_reference:.2f} s: "
        f"ratio {ratio:.2f}; goal {RESTORE_GOAL} or less: {verdict(ratio, RESTORE_GOAL)}"
    )
    shutil.rmtree(ours_target, ignore_errors=True)
    shutil.rmtree(reference_target, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    reference_archive.unlink(missing_ok=True)


def bench_memory(work: Path, size_gb: float) -> None:
    root = work / "memory"
    data = root / "data"
    data.mkdir(parents=True)
    write_config(root)
    done = 0.0
    peaks = []
    for step in (s for s in STEPS_GB if s <= size_gb + 1e-9):
        write_mixed(data / f"part{step}", int((step - done) * GIB), seed=int(step * 10))
        done = step
        shutil.rmtree(root / "backups", ignore_errors=True)
        peak = peak_rss_mb([*OPSCTL, "backup", "run"], root)
        peaks.append(peak)
        print(f"peak RSS at {folder_size(data) / 1e9:.2f} GB: {peak:.0f} MB")
    growth = max(peaks) / min(peaks)
    ok = max(peaks) <= RSS_GOAL_MB and growth <= 1.1  # noqa: PLR2004 (flat: within 10 %)
    print(
        f"peak RSS {min(peaks):.0f}-{max(peaks):.0f} MB (x{growth:.2f} across sizes); "
        f"goal flat and {RSS_GOAL_MB} MB or less: {'PASS' if ok else 'ABOVE GOAL'}"
    )
    shutil.rmtree(root, ignore_errors=True)


# Redis


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 6379:  # noqa: PLR2004 (never Redis's default port)
            return port


def fill_redis(port: int, size_bytes: int) -> None:
    import redis

    client = redis.Redis(port=port)
    value_bytes = 1000
    pipe = client.pipeline(transaction=False)
    for index in range(size_bytes // value_bytes):
        pipe.set(f"key:{index}", os.urandom(value_bytes))
        if index % 5000 == 0:
            pipe.execute()
    pipe.execute()


def bench_redis(work: Path, size_gb: float, rounds: int) -> None:
    folder = work / "redis"
    folder.mkdir()
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")]
    server = subprocess.Popen(argv)
    try:
        time.sleep(0.5)
        fill_redis(port, int(size_gb * GIB))
        root = work / "redis-project"
        root.mkdir()
        (root / "opsctl.toml").write_text(
            f'[backup]\nredis = "redis://127.0.0.1:{port}/0"\ndestination = "backups"\n'
        )
        rdb = work / "reference.rdb"

        def ours() -> float:
            shutil.rmtree(root / "backups", ignore_errors=True)
            return timed([*OPSCTL, "backup", "run", "--source", "redis"], cwd=root)

        def reference() -> float:
            rdb.unlink(missing_ok=True)
            return timed(["redis-cli", "-p", str(port), "--rdb", str(rdb)])

        ours_seconds, reference_seconds = interleave(ours, reference, rounds)
        size = rdb.stat().st_size
    finally:
        server.terminate()
        server.wait()
    ratio = ours_seconds / reference_seconds
    print(
        f"redis snapshot of {size / 1e9:.2f} GB: backup run {ours_seconds:.2f} s, "
        f"redis-cli --rdb {reference_seconds:.2f} s: ratio {ratio:.2f}; "
        f"goal {REDIS_GOAL} or less: {verdict(ratio, REDIS_GOAL)}"
    )


def main() -> int:
    """Run the three measurements and print their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0, help="mixed file data")
    parser.add_argument("--redis-gb", type=float, default=1.0, help="Redis data (0: skip)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds")
    parser.add_argument("--skip-memory", action="store_true", help="skip the RSS series")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: temp)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=options.dir) as folder:
        work = Path(folder)
        bench_files(work, options.size_gb, options.rounds)
        if not options.skip_memory:
            bench_memory(work, options.size_gb)
        if options.redis_gb > 0:
            bench_redis(work, options.redis_gb, options.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
