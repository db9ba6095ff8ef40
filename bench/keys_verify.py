"""How close ``keys verify`` of 12 keys comes to the time of one provider answer.

Twelve declared keys of eight providers, each pointed (through ``base_url``) at a local
endpoint in its own process that answers after 300 ms. Runs the verification in this
process (``verify_keys``, what ``opsctl keys verify`` calls, without interpreter start-up)
and divides its median wall time by 300 ms. Goal: 1.3 or less.

    .venv/bin/python bench/keys_verify.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _slow_http import start_slow_server
from opsctl.config import load_project
from opsctl.keys import key_states, verify_keys

GOAL = 1.3
ANSWER_DELAY_SECONDS = 0.3

KEYS = {
    "OPENAI_API_KEY": ("openai", "sk-" + "a1" * 24),
    "OPENAI_BATCH_KEY": ("openai", "sk-" + "b2" * 24),
    "ANTHROPIC_API_KEY": ("anthropic", "sk-ant-" + "c3" * 24),
    "GITHUB_TOKEN": ("github", "ghp_" + "D4" * 18),
    "GITHUB_DEPLOY_TOKEN": ("github", "ghp_" + "E5" * 18),
    "HF_TOKEN": ("huggingface", "hf_" + "F6" * 17),
    "POLYGON_API_KEY": ("polygon", "G7" * 16),
    "SLACK_BOT_TOKEN": ("slack_bot", "xoxb-1234567890-1234567890-" + "H8" * 12),
    "APCA_API_KEY_ID": ("alpaca", "PK" + "J9" * 9),
    "HF_READ_TOKEN": ("huggingface", "hf_" + "K1" * 17),
    "ANTHROPIC_EVAL_KEY": ("anthropic", "sk-ant-" + "L2" * 24),
    "POLYGON_BACKUP_KEY": ("polygon", "M3" * 16),
}


def write_project(folder: Path, port: int) -> Path:
    """Write the config and .env for the twelve keys; return the config path."""
    config, env = [], [f"APCA_API_SECRET_KEY={'n4' * 20}"]
    for name, (provider, value) in KEYS.items():
        config += [
            f"[keys.{name}]",
            f'provider = "{provider}"',
            f'base_url = "http://127.0.0.1:{port}"',
        ]
        env.append(f"{name}={value}")
    (folder / ".env").write_text("\n".join(env) + "\n")
    path = folder / "opsctl.toml"
    path.write_text("\n".join(config) + "\n")
    return path


def main() -> int:
    """Time the verification of the twelve keys and print the ratio to one answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds")
    rounds = parser.parse_args().rounds

    server, port = start_slow_server(ANSWER_DELAY_SECONDS)
    try:
        with tempfile.TemporaryDirectory() as folder:
            project = load_project(write_project(Path(folder), port))
            states = key_states(project)
            verify_keys(project, states)  # warm-up: imports
            times = []
            for _ in range(rounds):
                begin = time.perf_counter()
                results = verify_keys(project, states)
                times.append(time.perf_counter() - begin)
                bad = [f"{r.name}: {r.status} {r.detail}" for r in results if r.status != "valid"]
                if bad:
                    message = f"error: not every key verified: {bad}"
                    raise SystemExit(message)
    finally:
        server.kill()
        server.wait()

    median = statistics.median(times)
    ratio = median / ANSWER_DELAY_SECONDS
    print(f"{len(KEYS)} keys verified: median {median * 1000:.1f} ms; one answer takes 300 ms")
    print(f"ratio {ratio:.2f}; goal {GOAL} or less: {'PASS' if ratio <= GOAL else 'ABOVE GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
