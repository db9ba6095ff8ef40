"""backup at a terminal: a progress display and a summary line; restore asks first."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.backup._helpers import BackupProject, make_project

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_SECONDS = 60.0


def at_terminal(project: BackupProject, *args: str, answer: bytes = b"") -> tuple[int, str]:
    """Run ``opsctl -c CONFIG ARGS`` with a pseudo-terminal as stdin, stdout and stderr;
    type ``answer`` once it asks; return the exit code and everything it printed.
    """
    master, slave = pty.openpty()
    environment = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "opsctl", "-c", str(project.config), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=environment,
        cwd=project.root,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + DEADLINE_SECONDS
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if answer and not answered and b"[y/N]" in output:
                os.write(master, answer)
                answered = True
        elif process.poll() is not None:
            break
    process.wait(timeout=DEADLINE_SECONDS)
    os.close(master)
    return process.returncode, output.decode("utf-8", errors="replace")


def test_run_at_a_terminal_prints_a_summary(tmp_path: Path) -> None:
    """At a terminal the run ends with one line naming the backup, its files and size."""
    project = make_project(tmp_path / "proj")

    code, output = at_terminal(project, "backup", "run")

    assert code == 0, output
    backup_id = project.listed()[0]
    assert f"backup {backup_id}: 5 files" in output


def test_restore_at_a_terminal_asks_and_no_keeps_everything(tmp_path: Path) -> None:
    """Answering no leaves the files as they are and exits 1; yes restores them."""
    project = make_project(tmp_path / "proj")
    project.run_json()
    (project.data / "notes.txt").write_text("current\n")

    refused, output = at_terminal(project, "backup", "restore", "latest", answer=b"n\n")
    assert refused == 1, output
    assert (project.data / "notes.txt").read_text() == "current\n"

    accepted, output = at_terminal(project, "backup", "restore", "latest", answer=b"y\n")
    assert accepted == 0, output
    assert (project.data / "notes.txt").read_text() == "hello\n"
