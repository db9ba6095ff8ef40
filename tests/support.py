"""Helpers shared by the tests: free ports, project folders, running the real CLI."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsctl.cli import main

REDIS_DEFAULT_PORT = 6379


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (never Redis's default)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != REDIS_DEFAULT_PORT:
            return port


def write_project(root: Path, toml: str, *, env: str | None = None) -> Path:
    """Write ``opsctl.toml`` (dedented) and optionally ``.env`` into ``root``; return its path."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "opsctl.toml"
    path.write_text(textwrap.dedent(toml).lstrip())
    if env is not None:
        (root / ".env").write_text(textwrap.dedent(env).lstrip())
    return path


@dataclass(frozen=True)
class CliResult:
    """What one run of the CLI printed, and its exit code."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


def run_cli(*args: str) -> CliResult:
    """Run ``opsctl ARGS`` in this process through the real entry point."""
    out, err = io.StringIO(), io.StringIO()
    code: int
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def wait_for(condition: Callable[[], bool], *, timeout_seconds: float, message: str) -> None:
    """Poll ``condition`` until it holds; fail the test with ``message`` if it never does."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_seconds} s: {message}")


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def kill_supervisord(state_dir: Path) -> None:
    """Safety net for teardown: kill a supervisord a failed test left running, and its group."""
    pid_file = state_dir / "run" / "supervisord.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class RedisServer:
    """A real redis-server on a free loopback port, its data in a folder of the test's."""

    port: int
    directory: Path
    password: str | None
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_redis(
    directory: Path,
    *,
    port: int | None = None,
    password: str | None = None,
    extra: Sequence[str] = (),
) -> RedisServer:
    """Start redis-server on 127.0.0.1 (never 6379) with its files in ``directory`` and
    wait until it answers PING. The caller stops it (``server.stop()``).
    """
    import redis

    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    argv += ["--save", "", "--appendonly", "no", "--logfile", str(directory / "redis.log")]
    if password:
        argv += ["--requirepass", password]
    process = subprocess.Popen([*argv, *extra], stdout=subprocess.DEVNULL)
    server = RedisServer(port, directory, password, process)

    def answers() -> bool:
        try:
            return bool(server.client().ping())
        except redis.RedisError:
            return process.poll() is not None  # ended: stop waiting, raise below

    wait_for(answers, timeout_seconds=15, message=f"redis-server on port {port}")
    if process.poll() is not None:
        message = f"redis-server exited with {process.returncode}; see {directory / 'redis.log'}"
        raise RuntimeError(message)
    return server
