"""The ``paths`` source: globs and excludes from ``[backup]`` turned into archive members.

Patterns are relative to the project root unless absolute; ``**`` matches any depth. A
folder is taken with everything under it. Symlinks are stored as links, never followed.
An exclude pattern is matched against the path relative to the root and against the base
name, so ``*.tmp`` and ``cache/**`` both work; an excluded folder is skipped whole.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from opsctl.errors import OperationFailedError

SOURCE = "files"
ROOT_PREFIX = f"{SOURCE}/root/"
ABSOLUTE_PREFIX = f"{SOURCE}/abs/"


@dataclass(frozen=True)
class PathItem:
    """One thing to archive: its member name and where it is on this host."""

    name: str
    path: Path


@dataclass(frozen=True)
class PathPlan:
    """What the patterns matched, and the globs that matched nothing."""

    items: tuple[PathItem, ...]
    unmatched: tuple[str, ...]


def member_name(path: Path, root: Path) -> str:
    """The archive name of ``path``: under ``files/root/`` inside the project root, under
    ``files/abs/`` (the absolute path) elsewhere.
    """
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        pass
    else:
        return ROOT_PREFIX.rstrip("/") if relative == "." else ROOT_PREFIX + relative
    if path == Path("/"):
        return ABSOLUTE_PREFIX.rstrip("/")
    return ABSOLUTE_PREFIX + path.as_posix().lstrip("/")


def plan_paths(
    patterns: list[str], excludes: list[str], *, root: Path, skip: tuple[Path, ...] = ()
) -> PathPlan:
    """Expand ``patterns`` into items, sorted, each once. ``skip`` folders (the backup
    destination itself) are never entered. Raises :class:`OperationFailedError` for a
    literal path that does not exist: a configured folder that vanished is a failure, not
    an empty backup.
    """
    seen: dict[str, PathItem] = {}
    unmatched = []
    skip_resolved = {folder.resolve() for folder in skip}
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(root / pattern)
        matches = sorted(glob.glob(full, recursive=True, include_hidden=True))
        if not matches:
            if glob.has_magic(pattern):
                unmatched.append(pattern)
                continue
            message = f"backup.paths names '{pattern}', which does not exist ({full})."
            raise OperationFailedError(message, hint="Fix backup.paths or restore the folder.")
        for match in matches:
            for item in _walk(Path(os.path.normpath(match)), root, excludes, skip_resolved):
                seen.setdefault(item.name, item)
    return PathPlan(tuple(sorted(seen.values(), key=lambda item: item.name)), tuple(unmatched))


def _walk(top: Path, root: Path, excludes: list[str], skip: set[Path]) -> Iterator[PathItem]:
    if _excluded(top, root, excludes) or top.resolve() in skip:
        return
    yield PathItem(member_name(top, root), top)
    if top.is_symlink() or not top.is_dir():
        return
    for folder, dirs, files in os.walk(top, onerror=_raise_walk_error):
        base = Path(folder)
        kept = []
        for name in sorted(dirs):
            child = base / name
            if _excluded(child, root, excludes) or child.resolve() in skip:
                continue
            yield PathItem(member_name(child, root), child)
            if not child.is_symlink():
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            child = base / name
            if not _excluded(child, root, excludes):
                yield PathItem(member_name(child, root), child)


def _excluded(path: Path, root: Path, excludes: list[str]) -> bool:
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.as_posix()
    return any(
        fnmatchcase(relative, pattern)
        or fnmatchcase(path.as_posix(), pattern)
        or fnmatchcase(path.name, pattern)
        for pattern in excludes
    )


def _raise_walk_error(error: OSError) -> None:
    message = f"Cannot read {error.filename}: {error.strerror}."
    raise OperationFailedError(message, hint="Give opsctl read access or exclude it.")
