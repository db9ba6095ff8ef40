"""The ``opsctl`` command: global options, lazy command loading, and the one place where
errors become messages and exit codes.

Command modules are imported only when their command runs; ``opsctl --help`` lists them
from the table below without importing any.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from opsctl import __version__, envvars

# name: (module, attribute, one-line help, help panel)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "up": (
        "opsctl.commands.lifecycle",
        "up",
        "Start the stack, or some services, and wait until healthy.",
        "Lifecycle",
    ),
    "down": (
        "opsctl.commands.lifecycle",
        "down",
        "Stop every service in reverse dependency order.",
        "Lifecycle",
    ),
    "restart": (
        "opsctl.commands.lifecycle",
        "restart",
        "Restart services in dependency order.",
        "Lifecycle",
    ),
    "status": (
        "opsctl.commands.lifecycle",
        "status",
        "Show each service's state, pid, uptime, port and health.",
        "Lifecycle",
    ),
    "logs": (
        "opsctl.commands.lifecycle",
        "logs",
        "Show or follow a service's output.",
        "Lifecycle",
    ),
    "exec": (
        "opsctl.commands.lifecycle",
        "exec_",
        "Run a command with a service's environment, where it runs.",
        "Lifecycle",
    ),
    "verify": (
        "opsctl.commands.verify",
        "verify",
        "Check readiness: config, files, keys, ports, disk and your own checks.",
        "Readiness",
    ),
    "health": (
        "opsctl.commands.health",
        "health",
        "Run every health check; exit 0 healthy, 3 degraded, 1 unhealthy.",
        "Health",
    ),
    "monitor": (
        "opsctl.commands.monitor",
        "app",
        "Watch the stack: checks, resources, heartbeats, alerts and /metrics.",
        "Health",
    ),
    "notify": (
        "opsctl.commands.notify",
        "app",
        "Send notifications: a test message, the queue of undelivered ones.",
        "Health",
    ),
    "backup": (
        "opsctl.commands.backup",
        "app",
        "Back up, list, verify, restore and prune backups of files and Redis.",
        "Backup",
    ),
    "gpu": (
        "opsctl.commands.gpu",
        "app",
        "Show, check, clean up and tune the GPUs and the frameworks using them.",
        "GPU",
    ),
    "init": (
        "opsctl.commands.init",
        "init",
        "Scaffold a new project without overwriting anything.",
        "Configuration",
    ),
    "keys": (
        "opsctl.commands.keys",
        "app",
        "Set up, check and verify the API keys the stack uses.",
        "Keys",
    ),
    "memory-bank": (
        "opsctl.commands.memory_bank",
        "app",
        "Activate, inspect and extend the memory bank.",
        "Memory bank",
    ),
    "env": (
        "opsctl.commands.env",
        "app",
        "Build and list the services' own Python environments.",
        "Configuration",
    ),
    "config": (
        "opsctl.commands.config",
        "app",
        "Show, validate and render the configuration.",
        "Configuration",
    ),
}


@dataclass
class AppState:
    """Global options, handed to every command through the context."""

    config_path: Path | None = None
    env_file: Path | None = None
    verbose: int = 0
    quiet: int = 0
    debug: bool = False


_state = AppState()


def build_command(name: str) -> Any:
    """Import the module of the top-level command ``name`` (a key of :data:`COMMANDS`) and
    return its click command, named ``name``.
    """
    module_name, attribute, _, panel = COMMANDS[name]
    target = getattr(importlib.import_module(module_name), attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name=name, rich_help_panel=panel)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A command group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        _, _, short_help, panel = entry
        if ctx.meta.get("opsctl.listing"):
            placeholder = TyperCommand(name=cmd_name, short_help=short_help, help=short_help)
            placeholder.rich_help_panel = panel
            return placeholder
        return build_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        ctx.meta["opsctl.listing"] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta.pop("opsctl.listing", None)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        self.commands = dict.fromkeys(COMMANDS)  # type: ignore[assignment]  # for "did you mean"
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    name="opsctl",
    help="Operate a GPU application stack run under supervisord: one declarative command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"opsctl {__version__}\n")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"Path of opsctl.toml. [env: {envvars.CONFIG}]",
            show_default=False,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="The .env file to read instead of project.env_file."),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More detail; repeat for more.")
    ] = 0,
    quiet: Annotated[
        int, typer.Option("--quiet", "-q", count=True, help="Only problems; repeat for less.")
    ] = 0,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=envvars.DEBUG,
            show_envvar=True,
            help="Show tracebacks (secrets scrubbed).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operate a GPU application stack run under supervisord: one declarative command."""
    from opsctl._logging import configure_logging, verbosity_level

    _state.config_path = config
    _state.env_file = env_file
    _state.verbose, _state.quiet = verbose, quiet
    _state.debug = debug
    level = verbosity_level(
        verbose=verbose + 2 * _state.debug, quiet=quiet, interactive=sys.stderr.isatty()
    )
    configure_logging(level)
    ctx.obj = _state


def main(argv: list[str] | None = None) -> None:
    """Run opsctl; turn every error into one line on stderr and a documented exit code."""
    from opsctl.errors import ExitCode, OpsctlError

    args = hoist_global_flags(sys.argv[1:] if argv is None else argv)
    _state.debug = "--debug" in args or os.environ.get(envvars.DEBUG, "") not in {"", "0"}
    try:
        typer.main.get_command(app).main(args=args, prog_name="opsctl")
    except OpsctlError as error:
        _report(error, debug=_state.debug)
        sys.exit(int(error.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as error:
        _report(error, debug=_state.debug)
        sys.exit(int(ExitCode.FAILED))


_GLOBAL_FLAGS = re.compile(r"^(-q+|-v+|--quiet|--verbose|--debug)$")
_GLOBAL_OPTIONS = ("-c", "--config", "--env-file")
_GLOBAL_OPTION_PREFIXES = tuple(f"{option}=" for option in _GLOBAL_OPTIONS)


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move global options written after the command to the front, so ``opsctl health -q
    -c proj`` works like ``opsctl -q -c proj health``. Nothing after ``--`` moves.
    """
    end = args.index("--") if "--" in args else len(args)
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < end:
        arg = args[index]
        if _GLOBAL_FLAGS.match(arg) or arg.startswith(_GLOBAL_OPTION_PREFIXES):
            front.append(arg)
        elif arg in _GLOBAL_OPTIONS and index + 1 < end:
            front += [arg, args[index + 1]]
            index += 1
        else:
            rest.append(arg)
        index += 1
    return [*front, *rest, *args[end:]]


def _report(error: Exception, *, debug: bool) -> None:
    from opsctl import secrets
    from opsctl.errors import OpsctlError

    if debug:
        import traceback

        sys.stderr.write(secrets.scrub("".join(traceback.format_exception(error))))
    if isinstance(error, OpsctlError):
        text = f"error: {error.message}"
        if error.hint:
            text += f"\nhint: {error.hint}"
    else:
        text = f"error: unexpected {type(error).__name__}: {error}"
        text += "\nhint: rerun with --debug for the traceback."
    sys.stderr.write(secrets.scrub(text) + "\n")
