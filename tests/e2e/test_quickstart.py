"""The bundled example, run for real through the installed ``opsctl`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port, kill_supervisord, pid_alive

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the example with free ports set through environment overrides."""
    root = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".opsctl", "dump.rdb"))
    env = {
        **os.environ,
        "OPSCTL_SERVICES__REDIS__PORT": str(free_port()),
        "OPSCTL_SERVICES__API__PORT": str(free_port()),
    }
    yield root, env
    opsctl(root, env, "down")
    kill_supervisord(root / ".opsctl")


def opsctl(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsctl", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quickstart_up_status_health_down(quickstart: tuple[Path, dict[str, str]]) -> None:
    """The example comes up healthy, its API counts in Redis, and down leaves nothing running."""
    root, env = quickstart
    api_port = env["OPSCTL_SERVICES__API__PORT"]

    up = opsctl(root, env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "started" in up.stdout

    status = json.loads(opsctl(root, env, "status", "--json").stdout)["services"]
    # Ready once their checks pass, they may still be in supervisord's start window.
    assert [(row["name"], row["health"]) for row in status] == [("redis", "pass"), ("api", "pass")]
    assert {row["state"] for row in status} <= {"STARTING", "RUNNING"}
    assert [row["port"] for row in status] == [
        int(env["OPSCTL_SERVICES__REDIS__PORT"]),
        int(api_port),
    ]

    health = opsctl(root, env, "health")
    assert health.returncode == 0, health.stdout
    assert "healthy: " in health.stdout

    hits = [
        urllib.request.urlopen(f"http://127.0.0.1:{api_port}/hits", timeout=5).read()
        for _ in range(2)
    ]  # noqa: S310
    assert int(hits[1]) == int(hits[0]) + 1

    pids = [row["pid"] for row in status]
    down = opsctl(root, env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(pid_alive(pid) for pid in pids)
