"""Reference app for ``cli_startup``: opsctl's command tree as one plain Typer module.

Same command names, sub-app, help panels, options, arguments, types and help texts as
``opsctl``, every command defined here directly with an empty body. Nothing is loaded
lazily and nothing from opsctl is imported, so its start-up time is what Typer alone costs
for this tree. Keep it in step with ``opsctl.cli`` and ``opsctl.commands``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

VERSION = "0.1.0"
JSON_HELP = "Print one JSON document on stdout and nothing else there."

app = typer.Typer(
    name="opsctl",
    help="Operate a GPU application stack run under supervisord: one declarative command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    name="config",
    help="Show, validate and render the configuration.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(config_app, rich_help_panel="Configuration")


def _print_version(value: bool) -> None:
    """Print the version and stop, as ``--version`` does."""
    if value:
        sys.stdout.write(f"opsctl {VERSION}\n")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Path of opsctl.toml. [env: OPSCTL_CONFIG]", show_default=False
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
            envvar="OPSCTL_DEBUG",
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


ServicesArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Services to act on; all when none is named.", show_default=False),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.1, help="Seconds to wait for health; default runtime.up_timeout_seconds."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command(
    "up",
    short_help="Start the stack, or some services, and wait until healthy.",
    rich_help_panel="Lifecycle",
)
def up(
    ctx: typer.Context,
    services: ServicesArgument = None,
    timeout: TimeoutOption = None,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Start even if readiness checks fail (says so).")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Start the stack, or the named services and what they depend on.

    Services start in dependency order; each must run and pass its health checks before
    what depends on it starts. Running services whose definition is unchanged are left
    alone, so `up` can be run again at any time. Exits 1, with the tail of each failed
    service's log, if anything did not come up within the timeout.

    Nothing starts until `opsctl verify` passes; --skip-verify overrides that.
    """


@app.command(
    "down",
    short_help="Stop every service in reverse dependency order.",
    rich_help_panel="Lifecycle",
)
def down(ctx: typer.Context, json: JsonOption = False) -> None:
    """Stop every service in reverse dependency order, then supervisord.

    Each service gets its stop signal and stop timeout, then is killed with the processes
    it started; a dependent is confirmed down before what it depends on is stopped.
    """


@app.command(
    "restart", short_help="Restart services in dependency order.", rich_help_panel="Lifecycle"
)
def restart(
    ctx: typer.Context,
    services: ServicesArgument = None,
    timeout: TimeoutOption = None,
    json: JsonOption = False,
) -> None:
    """Restart the named services (all when none is named), re-reading the config and .env.

    They stop in reverse dependency order and start again in order, waiting for health.
    """


@app.command(
    "status",
    short_help="Show each service's state, pid, uptime, port and health.",
    rich_help_panel="Lifecycle",
)
def status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show each service's state, pid, uptime, port and health.

    Exits 0 whenever the state could be read; `opsctl health` is the command that judges.
    """


@app.command("logs", short_help="Show or follow a service's output.", rich_help_panel="Lifecycle")
def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose output to show.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until interrupted.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many of the last lines to show.")
    ] = 50,
) -> None:
    """Show the last lines of a service's combined stdout and stderr, or follow them."""


class OutputFormat(StrEnum):
    """How ``verify`` prints its report on stdout."""

    table = "table"
    tap = "tap"


@app.command(
    "verify",
    short_help="Check readiness: config, files, keys, ports, disk and your own checks.",
    rich_help_panel="Readiness",
)
def verify(
    ctx: typer.Context,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only checks with this name, section or tag (repeatable)."),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip", help="Leave out checks with this name, section or tag (repeatable)."
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Warnings count: exit 3 when only warnings.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report to this file.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table, or tap for TAP version 13.")
    ] = OutputFormat.table,
) -> None:
    """Check that the stack is ready to run: config, files, keys, ports, disk, backup, GPU,
    memory bank, and every [[verify.checks]] entry, concurrently, each within its timeout.

    Exits 0 when ready, 1 when a check failed, 3 with --strict when only warnings.
    """


@app.command(
    "health",
    short_help="Run every health check; exit 0 healthy, 3 degraded, 1 unhealthy.",
    rich_help_panel="Health",
)
def health(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None,
        typer.Argument(help="Check only these services; all, plus the host, when none."),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run every health check concurrently, each within its own deadline.

    Per service: its process state (a program that keeps crashing is reported as
    crash-looping whatever supervisord shows), then its declared checks (a TCP check of
    its port when it declares none). Then the host's free disk space. Exits 0 when healthy,
    3 when only warnings, 1 when anything failed.
    """


class RenderTarget(StrEnum):
    """What ``config render`` can write."""

    supervisord = "supervisord"


# Passed as help= because, as a one-line docstring, this text is over the line limit.
@config_app.command(
    help="Print the resolved configuration: defaults filled in, placeholders expanded,"
    " secrets masked."
)
def show(
    ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None: ...


@config_app.command()
def validate(ctx: typer.Context) -> None:
    """Check the configuration and exit 0 when valid, 2 (naming file, key and line) when not."""


@config_app.command()
def render(
    ctx: typer.Context,
    target: Annotated[RenderTarget, typer.Argument(help="What to render.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Render a generated artefact from the configuration, as opsctl itself uses it."""


if __name__ == "__main__":
    app(prog_name="opsctl")
