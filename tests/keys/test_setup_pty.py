"""`opsctl keys setup` driven through a pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import stat
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.keys._fake import (
    ALPACA_ID,
    ALPACA_SECRET,
    HUGGINGFACE,
    OPENAI,
    POLYGON,
    FakeProvider,
    Reply,
    env_lines,
    fake_provider,
)
from tests.support import write_project

READ_TIMEOUT = 10.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# Make the pseudo-terminal the child's controlling terminal (getpass reads /dev/tty), then
# run `python -m opsctl ...` in its place.
LAUNCHER = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Terminal:
    """A child process on a pseudo-terminal; every wait has a deadline."""

    def __init__(self, argv: list[str], *, cwd: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        environment = {
            **os.environ,
            "TERM": "dumb",
            "NO_COLOR": "1",
            "PYTHONIOENCODING": "utf-8",
            "COLUMNS": "200",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=environment,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.transcript = ""
        self._pending = ""

    def _read(self, deadline: float) -> bool:
        """Read what is available before ``deadline``; False at end of output."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        ready, _, _ = select.select([self.master], [], [], remaining)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        text = ANSI.sub("", data.decode("utf-8", errors="replace")).replace("\r", "")
        self.transcript += text
        self._pending += text
        return True

    def expect(self, pattern: str, timeout: float = READ_TIMEOUT) -> str:
        """Wait until ``pattern`` (a regex) appears in output not yet consumed."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            match = regex.search(self._pending)
            if match:
                self._pending = self._pending[match.end() :]
                return match.group(0)
            if time.monotonic() >= deadline or not self._read(deadline):
                message = f"never saw {pattern!r}; the terminal showed:\n{self.transcript}"
                raise AssertionError(message)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = READ_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(min(deadline, time.monotonic() + 0.1))
        try:
            return self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            message = f"the command did not finish; the terminal showed:\n{self.transcript}"
            raise AssertionError(message) from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(OSError):
            os.close(self.master)


@contextlib.contextmanager
def terminal(config: Path, *args: str) -> Iterator[Terminal]:
    term = Terminal(["-m", "opsctl", "-c", str(config), "keys", "setup", *args], cwd=config.parent)
    try:
        yield term
    finally:
        term.close()


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with fake_provider() as fake:
        yield fake


def setup_toml(url: str) -> str:
    return f"""
    [keys.hf]
    provider = "huggingface"
    env = "T_HF_TOKEN"
    base_url = "{url}"

    [keys.openai]
    provider = "openai"
    env = "T_OPENAI_KEY"
    description = "Embeddings for the search worker"
    url = "https://platform.example/keys"
    base_url = "{url}"

    [keys.poly]
    provider = "polygon"
    env = "T_POLY_KEY"
    required = false
    base_url = "{url}"
    """


def test_guided_setup_reasks_keeps_and_verifies(tmp_path: Path, server: FakeProvider) -> None:
    root = tmp_path / "project"
    header = "# my settings\nexport OTHER=1\n"
    config = write_project(
        root, setup_toml(server.url), env=header + env_lines({"T_HF_TOKEN": HUGGINGFACE})
    )
    env = root / ".env"
    with terminal(config, "--all") as term:
        # An existing, well-formed value: shown masked, Enter keeps it.
        term.expect(r"hf \(Hugging Face token, required\)")
        term.expect(r"current value: hf_T…gh \(from \.env\)")
        term.expect(r"T_HF_TOKEN \(Enter keeps the current one\): ")
        term.send("\n")
        term.expect(r"left as it was")

        # A missing key: what it is for, where to get one; a malformed answer is asked again.
        term.expect(r"openai \(OpenAI API key, required\)")
        term.expect(r"for: Embeddings for the search worker")
        term.expect(r"get one at: https://platform\.example/keys")
        term.expect(r"T_OPENAI_KEY: ")
        term.send("definitely-not-a-key\n")
        term.expect(r"not shaped like a key of openai; try again")
        term.expect(r"T_OPENAI_KEY: ")
        term.send(OPENAI + "\n")
        term.expect(r"Verify it now\? \[Y/n\]: ")
        term.send("y\n")
        term.expect(r"verification: valid")
        term.expect(r"added T_OPENAI_KEY in\s+\S+\s+\(mode 0600\)")
        term.expect(r"fixed the file's mode: it was 0644")

        # An optional key: Enter skips it.
        term.expect(r"T_POLY_KEY \(Enter skips\): ")
        term.send("\n")
        term.expect(r"left as it was")
        term.expect(r"Done\. Keys are in ")
        assert term.wait() == 0

    assert OPENAI not in term.transcript
    assert HUGGINGFACE not in term.transcript
    assert "definitely-not-a-key" not in term.transcript
    [seen] = server.seen()
    assert seen.path == "/v1/models"
    assert seen.headers["authorization"] == f"Bearer {OPENAI}"
    text = env.read_text()
    assert text.startswith(header + f"T_HF_TOKEN='{HUGGINGFACE}'\n")
    assert dotenv_values(env) == {"OTHER": "1", "T_HF_TOKEN": HUGGINGFACE, "T_OPENAI_KEY": OPENAI}
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_an_invalid_key_is_not_saved_unless_confirmed(tmp_path: Path, server: FakeProvider) -> None:
    server.answer(Reply(401, '{"error": "invalid api key"}'))
    root = tmp_path / "project"
    env_text = env_lines({"T_HF_TOKEN": HUGGINGFACE})
    config = write_project(root, setup_toml(server.url), env=env_text)
    with terminal(config) as term:
        term.expect(r"openai \(OpenAI API key, required\)")
        term.expect(r"T_OPENAI_KEY: ")
        term.send(OPENAI + "\n")
        term.expect(r"Verify it now\? \[Y/n\]: ")
        term.send("\n")
        term.expect(r"verification: invalid")
        term.expect(r"Save it anyway\? \[y/N\]: ")
        term.send("\n")
        term.expect(r"T_POLY_KEY \(Enter skips\): ")
        term.send("\n")
        term.expect(r"Done\.")
        assert term.wait() == 0
    assert (root / ".env").read_text() == env_text
    assert len(server.seen()) == 1
    assert OPENAI not in term.transcript


def test_no_verify_skips_the_live_check(tmp_path: Path, server: FakeProvider) -> None:
    root = tmp_path / "project"
    config = write_project(root, setup_toml(server.url), env=env_lines({"T_HF_TOKEN": "hf_x"}))
    with terminal(config, "--no-verify") as term:
        # A malformed existing value is gone through, and shown only masked.
        term.expect(r"current value: \*{8} \(from \.env\)")
        term.expect(r"T_HF_TOKEN \(Enter keeps the current one\): ")
        term.send(HUGGINGFACE + "\n")
        term.expect(r"updated T_HF_TOKEN")
        term.expect(r"T_OPENAI_KEY: ")
        term.send(OPENAI + "\n")
        term.expect(r"added T_OPENAI_KEY")
        term.expect(r"T_POLY_KEY \(Enter skips\): ")
        term.send("\n")
        term.expect(r"Done\.")
        assert term.wait() == 0
    assert "Verify it now" not in term.transcript
    assert server.seen() == []
    assert dotenv_values(root / ".env") == {"T_HF_TOKEN": HUGGINGFACE, "T_OPENAI_KEY": OPENAI}


def test_nothing_to_do(tmp_path: Path, server: FakeProvider) -> None:
    root = tmp_path / "project"
    env_text = env_lines({"T_HF_TOKEN": HUGGINGFACE, "T_OPENAI_KEY": OPENAI, "T_POLY_KEY": POLYGON})
    config = write_project(root, setup_toml(server.url), env=env_text)
    with terminal(config) as term:
        term.expect(r"Every declared key is set and well-formed")
        assert term.wait() == 0
    assert (root / ".env").read_text() == env_text


def alpaca_toml(url: str) -> str:
    return f"""
    [keys.alpaca]
    provider = "alpaca"
    env = "T_ALPACA_ID"
    secret_env = "T_ALPACA_SECRET"
    base_url = "{url}"
    """


def test_a_key_pair_asks_for_both_halves_and_checks_the_secret(
    tmp_path: Path, server: FakeProvider
) -> None:
    root = tmp_path / "project"
    config = write_project(root, alpaca_toml(server.url))
    with terminal(config) as term:
        term.expect(r"alpaca \(Alpaca key id and secret, required\)")
        term.expect(r"T_ALPACA_ID: ")
        term.send(ALPACA_ID + "\n")
        term.expect(r"T_ALPACA_SECRET: ")
        term.send("short!\n")
        # Whatever comes next, the malformed secret must have been refused.
        after = term.expect(r"not shaped like a key of alpaca; try again|Verify it now")
        assert after.startswith("not shaped"), term.transcript
        term.expect(r"T_ALPACA_SECRET: ")
        term.send(ALPACA_SECRET + "\n")
        term.expect(r"Verify it now\? \[Y/n\]: ")
        term.send("y\n")
        term.expect(r"verification: valid")
        term.expect(r"Done\.")
        assert term.wait() == 0
    [seen] = server.seen()
    assert seen.headers["apca-api-key-id"] == ALPACA_ID
    assert seen.headers["apca-api-secret-key"] == ALPACA_SECRET
    assert dotenv_values(root / ".env") == {
        "T_ALPACA_ID": ALPACA_ID,
        "T_ALPACA_SECRET": ALPACA_SECRET,
    }
    assert ALPACA_SECRET not in term.transcript


def test_keeping_the_key_id_still_asks_for_a_missing_secret(
    tmp_path: Path, server: FakeProvider
) -> None:
    root = tmp_path / "project"
    config = write_project(root, alpaca_toml(server.url), env=f"T_ALPACA_ID={ALPACA_ID}\n")
    with terminal(config, "--no-verify") as term:
        term.expect(r"T_ALPACA_ID \(Enter keeps the current one\): ")
        term.send("\n")
        after = term.expect(r"T_ALPACA_SECRET: |Done\.")
        assert after.startswith("T_ALPACA_SECRET"), term.transcript
        term.send(ALPACA_SECRET + "\n")
        term.expect(r"Done\.")
        assert term.wait() == 0
    assert dotenv_values(root / ".env") == {
        "T_ALPACA_ID": ALPACA_ID,
        "T_ALPACA_SECRET": ALPACA_SECRET,
    }
