"""Find the line of ``opsctl.toml`` where a key path is written, for error messages.

TOML parsers do not report positions, so this reads table headers and ``key =`` lines.
It answers the deepest part of the path it can find, which is what an operator needs to
jump to the right place.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _split_dotted(dotted: str) -> list[str]:
    return [part.strip().strip("\"'") for part in dotted.split(".")]


def find_line(text: str, path: tuple[str | int, ...]) -> int | None:
    """Return the 1-based line that best matches ``path``, or ``None`` if nothing does."""
    wanted = [str(part) for part in path]
    array_counts: dict[tuple[str, ...], int] = {}
    table: list[str] = []
    best_line: int | None = None
    best_depth = 0

    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split_dotted(header.group(2))
            if header.group(1) == "[[":
                index = array_counts.get(tuple(parts), 0)
                array_counts[tuple(parts)] = index + 1
                table = [*parts, str(index)]
            else:
                table = parts
            candidate = table
        else:
            key = _KEY.match(line)
            if not key:
                continue
            candidate = [*table, *_split_dotted(key.group(1))]

        # A line matches when its path leads to the wanted one, or when the wanted path is
        # the start of a longer header ("[servicse.redis]" for an unknown "servicse").
        depth = _common_prefix(candidate, wanted)
        leads = depth == len(candidate) or (header is not None and depth == len(wanted))
        if depth > best_depth and leads:
            best_line, best_depth = number, depth

    return best_line


def _common_prefix(left: list[str], right: list[str]) -> int:
    depth = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        depth += 1
    return depth
