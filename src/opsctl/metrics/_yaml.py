"""A small YAML writer for the rendered Prometheus files (no YAML library needed at run time).

Block style for mappings and lists, every string double-quoted with JSON's escapes (a
valid YAML double-quoted scalar), so a value can never turn into a number, a boolean or
a comment by accident.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def to_yaml(value: Any) -> str:
    """Return ``value`` (dicts, lists, strings, numbers, booleans, None) as a YAML document."""
    return "\n".join(_lines(value, 0)) + "\n"


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict) and value:
        lines: list[str] = []
        for key, item in value.items():
            lines.extend(_entry(f"{pad}{_key(str(key))}:", item, indent))
        return lines
    if isinstance(value, list) and value:
        lines = []
        for item in value:
            lines.extend(_list_item(pad, item, indent))
        return lines
    return [pad + _scalar(value)]


def _entry(head: str, item: Any, indent: int) -> list[str]:
    """``head`` is ``key:`` at ``indent``; a list under it sits at the key's own indentation
    (as YAML allows), a mapping two columns further in.
    """
    if isinstance(item, list) and item:
        return [head, *_lines(item, indent)]
    if isinstance(item, dict) and item:
        return [head, *_lines(item, indent + 2)]
    return [f"{head} {_scalar(item)}"]


def _list_item(pad: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, dict) and item:
        inner = _lines(item, indent + 2)
        return [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
    if isinstance(item, list) and item:
        return [f"{pad}-", *_lines(item, indent + 2)]
    return [f"{pad}- {_scalar(item)}"]


def _key(key: str) -> str:
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return json.dumps(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return json.dumps(str(value), ensure_ascii=False)
