"""Changing the bank: creating its files and appending timestamped entries, atomically."""

from __future__ import annotations

import fcntl
import re
from datetime import UTC, datetime
from pathlib import Path

from opsctl._files import write_atomic
from opsctl.config import Project
from opsctl.errors import UsageError
from opsctl.memory_bank._bank import bank_folder, bank_zone
from opsctl.memory_bank._parse import TIMESTAMP_FORMAT
from opsctl.memory_bank._profiles import expected_files

_HEADINGS = {
    "productContext.md": ("Product Context", "What the project is, for whom, and why it exists."),
    "activeContext.md": ("Active Context", "What is being worked on now, and the open questions."),
    "systemPatterns.md": (
        "System Patterns",
        "The architectural, design and operational patterns in use.",
    ),
    "decisionLog.md": ("Decision Log", "Decisions with their date, rationale and consequences."),
    "progress.md": ("Progress", "What is done, what is in progress, what comes next."),
    "projectbrief.md": (
        "Project Brief",
        "The core requirements and goals; the source of the other files.",
    ),
    "techContext.md": ("Tech Context", "Technologies, set-up, constraints and dependencies."),
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def init_bank(project: Project) -> list[tuple[str, bool]]:
    """Create the bank folder and each expected file with its heading; never overwrite.

    Returns ``(file name, created)`` for every expected file.
    """
    folder = bank_folder(project)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for name in expected_files(project.config.memory_bank):
        path = folder / name
        if path.exists():
            results.append((name, False))
            continue
        title, purpose = _HEADINGS.get(name, (Path(name).stem, "Notes kept for this project."))
        write_atomic(path, f"# {title}\n\n{purpose}\n", mode=0o644)
        results.append((name, True))
    return results


def resolve_bank_file(project: Project, name: str) -> Path:
    """Return the bank file ``name`` (``.md`` optional); raise :class:`UsageError` for a
    name that would leave the folder.
    """
    file_name = name if name.endswith(".md") else f"{name}.md"
    if not _SAFE_NAME.match(file_name):
        message = f"'{name}' is not a memory-bank file name (letters, digits, '.', '_', '-')."
        raise UsageError(message)
    return bank_folder(project) / file_name


def format_entry(title: str, body: str, *, when: datetime) -> str:
    """Return one entry: the stamped title line, then the body as given (a lone line of
    text becomes a bullet).
    """
    title = " ".join(title.split())
    if not title:
        message = "An entry needs a title."
        raise UsageError(message)
    lines = [f"[{when.strftime(TIMESTAMP_FORMAT)}] - {title}"]
    text = body.strip("\n")
    if text:
        single = "\n" not in text and not text.lstrip().startswith(("-", "*", "1."))
        lines.append(f"- {text.strip()}" if single else text)
    return "\n".join(lines) + "\n"


def append_entry(
    project: Project, name: str, title: str, body: str = "", *, now: datetime | None = None
) -> Path:
    """Append a timestamped entry to bank file ``name`` by rewriting it atomically.

    The time is now in the bank's zone. A lock file under the state folder keeps two
    writers from losing each other's entry. Raises :class:`UsageError` when the file does
    not exist (``memory-bank init`` creates the expected set).
    """
    path = resolve_bank_file(project, name)
    when = (now or datetime.now(UTC)).astimezone(bank_zone(project))
    entry = format_entry(title, body, when=when)

    lock_path = project.state_dir / "memory-bank" / "write.lock"
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            message = f"{path} does not exist."
            raise UsageError(
                message, hint="Run 'opsctl memory-bank init', or name an existing file."
            )
        current = path.read_bytes().decode("utf-8", errors="replace")
        text = current + _joined(current, entry)
        write_atomic(path, text, mode=path.stat().st_mode & 0o777)
    return path


def _joined(current: str, entry: str) -> str:
    """What to append so one blank line separates ``entry`` from what is there, in the
    file's own line endings.
    """
    newline = "\r\n" if "\r\n" in current else "\n"
    unified = current.replace("\r\n", "\n")
    if not unified.strip() or unified.endswith("\n\n"):
        gap = ""
    elif unified.endswith("\n"):
        gap = "\n"
    else:
        gap = "\n\n"
    return (gap + entry).replace("\n", newline)
