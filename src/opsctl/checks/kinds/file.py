"""``file``: a file exists (or not), with a mode, an owner and a text it contains."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import FileCheck

_LARGEST_SEARCHED_BYTES = 16 << 20


def build(spec: FileCheck, context: BuildContext) -> Check:
    """Build a check of ``spec.path`` (relative paths are under the project root)."""
    path = Path(spec.path) if Path(spec.path).is_absolute() else context.root / spec.path

    def probe(timeout_seconds: float) -> Outcome:
        return probe_file(spec, path)

    return make_check(
        spec, context, default_name=f"file {spec.path}", target=str(path), probe=probe
    )


def probe_file(spec: FileCheck, path: Path) -> Outcome:
    """Judge ``path`` against ``spec``."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if spec.exists:
            return Outcome("fail", "does not exist")
        return Outcome("pass", "absent, as required")
    except OSError as error:
        return Outcome("fail", f"cannot read: {error.strerror or error}")
    if not spec.exists:
        return Outcome("fail", "exists, but must not")

    problem = _mismatch(spec, path, info)
    if problem:
        return Outcome("fail", problem)
    return Outcome("pass", f"present, mode {stat.S_IMODE(info.st_mode):04o}, {info.st_size} bytes")


def _mismatch(spec: FileCheck, path: Path, info: os.stat_result) -> str | None:
    mode = stat.S_IMODE(info.st_mode)
    if spec.mode is not None and mode != int(spec.mode, 8):
        return f"mode {mode:04o}, expected {int(spec.mode, 8):04o}"
    if spec.owner is not None and spec.owner not in {str(info.st_uid), _user_name(info.st_uid)}:
        return f"owned by {_user_name(info.st_uid)}, expected {spec.owner}"
    if spec.contains is not None:
        return _lacks(path, spec.contains)
    return None


def _lacks(path: Path, text: str) -> str | None:
    if not path.is_file():
        return "is not a regular file, so it cannot contain text"
    try:
        with path.open("rb") as handle:
            data = handle.read(_LARGEST_SEARCHED_BYTES)
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    return None if text.encode() in data else f"does not contain {text!r}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
