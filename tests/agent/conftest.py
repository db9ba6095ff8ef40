"""A real redis-server with a password for each agent test, and component processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsctl.agent import ENV_PASSWORD, ENV_PROJECT, ENV_URL
from opsctl.config._project import RedisTarget
from tests.agent.programs import COMPONENT
from tests.support import RedisServer, start_redis

PASSWORD = "agent-test-password-41"
PROJECT = "agenttest"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server on a free loopback port that requires :data:`PASSWORD`."""
    server = start_redis(tmp_path / "redis", password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def target(redis_server: RedisServer) -> RedisTarget:
    """Where the test's Redis answers, as opsctl's side names it."""
    return RedisTarget(redis_server.url, PASSWORD)


SpawnComponent = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn_component(tmp_path: Path, target: RedisTarget) -> Iterator[SpawnComponent]:
    """Start component processes that find their Redis only through the environment
    variables opsctl injects; each is killed after the test.
    """
    script = tmp_path / "component.py"
    script.write_text(COMPONENT)
    started: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, mode: str) -> subprocess.Popen[bytes]:
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("OPSCTL_")
        }
        environment.update({ENV_URL: target.url, ENV_PASSWORD: PASSWORD, ENV_PROJECT: PROJECT})
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(script), name, mode],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.kill()
        process.wait(timeout=10)
