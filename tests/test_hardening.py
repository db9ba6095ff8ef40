"""Regressions from trying to break opsctl with hostile input."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl._files import write_atomic
from opsctl.errors import UsageError
from tests.support import run_cli, write_project


@pytest.fixture
def drip_server() -> Iterator[int]:
    """Answers with headers, then one body byte every 0.3 s, forever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    def drip(connection: socket.socket) -> None:
        try:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                connection.sendall(b"x")
                time.sleep(0.3)
        except OSError:
            pass
        finally:
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def test_verify_exits_at_the_deadline_of_a_check_that_never_finishes(
    tmp_path: Path, drip_server: int
) -> None:
    """A trickling endpoint fails at its deadline and the process exits, not hangs."""
    config = write_project(
        tmp_path,
        f"""
        [[verify.checks]]
        name = "drip"
        kind = "http"
        url = "http://127.0.0.1:{drip_server}/"
        timeout_seconds = 1
        """,
    )
    begin = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "opsctl", "-c", str(config), "verify", "--only", "drip"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "no answer within" in result.stdout
    assert time.monotonic() - begin < 10


def test_atomic_write_refuses_devices_and_keeps_symlinks(tmp_path: Path) -> None:
    """A FIFO or folder is never replaced; a symlink stays a link and its target changes."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UsageError):
        write_atomic(fifo, "x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with pytest.raises(UsageError):
        write_atomic(tmp_path, "x")

    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink()
    assert target.read_text() == "new"


def test_junit_to_a_fifo_is_refused(tmp_path: Path) -> None:
    """--junit naming a FIFO is a usage error, and the FIFO is kept."""
    config = write_project(tmp_path, "[project]\nname = 'p'\n")
    fifo = tmp_path / "report"
    os.mkfifo(fifo)
    result = run_cli("-c", str(config), "verify", "--only", "config", "--junit", str(fifo))
    assert result.exit_code == 2
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_debug_traceback_of_a_check_is_scrubbed(tmp_path: Path) -> None:
    """With -vv, a probe's traceback is logged with secrets masked."""
    secret = "tok-SUPERSECRET-0123456789"
    config = write_project(
        tmp_path,
        """
        [[verify.checks]]
        name = "ftp"
        kind = "http"
        url = "ftp://admin:HunterPassword2024@127.0.0.1:1/?token=${API_TOKEN}"
        """,
        env=f"API_TOKEN={secret}\n",
    )
    result = run_cli("-c", str(config), "-vv", "--debug", "verify", "--only", "ftp")
    assert result.exit_code == 1
    assert secret not in result.output
    assert "HunterPassword2024" not in result.output


def test_junit_and_tap_cannot_be_broken_by_names_and_details(tmp_path: Path) -> None:
    """Control characters and newlines in a check name stay inside their XML and TAP line."""
    config = write_project(
        tmp_path,
        """
        [[verify.checks]]
        name = "ctl\\u0001 <&> \\nnot ok 99 - injected"
        kind = "command"
        argv = ["sh", "-c", "printf 'bad\\\\001\\\\033[31m'; exit 1"]
        """,
    )
    junit = tmp_path / "out.xml"
    run_cli("-c", str(config), "verify", "--only", "checks", "--junit", str(junit))
    ET.fromstring(junit.read_bytes())  # noqa: S314 (our own output)
    tap = run_cli("-c", str(config), "verify", "--only", "checks", "--format", "tap").stdout
    assert "not ok 99" not in [line.split(" - ")[0] for line in tap.splitlines()]
    assert len([line for line in tap.splitlines() if line.startswith(("ok ", "not ok "))]) == 1


def test_offline_verify_checks_custom_formats_and_pair_secrets(tmp_path: Path) -> None:
    """A custom format mismatch and a missing pair secret fail without any request."""
    config = write_project(
        tmp_path,
        """
        [keys.INTERNAL]
        provider = "custom"
        env = "INTERNAL_API_KEY"
        format = "ik_[a-z0-9]{32}"
        [keys.ALPACA]
        provider = "alpaca"
        env = "APCA_API_KEY_ID"
        """,
        env="INTERNAL_API_KEY=totally-wrong\nAPCA_API_KEY_ID=PKTEST0123456789ABCD\n",
    )
    result = run_cli("-c", str(config), "verify", "--only", "keys", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 1
    assert checks["key INTERNAL"]["status"] == "fail"
    assert checks["key ALPACA"]["detail"] == "APCA_API_SECRET_KEY is not set"


@pytest.mark.parametrize("schedule", ["*/0 * * * *", "30-10 * * * *", "*/100 * * * *", "0 0 1 * 1"])
def test_schedules_systemd_cannot_read_alike_are_refused(tmp_path: Path, schedule: str) -> None:
    """Steps of 0, backward ranges, oversized steps and day-or-weekday mixes exit 2."""
    config = write_project(tmp_path, f'[verify]\nschedule = "{schedule}"\n')
    assert run_cli("-c", str(config), "config", "render", "cron").exit_code == 2


def test_init_with_a_relative_folder_creates_everything(tmp_path: Path) -> None:
    """`opsctl init myproj` works from the folder above it."""
    result = run_cli("init", "myproj")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "myproj" / ".env.example").is_file()
    assert (tmp_path / "myproj" / "memory-bank" / "progress.md").is_file()
    assert run_cli("init", "other", "--name", 'evil"\nname').exit_code == 2
    assert not (tmp_path / "other" / "opsctl.toml").exists()


def test_history_skips_records_of_the_wrong_shape(tmp_path: Path) -> None:
    """Well-formed JSON that is not an activation record is skipped, not fatal."""
    config = write_project(tmp_path, '[memory_bank]\ntimestamps = "utc"\n')
    assert run_cli("-c", str(config), "memory-bank", "init").exit_code == 0
    assert run_cli("-c", str(config), "memory-bank", "activate").exit_code == 0
    history = tmp_path / ".opsctl" / "memory-bank" / "activations.jsonl"
    with history.open("a") as handle:
        for line in ('{"files": {"x.md": "notadict"}}', '{"files": {"x.md": {"entries": 1e309}}}'):
            handle.write(line + "\n")
    result = run_cli("-c", str(config), "memory-bank", "history", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["activations"] == 1


def test_exec_reports_a_signal_death_as_128_plus_the_signal(tmp_path: Path) -> None:
    """A command killed by SIGTERM gives 143, as a shell reports it; a missing one exits 1."""
    config = write_project(tmp_path, '[services.s]\ncommand = "sleep 1"\n')
    assert (
        run_cli("-c", str(config), "exec", "s", "--", "sh", "-c", "kill -TERM $$").exit_code == 143
    )
    assert run_cli("-c", str(config), "exec", "s", "--", "sh", "-c", "exit 42").exit_code == 42
    missing = run_cli("-c", str(config), "exec", "s", "--", "/no/such/tool")
    assert missing.exit_code == 1
    assert "Cannot run '/no/such/tool'" in missing.stderr


def test_keys_set_keeps_a_byte_order_mark_and_refuses_a_folder(tmp_path: Path) -> None:
    """A .env starting with a BOM is edited with the BOM kept; a .env folder is refused."""
    config = write_project(tmp_path, '[keys.OPENAI_API_KEY]\nprovider = "openai"\n')
    env = tmp_path / ".env"
    env.write_bytes(b"\xef\xbb\xbfA=1\n")
    value = "sk-" + "a" * 30
    stdin = io.StringIO(value + "\n")
    original, sys.stdin = sys.stdin, stdin
    try:
        assert run_cli("-c", str(config), "keys", "set", "OPENAI_API_KEY", "--stdin").exit_code == 0
    finally:
        sys.stdin = original
    assert env.read_bytes() == b"\xef\xbb\xbfA=1\nOPENAI_API_KEY='" + value.encode() + b"'\n"

    env.unlink()
    env.mkdir()
    assert run_cli("-c", str(config), "keys", "unset", "OPENAI_API_KEY").exit_code == 2
    assert env.is_dir()
