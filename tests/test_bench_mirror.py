"""bench/_bare_typer_app.py mirrors opsctl's whole command tree; these tests catch drift.

The real tree is built the way ``cli.LazyGroup.get_command`` builds it, one command module
at a time from ``cli.COMMANDS``; the mirror is loaded from its path. Both are compared as
flat maps, one entry per command and per parameter, so a failure names what differs.
"""

from __future__ import annotations

import importlib.util
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin

import pytest
import typer
from typer.core import TyperGroup

from opsctl import cli

BARE_APP = Path(__file__).resolve().parents[1] / "bench" / "_bare_typer_app.py"
BARE_MODULE = "opsctl_bench_bare_typer_app"


def load_bare_app() -> ModuleType:
    """Import the mirror from its file (``bench`` is no package)."""
    spec = importlib.util.spec_from_file_location(BARE_MODULE, BARE_APP)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[BARE_MODULE] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[BARE_MODULE]
    return module


def real_command(name: str) -> Any:
    """Build one top-level command as ``cli.LazyGroup.get_command`` does when it runs."""
    return cli.build_command(name)


@pytest.fixture(scope="module")
def real_root() -> TyperGroup:
    root = typer.main.get_command(cli.app)
    assert isinstance(root, TyperGroup)
    return root


@pytest.fixture(scope="module")
def bare_root() -> TyperGroup:
    root = typer.main.get_command(load_bare_app().app)
    assert isinstance(root, TyperGroup)
    return root


def _plain(value: Any) -> Any:
    """A default as comparable data: enum members by value (each app has its own enums)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _annotation(annotation: Any) -> str:
    """A type as text; an enum as its values (each app has its own enum classes)."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "enum(" + ", ".join(str(member.value) for member in annotation) + ")"
    origin = get_origin(annotation)
    if origin is not None:
        args = ", ".join(_annotation(arg) for arg in get_args(annotation))
        return f"{getattr(origin, '__name__', repr(origin))}[{args}]"
    return getattr(annotation, "__name__", repr(annotation))


def _type(param: Any) -> tuple[Any, ...]:
    descriptor = param.type_descriptor
    info = descriptor.parameter_info
    return (_annotation(descriptor.annotation), info.min, info.max, descriptor.is_path)


def describe_param(param: Any) -> dict[str, Any]:
    """What a parameter looks like on the command line, and its help."""
    info: dict[str, Any] = {
        "kind": param.param_type_name,
        "opts": list(param.opts),
        "secondary_opts": list(param.secondary_opts),
        "required": param.required,
        "nargs": param.nargs,
        "multiple": param.multiple,
        "type": _type(param),
        "default": _plain(param.default),
        "metavar": param.metavar,
        "envvar": param.envvar,
        "eager": param.is_eager,
        "help": getattr(param, "help", None),
        "panel": getattr(param, "rich_help_panel", None),
    }
    if param.param_type_name == "option":
        info |= {"flag": param.is_flag, "count": param.count, "hidden": param.hidden}
    return info


def flatten(command: Any, path: str) -> dict[str, Any]:
    """One entry per command (its structure) and per parameter, keyed by their path."""
    entries: dict[str, Any] = {
        path: {
            "group": isinstance(command, TyperGroup),
            "params": [param.name for param in command.params],
            "help": command.help,
            "no_args_is_help": command.no_args_is_help,
            "invoke_without_command": getattr(command, "invoke_without_command", None),
            "hidden": command.hidden,
        }
    }
    if " " in path:  # a top-level command's panel is cli.COMMANDS's: see test_listing_line_matches
        entries[path]["panel"] = getattr(command, "rich_help_panel", None)
    for param in command.params:
        entries[f"{path} [{param.name}]"] = describe_param(param)
    if isinstance(command, TyperGroup):
        ctx = typer.Context(command)
        names = command.list_commands(ctx)
        entries[path]["commands"] = names
        for name in names:
            sub = command.get_command(ctx, name)
            assert sub is not None
            entries |= flatten(sub, f"{path} {name}")
    return entries


def _only(entries: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        path: {key: value for key, value in entry.items() if key in keys}
        for path, entry in entries.items()
    }


STRUCTURE = (
    "group",
    "commands",
    "params",
    "kind",
    "opts",
    "secondary_opts",
    "required",
    "nargs",
    "multiple",
    "type",
    "default",
    "metavar",
    "envvar",
    "eager",
    "flag",
    "count",
    "hidden",
    "no_args_is_help",
    "invoke_without_command",
    "panel",
)
HELP = ("help",)


def test_top_level_commands_and_order(bare_root: TyperGroup) -> None:
    """The mirror lists the same commands, in the same order, as ``cli.COMMANDS``."""
    assert bare_root.list_commands(typer.Context(bare_root)) == list(cli.COMMANDS)


def test_root_options_match(real_root: TyperGroup, bare_root: TyperGroup) -> None:
    """The global options (the root callback) are the same."""
    real = {f"[{p.name}]": describe_param(p) for p in real_root.params}
    bare = {f"[{p.name}]": describe_param(p) for p in bare_root.params}
    assert bare == real
    assert bare_root.help == real_root.help


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_command_structure_matches(name: str, bare_root: TyperGroup) -> None:
    """Each command's subcommands and parameters: names, flags, required, nargs, types."""
    bare = bare_root.get_command(typer.Context(bare_root), name)
    assert bare is not None, f"the mirror has no command {name}"
    assert _only(flatten(bare, name), STRUCTURE) == _only(
        flatten(real_command(name), name), STRUCTURE
    )


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_command_help_matches(name: str, bare_root: TyperGroup) -> None:
    """Each command's and parameter's help text, as ``--help`` below the top level shows."""
    bare = bare_root.get_command(typer.Context(bare_root), name)
    assert bare is not None, f"the mirror has no command {name}"
    assert _only(flatten(bare, name), HELP) == _only(flatten(real_command(name), name), HELP)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_listing_line_matches(name: str, bare_root: TyperGroup) -> None:
    """``opsctl --help`` shows each command's one-line help under its panel; so must the mirror."""
    _, _, short_help, panel = cli.COMMANDS[name]
    bare = bare_root.get_command(typer.Context(bare_root), name)
    assert bare is not None, f"the mirror has no command {name}"
    assert bare.get_short_help_str(limit=1000) == short_help
    assert getattr(bare, "rich_help_panel", None) == panel
