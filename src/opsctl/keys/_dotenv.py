"""Safe editing of a ``.env`` file: one key changed, every other byte kept.

python-dotenv reads the file (and locates each entry); writing is opsctl's own. A write
takes an exclusive lock on the file, rewrites it under a temporary name (mode 0600 from
the start, so no copy of a secret is ever readable by others), fsyncs and renames it. A
symlinked ``.env`` stays a symlink: its target is what gets replaced. A line python-dotenv
cannot parse stops the command and names the line; the file is left untouched.

Values are written single-quoted, with ``\\`` and ``'`` escaped, which python-dotenv reads
back exactly, newlines included. python-dotenv expands ``${NAME}`` even inside quotes and
offers no escape for it, so a value containing ``${...}`` is refused rather than stored in
a form that would read back differently.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsctl._files import write_atomic
from opsctl.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERPOLATED = re.compile(r"\$\{[^}]*\}")
_EXPORT = re.compile(r"^\s*export\s+")
PRIVATE_MODE = 0o600


@dataclass(frozen=True)
class EnvWrite:
    """What a write did: whether a key was there, and a looser mode that was fixed."""

    path: Path
    replaced: bool
    fixed_mode: int | None


def quote(value: str) -> str:
    """Return ``value`` as a single-quoted .env value that python-dotenv reads back exactly.

    Raises :class:`UsageError` for a value containing ``${...}``.
    """
    if "\r" in value:
        message = (
            "The value contains a carriage return, which python-dotenv reads back as a newline."
        )
        raise UsageError(message)
    if _INTERPOLATED.search(value):
        message = (
            "The value contains '${...}', which python-dotenv would expand when reading it back."
        )
        raise UsageError(
            message, hint="Store it another way, or split the '${' so it is not a reference."
        )
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_key(path: Path, name: str, value: str) -> EnvWrite:
    """Set ``name`` to ``value`` in the .env file at ``path`` (created if missing).

    Raises :class:`UsageError` when the file is not UTF-8, cannot be parsed, is a link to
    nothing, or lies in a folder that does not exist: folders are never created.

    The last assignment of ``name`` is replaced in place, keeping an ``export`` prefix and
    the line ending; other lines are kept byte for byte. A new key is appended.
    """
    _check_name(name)
    quoted = quote(value)
    with _locked(path) as target:
        bom, text = _split_bom(_read(target))
        entries = _entries(target, text)
        positions = [index for index, (key, _) in enumerate(entries) if key == name]
        if positions:
            key_index = positions[-1]
            original = entries[key_index][1]
            prefix = "export " if _EXPORT.match(original.lstrip()) else ""
            leading = _leading_blank_lines(original)
            entries[key_index] = (name, f"{leading}{prefix}{name}={quoted}{_line_end(original)}")
        else:
            newline = _newline(text)
            joiner = "" if not text or text.endswith(("\n", "\r")) else newline
            entries.append((name, f"{joiner}{name}={quoted}{newline}"))
        fixed = _write(target, bom + "".join(raw for _, raw in entries))
    return EnvWrite(path=target, replaced=bool(positions), fixed_mode=fixed)


def unset_key(path: Path, name: str) -> EnvWrite:
    """Remove every assignment of ``name``; other lines are kept byte for byte."""
    _check_name(name)
    if not path.exists():
        return EnvWrite(path=path, replaced=False, fixed_mode=None)
    with _locked(path) as target:
        bom, text = _split_bom(_read(target))
        entries = _entries(target, text)
        if all(key != name for key, _ in entries):
            return EnvWrite(path=target, replaced=False, fixed_mode=None)
        # The blank lines python-dotenv counted into a removed entry stay in the file.
        kept = [(key, raw if key != name else _leading_blank_lines(raw)) for key, raw in entries]
        fixed = _write(target, bom + "".join(raw for _, raw in kept))
    return EnvWrite(path=target, replaced=True, fixed_mode=fixed)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        message = (
            f"'{name}' is not a variable name: letters, digits and '_', not starting with a digit."
        )
        raise UsageError(message)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` resolves to; yield that target path.

    A writer that waited may find the file replaced meanwhile: it then locks the new one.
    """
    target = _writable_target(path)
    while True:
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if os.fstat(descriptor).st_ino == os.stat(target).st_ino:
                yield target
                return
        finally:
            os.close(descriptor)


def _writable_target(path: Path) -> Path:
    """The file ``path`` resolves to, refused when it could only be written by creating
    folders: a link whose target is missing is a mistake, not a file to make.
    """
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as error:
        message = f"{path} cannot be resolved: {error}."
        raise UsageError(message) from None
    if target.exists() and not target.is_file():
        message = f"{path} exists and is not a regular file; nothing was changed."
        raise UsageError(message)
    if path.is_symlink() and not target.exists():
        message = f"{path} is a symbolic link to {target}, which does not exist."
        raise UsageError(message, hint="Point the link at an existing file, or remove it.")
    if not target.parent.is_dir():
        message = f"The folder {target.parent} for {path} does not exist."
        raise UsageError(message, hint="Create the folder first, or name a file in one.")
    return target


def _split_bom(text: str) -> tuple[str, str]:
    """A byte-order mark is kept, but kept out of python-dotenv's way."""
    return ("\ufeff", text[1:]) if text.startswith("\ufeff") else ("", text)


def _read(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8", newline="") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        message = (
            f"{path} is not UTF-8 (byte {error.start} cannot be decoded); nothing was changed."
        )
        raise UsageError(message, hint="Convert the file to UTF-8, then run again.") from None


def _entries(path: Path, text: str) -> list[tuple[str | None, str]]:
    """Split ``text`` into (key or None, raw text) pieces that join back to ``text``."""
    from dotenv.parser import parse_stream

    entries: list[tuple[str | None, str]] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line + _leading_newlines(binding.original.string)
            message = (
                f"{path}, line {line}: python-dotenv cannot parse this line; nothing was changed."
            )
            raise UsageError(message, hint="Fix or remove that line, then run the command again.")
        entries.append((binding.key, binding.original.string))
    if "".join(raw for _, raw in entries) != text:
        message = f"{path} could not be split into entries exactly; nothing was changed."
        raise UsageError(message)
    return entries


def _leading_newlines(raw: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", _leading_blank_lines(raw)))


def _leading_blank_lines(raw: str) -> str:
    """The whole blank lines python-dotenv counted into an entry, ahead of its own line."""
    match = re.match(r"(?:[ \t]*(?:\r\n|\r|\n))*", raw)
    return match.group(0) if match else ""


def _newline(text: str) -> str:
    """The line ending added lines take: CRLF in a file with any, a bare CR in a file of
    only those, else LF.
    """
    if "\r\n" in text:
        return "\r\n"
    return "\r" if "\r" in text and "\n" not in text else "\n"


def _line_end(original: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if original.endswith(ending):
            return ending
    return ""


def _write(target: Path, text: str) -> int | None:
    """Write ``text`` to ``target`` at mode 0600; return the looser mode it had, if any."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = PRIVATE_MODE
    write_atomic(target, text, mode=PRIVATE_MODE)
    if stat.S_IMODE(target.stat().st_mode) != PRIVATE_MODE:
        target.chmod(PRIVATE_MODE)
    return mode if mode & 0o077 else None
