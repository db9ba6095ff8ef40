"""A real redis-server with a password for each agent test, and component processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


@dataclass
class GarbageServer:
    """A TCP server on loopback that answers every read with the same bytes, whatever
    was asked: a stand-in for something that is not Redis at the stack's Redis address.
    """

    reply: bytes
    listener: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed by the test
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while connection.recv(65536):
                connection.sendall(self.reply)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def garbage_server() -> Iterator[Callable[[bytes], GarbageServer]]:
    """Start servers answering fixed bytes to everything; closed after the test."""
    started: list[GarbageServer] = []

    def start(reply: bytes) -> GarbageServer:
        server = GarbageServer(reply)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
