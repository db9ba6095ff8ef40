"""How much slower ``opsctl`` starts than a bare Typer app with the same command tree.

Runs ``opsctl --help`` and ``opsctl --version`` (as ``python -m opsctl``) and the same
arguments against ``_bare_typer_app.py``, each as a fresh process, interleaved round by
round, and prints the median wall times and their ratio. The goal is a ratio of 1.25 or
less for both. Exits 0 whatever the figures; non-zero only when a process fails.

    .venv/bin/python bench/cli_startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 1.25
WARMUP_ROUNDS = 3
BARE_APP = Path(__file__).with_name("_bare_typer_app.py")
OPSCTL = [sys.executable, "-m", "opsctl"]
BARE = [sys.executable, str(BARE_APP)]
CASES = (["--help"], ["--version"])


def run_once(argv: list[str]) -> tuple[float, str]:
    """Run ``argv`` once; return its wall time in milliseconds and its stdout.

    Raises ``SystemExit`` with a message when the process cannot start, times out or fails.
    """
    command = " ".join(argv)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        message = f"error: could not run {command}: {error}"
        raise SystemExit(message) from error
    elapsed_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        message = f"error: {command} exited {done.returncode}:\n{done.stderr.strip()}"
        raise SystemExit(message)
    return elapsed_ms, done.stdout


def measure(args: list[str], rounds: int) -> tuple[float, float]:
    """Return the median milliseconds of opsctl and of the bare app for ``args``.

    Each round runs both, swapping which goes first every round so neither gains from
    order; the warm-up rounds (not counted) fill the OS and bytecode caches.
    """
    opsctl_ms: list[float] = []
    bare_ms: list[float] = []
    for index in range(WARMUP_ROUNDS + rounds):
        pairs = [(OPSCTL, opsctl_ms), (BARE, bare_ms)]
        for prefix, times in pairs if index % 2 == 0 else reversed(pairs):
            elapsed_ms, _ = run_once([*prefix, *args])
            if index >= WARMUP_ROUNDS:
                times.append(elapsed_ms)
    return statistics.median(opsctl_ms), statistics.median(bare_ms)


def check_same_output(args: list[str]) -> None:
    """Warn when the two apps print different things, as the comparison is then unfair."""
    if run_once([*OPSCTL, *args])[1] != run_once([*BARE, *args])[1]:
        print(f"warning: opsctl {' '.join(args)} and the bare app print different output")


def positive(text: str) -> int:
    """Parse a positive integer for argparse."""
    value = int(text)
    if value < 1:
        message = f"must be at least 1, not {value}"
        raise argparse.ArgumentTypeError(message)
    return value


def main() -> int:
    """Measure both cases, print the figures and the verdict; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive, default=21, help="measured rounds per app")
    rounds = parser.parse_args().rounds
    print(f"{rounds} rounds (+{WARMUP_ROUNDS} warm-up), Python {sys.version.split()[0]}")
    ratios: list[float] = []
    for args in CASES:
        check_same_output(args)
        opsctl_ms, bare_ms = measure(args, rounds)
        ratios.append(opsctl_ms / bare_ms)
        print(
            f"{' '.join(args):<10} opsctl {opsctl_ms:7.1f} ms   bare {bare_ms:7.1f} ms"
            f"   ratio {ratios[-1]:.2f}"
        )
    verdict = "PASS" if max(ratios) <= GOAL else "ABOVE GOAL"
    print(f"goal: ratio {GOAL} or less for both: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
