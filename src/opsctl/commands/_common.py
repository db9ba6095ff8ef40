"""What every command module shares: loading the project and writing output."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from opsctl.config import Project
    from opsctl.runtime import Runtime

JSON_HELP = "Print one JSON document on stdout and nothing else there."


def load_project(ctx: typer.Context, *, lenient: bool = False) -> Project:
    """Load the project named by the global options (``lenient``: see ``load_project``)."""
    from opsctl.config import load_project as load

    state = ctx.find_root().obj
    return load(
        getattr(state, "config_path", None),
        env_file=getattr(state, "env_file", None),
        lenient=lenient,
    )


def load_runtime(ctx: typer.Context, *, lenient: bool = False) -> Runtime:
    """Load the project and return its runtime."""
    from opsctl.runtime import get_runtime

    return get_runtime(load_project(ctx, lenient=lenient))


def plain(text: str) -> str:
    """Make ``text`` safe to print: escape rich markup (program output may contain
    ``[/...]``) and show control characters (escape sequences, NUL) as ``\\xNN``.
    """
    from rich.markup import escape

    return escape(show_controls(text))


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def show_controls(text: str) -> str:
    """Replace control characters other than tab and newline with ``\\xNN``."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def quiet(ctx: typer.Context) -> bool:
    """True when ``-q`` asked for problems only."""
    return bool(getattr(ctx.find_root().obj, "quiet", 0))


def console() -> Console:
    """A console on stdout; colour only on a terminal and without ``NO_COLOR``."""
    import os

    from rich.console import Console

    # Off a terminal, rich would wrap at 80 columns; logs and pipes read better unwrapped.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200"))
    return Console(highlight=False, soft_wrap=False, width=width)


def error_console() -> Console:
    """A console on stderr, for problems and progress."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Write ``data`` as one strict JSON document on stdout: a figure that is not finite
    (NaN, an infinity) is written as null, never as a token JSON does not have.
    """
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
