"""Text from outside (check and component names, error messages) made safe for one log line."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: any of them
# could split a log line or forge a second one.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: object) -> str:
    """``text`` as a string with every control character written as ``\\xNN`` (``\\n``
    for a newline, ``\\uNNNN`` for the line separators), so that it stays on one line.
    """
    return _CONTROL.sub(_escaped, str(text))


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    if character == "\n":
        return "\\n"
    if ord(character) > 0xFF:  # noqa: PLR2004 (beyond Latin-1: four hex digits)
        return f"\\u{ord(character):04x}"
    return f"\\x{ord(character):02x}"
