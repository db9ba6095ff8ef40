"""Reference app for ``cli_startup``: opsctl's command tree as one plain Typer module.

Same command names, sub-apps, help panels, options, arguments, types and help texts as
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
keys_app = typer.Typer(
    name="keys",
    help="Set up, check and verify the API keys the stack uses.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(keys_app, rich_help_panel="Keys")
memory_bank_app = typer.Typer(
    name="memory-bank",
    help="Activate, inspect and extend the memory bank that people and assistants keep.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(
    memory_bank_app,
    short_help="Activate, inspect and extend the memory bank.",
    rich_help_panel="Memory bank",
)
env_app = typer.Typer(
    name="env",
    help="Build and list the services' own Python environments.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(env_app, rich_help_panel="Configuration")
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


@app.command(
    "exec",
    short_help="Run a command with a service's environment, where it runs.",
    rich_help_panel="Lifecycle",
)
def exec_(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose environment to run in.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
) -> None:
    """Run a command where SERVICE runs (in its container, with the docker runtime), with
    its environment and working directory: `opsctl exec api -- python manage.py check`.

    The command's exit code is opsctl's.
    """


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
    online: Annotated[
        bool,
        typer.Option(
            "--online", help="Verify keys live with their providers, not only their shape."
        ),
    ] = False,
    json: JsonOption = False,
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
    json: JsonOption = False,
) -> None:
    """Run every health check concurrently, each within its own deadline.

    Per service: its process state (a program that keeps crashing is reported as
    crash-looping whatever supervisord shows), then its declared checks (a TCP check of
    its port when it declares none). Then the host's free disk space. Exits 0 when healthy,
    3 when only warnings, 1 when anything failed.
    """


@keys_app.command("status")
def keys_status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show each declared key: provider, variable, source, masked value, format, last check.

    Sends no request. Exits 1 when a required key is missing or malformed.
    """


@keys_app.command("verify")
def keys_verify(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Keys to verify; all when none.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Verify keys live, concurrently: one cheap read-only request per key, each with a timeout.

    Each key ends valid, invalid, forbidden (valid but lacking scope), rate-limited,
    unreachable, bad-format (no request sent), missing or skipped. Exits 0 when every
    required key is valid, 3 when the only problem is rate limiting, else 1.
    """


@keys_app.command("setup")
def keys_setup(
    ctx: typer.Context,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Go through every key, not only missing or failing ones.")
    ] = False,
    check: Annotated[
        bool | None,
        typer.Option("--verify/--no-verify", help="Verify each new key live (default: ask)."),
    ] = None,
) -> None:
    """Guided set-up of missing or malformed keys, writing them to the .env file.

    For each key: what it is for and where to get one, the current value masked (Enter
    keeps it), a hidden prompt, a format check that asks again, an optional live check.
    Needs a terminal; scripts use `opsctl keys set NAME --stdin`.
    """


@keys_app.command("set")
def keys_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The declared key, or any variable name.")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from standard input (for scripts).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Store a value that fails the format check.")
    ] = False,
) -> None:
    """Store a key in the .env file, atomically, at mode 0600. The value is never echoed."""


@keys_app.command("unset")
def keys_unset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The declared key, or any variable name.")],
) -> None:
    """Remove a key from the .env file; every other line is kept as it was."""


@memory_bank_app.command("init")
def memory_bank_init(ctx: typer.Context) -> None:
    """Create the bank folder and the profile's files, each with its heading; never overwrites."""


@memory_bank_app.command("activate")
def memory_bank_activate(ctx: typer.Context, json: JsonOption = False) -> None:
    """Load every file, check the expected set, print the bank's status, and record it.

    Exits 0 when active (every expected file present), 1 when inactive.
    """


@memory_bank_app.command("status")
def memory_bank_status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print the bank's status like `activate`, without recording an activation."""


@memory_bank_app.command("log")
def memory_bank_log(
    ctx: typer.Context,
    file: Annotated[
        str, typer.Argument(help="The bank file, with or without .md (e.g. decisionLog).")
    ],
    title: Annotated[str, typer.Argument(help="The entry's title.")],
    body: Annotated[
        str | None,
        typer.Option("--body", help="The entry's text; '-' reads it from standard input."),
    ] = None,
) -> None:
    """Append a timestamped entry to a bank file, atomically, in the bank's time zone."""


@memory_bank_app.command("history")
def memory_bank_history(
    ctx: typer.Context,
    last: Annotated[
        int, typer.Option("--last", min=1, help="How many recent activations to show.")
    ] = 30,
    json: JsonOption = False,
) -> None:
    """Show each file's entries, size and staleness over the recorded activations."""


@memory_bank_app.command("show")
def memory_bank_show(
    ctx: typer.Context,
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=1, help="Cut to about this many tokens (4 characters each)."),
    ] = None,
) -> None:
    """Print the whole bank as one text to paste into an assistant.

    With --budget, the text outside entries is kept and entries are taken newest first
    until the budget is reached; each file notes how many entries were left out.
    """


@memory_bank_app.command("install-hook")
def memory_bank_install_hook(
    ctx: typer.Context,
    roo: Annotated[
        bool, typer.Option("--roo", help="Write the memory-bank mode into .roomodes (Roo Code).")
    ] = False,
    cline: Annotated[
        bool, typer.Option("--cline", help="Write the rules into .clinerules (Cline).")
    ] = False,
    shell: Annotated[
        bool, typer.Option("--shell", help="Also write a shell snippet that activates on start.")
    ] = False,
) -> None:
    """Make assistants activate the bank at the start of every session.

    Without --roo or --cline, writes what the configured profile's assistant reads
    (.roomodes for roo, .clinerules for cline, both for custom). Other modes and rules
    in those files are kept.
    """


class RenderTarget(StrEnum):
    """What ``config render`` can write."""

    supervisord = "supervisord"
    compose = "compose"
    cron = "cron"
    systemd = "systemd"


@config_app.command("show")
def config_show(ctx: typer.Context, json: JsonOption = False) -> None:
    """Print the resolved configuration: defaults filled, placeholders expanded, secrets masked."""


@config_app.command("validate")
def config_validate(ctx: typer.Context) -> None:
    """Check the configuration and exit 0 when valid, 2 (naming file, key and line) when not."""


@config_app.command("render")
def config_render(
    ctx: typer.Context,
    target: Annotated[RenderTarget, typer.Argument(help="What to render.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Render a generated artefact from the configuration: supervisord.conf as opsctl uses
    it, the equivalent compose file, or the scheduled jobs for cron or systemd (with -o, a
    folder for the systemd units).
    """


@app.command(
    "init",
    short_help="Scaffold a new project without overwriting anything.",
    rich_help_panel="Configuration",
)
def init(
    folder: Annotated[
        Path, typer.Argument(help="The project folder; created if missing.")
    ] = Path(),
    name: Annotated[
        str | None, typer.Option("--name", help="The project's name; default: the folder's.")
    ] = None,
) -> None:
    """Scaffold a project: a commented opsctl.toml, a .env.example from the declared keys
    (names only, no values), the memory bank's files, and the .gitignore lines for .env
    and .opsctl/. Never overwrites a file.
    """


@env_app.command("sync")
def env_sync(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to sync; all when none.")
    ] = None,
) -> None:
    """Build each declared environment that is missing or stale; the others are left alone.

    A failed build shows pip's error and leaves the environment in use as it was (exit 1).
    """


@env_app.command("list")
def env_list(ctx: typer.Context, json: JsonOption = False) -> None:
    """List each declared environment: service, path, and in sync, stale, missing or broken.

    Exits 1 when any is not in sync.
    """


if __name__ == "__main__":
    app(prog_name="opsctl")
