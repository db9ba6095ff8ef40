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
from typer.core import TyperGroup

VERSION = "0.1.0"
JSON_HELP = "Print one JSON document on stdout and nothing else there."

# opsctl lists its commands in the order of its table; Typer alone would list every
# command before every sub-app, moving the Configuration panel above Backup and GPU.
LISTING_ORDER = (
    "up",
    "down",
    "restart",
    "status",
    "logs",
    "exec",
    "verify",
    "health",
    "monitor",
    "notify",
    "backup",
    "gpu",
    "init",
    "keys",
    "memory-bank",
    "env",
    "config",
)


class ListedInOrder(TyperGroup):
    """The root group, listing its commands in ``LISTING_ORDER``."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return sorted(self.commands, key=LISTING_ORDER.index)


app = typer.Typer(
    cls=ListedInOrder,
    name="opsctl",
    help="Operate a GPU application stack run under supervisord: one declarative command.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# The monitor's help is its callback's docstring: what the loop does and its exit codes.
monitor_app = typer.Typer(name="monitor", add_completion=False)
app.add_typer(
    monitor_app,
    short_help="Watch the stack: checks, resources, heartbeats, alerts and /metrics.",
    rich_help_panel="Health",
)
notify_app = typer.Typer(
    name="notify",
    help="Send notifications: a test message, the queue of undelivered ones.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(notify_app, rich_help_panel="Health")
backup_app = typer.Typer(
    name="backup",
    help="Back up, list, verify, restore and prune backups of files and Redis.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(backup_app, rich_help_panel="Backup")
gpu_app = typer.Typer(
    name="gpu",
    help="Show, check, clean up and tune the GPUs and the frameworks using them.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(gpu_app, rich_help_panel="GPU")
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
    """Show each service's state, pid, uptime, port and health, then what the components
    that embed opsctl's agent last reported to the stack's Redis.

    Exits 0 whenever the state could be read; `opsctl health` is the command that judges.
    A Redis that cannot be read is said in one line; the services are still shown.
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
    push_gateway: Annotated[
        str | None,
        typer.Option(
            "--push-gateway",
            metavar="URL",
            help="Push opsctl_verify_* to this Pushgateway (default: monitoring.pushgateway_url).",
        ),
    ] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            metavar="DIR",
            help="Write opsctl_verify_* to DIR/opsctl_verify.prom for node_exporter "
            "(default: monitoring.textfile_dir).",
        ),
    ] = None,
) -> None:
    """Check that the stack is ready to run: config, files, keys, ports, disk, backup, GPU,
    memory bank, and every [[verify.checks]] entry, concurrently, each within its timeout.
    With a Pushgateway or a textfile folder, the verdict is also published as metrics.

    Exits 0 when ready, 1 when a check failed (or publishing the metrics failed), 3 with
    --strict when only warnings.
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
    history: Annotated[
        bool,
        typer.Option(
            "--history", help="Show what the monitor recorded (transitions, uptime) instead."
        ),
    ] = False,
    since: Annotated[
        str,
        typer.Option(
            "--since", help="With --history: how far back (30m, 24h, 7d, 1d12h; 3650d at most)."
        ),
    ] = "24h",
) -> None:
    """Run every health check concurrently, each within its own deadline.

    Per service: its process state (a program that keeps crashing is reported as
    crash-looping whatever supervisord shows), then its declared checks (a TCP check of
    its port when it declares none). Then the host's free disk space. Exits 0 when healthy,
    3 when only warnings, 1 when anything failed. With --history, runs nothing: shows the
    alert and check transitions `opsctl monitor` recorded and each check's uptime (exit 0).
    """


@monitor_app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.1,
            help="Seconds between cycles (default: monitoring.interval_seconds).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve /metrics on this port (default: monitoring.metrics_port; none: off).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Run one cycle and exit with health's exit code (cron)."),
    ] = False,
    cycles: Annotated[
        int | None,
        typer.Option("--cycles", min=1, help="Stop after this many cycles.", show_default=False),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="After the last cycle, print what it found as JSON.")
    ] = False,
) -> None:
    """Run the monitoring loop until stopped (SIGTERM: exit 0; Ctrl-C: exit 130).

    Every interval: the health checks, disk, memory, load, the stack's Redis, backup age,
    component heartbeats and GPUs. Alerts fire after monitoring.fire_after bad cycles,
    resolve after monitoring.resolve_after good ones, and go to Slack when it is
    configured. With --once (or --cycles) it exits with health's code: 0 healthy,
    3 degraded, 1 unhealthy. Exits 75 when another monitor of the project runs and 4 when
    the /metrics port cannot be bound.
    """


@monitor_app.command("silence")
def monitor_silence(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            help="An alert (disk_free:/srv), a family (disk_free), a glob, or a service "
            "(200 characters at most)."
        ),
    ],
    duration: Annotated[
        str,
        typer.Argument(help="How long, largest unit first: 30m, 2h, 1d, 1h30m (90 days at most)."),
    ],
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why, for whoever reads the list.")
    ] = "",
    everything: Annotated[
        bool,
        typer.Option("--all", help="Confirm a target of wildcards only ('*'): every alert."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Silence an alert, or every alert of a service, for a while.

    A silenced alert still changes state and is recorded; it notifies nobody. When the
    silence ends, whatever changed meanwhile is notified once. The running monitor
    picks it up at its next cycle. Silencing everything ('*') takes --all.
    """


@monitor_app.command("silences")
def monitor_silences(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include expired silences.")] = False,
    json: JsonOption = False,
) -> None:
    """List the silences in force: id, target, time left, reason and who set it."""


@monitor_app.command("unsilence")
def monitor_unsilence(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="A silence's id, or the target it silences.")],
    json: JsonOption = False,
) -> None:
    """End a silence now (by id, or every silence of a target). Exits 2 when none matches."""


@monitor_app.command("alerts")
def monitor_alerts(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show every alert the monitor knows: state, severity, since when, last value.

    Exits 0 when none fires, 3 when only warnings fire, 1 when a critical one fires.
    """


@notify_app.command("test")
def notify_test(ctx: typer.Context, json: JsonOption = False) -> None:
    """Send a test message to Slack, after whatever is still queued.

    Exits 0 when it was delivered; 1 when it was not (queued for a later try, or refused
    by Slack for good), with the reason, or when the queue's folder is damaged; 2 when no
    Slack is configured; 130 when interrupted (Ctrl-C or SIGTERM), the message then queued.
    """


@notify_app.command("queue")
def notify_queue(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the notifications waiting to be delivered and the dead letters Slack refused.

    Shows each one's number, event, severity, title, age, attempts and last error; never
    the message's detail. Damaged files are moved aside and counted (they are never
    delivered). Works without Slack configured. Exits 0, or 1 when the queue's folder cannot
    be read.
    """


@notify_app.command("flush")
def notify_flush(
    ctx: typer.Context,
    dead: Annotated[
        bool,
        typer.Option(
            "--dead", help="Also retry the dead letters (after fixing what Slack refused)."
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Deliver the queued notifications now, oldest first.

    Stops at the first message Slack does not accept yet, so that order holds. Exits 0
    when the queue is empty afterwards; 1 when messages remain or Slack refused some for
    good, or the queue's folder is damaged; 2 when no Slack is configured; 75 when another
    process is delivering; 130 when interrupted (Ctrl-C or SIGTERM), nothing lost.
    """


YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
BackupDryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", help="Only this source (files, redis); repeatable."),
]


@backup_app.command("run")
def backup_run(ctx: typer.Context, source: SourceOption = None, json: JsonOption = False) -> None:
    """Back up the configured paths and Redis into one new archive.

    Made for cron: silent on success without a terminal, exit 1 and an alert on failure,
    75 when another run holds the destination. Nothing partial is ever listed; leftovers of
    killed runs are removed. Prunes afterwards when backup.prune_after_run is set.
    """


@backup_app.command("list")
def backup_list(ctx: typer.Context, json: JsonOption = False) -> None:
    """List the committed backups, newest first: id, time, size, files, sources."""


@backup_app.command("verify")
def backup_verify(
    ctx: typer.Context,
    backup_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The backup (default: the newest).")
    ] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Verify every backup.")] = False,
    json: JsonOption = False,
) -> None:
    """Re-read backups end to end and re-hash every file against the manifest.

    Exits 1 when any backup is damaged.
    """


@backup_app.command("restore")
def backup_restore(
    ctx: typer.Context,
    backup_id: Annotated[
        str, typer.Argument(metavar="ID", help="The backup: an id, a unique prefix, or latest.")
    ],
    source: SourceOption = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Restore under this folder instead of in place."),
    ] = None,
    dry_run: BackupDryRunOption = False,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Restore a backup: files in place (or under --to), Redis by swapping its snapshot.

    Extraction is safe: absolute paths, '..', links that escape, hard links outside the
    backup and device files are refused and reported. Every file is checked against its
    checksum before it replaces anything. Redis in place: its service is stopped, the RDB
    swapped (the old one kept beside it), the service started and its key count checked.
    Exits 1 when anything was refused or a check failed.
    """


@backup_app.command("prune")
def backup_prune(
    ctx: typer.Context,
    dry_run: BackupDryRunOption = False,
    yes: YesOption = False,
    json: JsonOption = False,
) -> None:
    """Remove the backups backup.retention does not keep (restic forget rules).

    The newest complete backup is never removed, nor every backup. See docs/retention.md.
    """


class Framework(StrEnum):
    """The frameworks ``gpu check`` knows, by the name they are imported as."""

    cupy = "cupy"
    tensorflow = "tensorflow"
    tensorrt = "tensorrt"
    torch = "torch"


class CleanupLevel(StrEnum):
    """How far ``gpu cleanup`` goes when the thresholds are not what decides."""

    soft = "soft"
    hard = "hard"


GpuDryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
]


@gpu_app.command("status")
def gpu_status(
    ctx: typer.Context,
    json: JsonOption = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Also save the device answers to FILE, to replay them later with "
            "OPSCTL_GPU_RECORDED=FILE.",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Show each GPU and which service holds its memory.

    Per device: memory used and total, utilization, temperature, power against its
    limit, clocks, ECC errors and MIG mode; then the processes holding GPU memory, each
    mapped to the stack's service (a process no service holds is an orphan). Works
    outside a project too, without the mapping. -q shows only orphans and uncorrected
    ECC errors.

    Exits 4 when there is no usable GPU (no driver, no NVML library, no device), with a
    one-line reason; with --json it then prints {"gpus": [], "error": ...}. Set
    OPSCTL_GPU_RECORDED=FILE to read recorded answers instead of the devices.
    """


@gpu_app.command("check")
def gpu_check(
    ctx: typer.Context,
    json: JsonOption = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            max=3600.0,
            help="Seconds each framework probe may take before it counts as hung (0.1 to 3600).",
        ),
    ] = 60.0,
    framework: Annotated[
        list[Framework] | None,
        typer.Option("--framework", help="Check only this framework (repeatable)."),
    ] = None,
) -> None:
    """Check the GPU stack: the driver and its CUDA version, and for CuPy, TensorFlow,
    TensorRT and PyTorch in opsctl's and each service's Python environment: installed,
    version, whether it sees the GPU, and whether the CUDA release it was built for runs on
    the driver.

    Each framework is imported in a subprocess with a timeout: one that crashes or hangs
    is reported, never takes opsctl down. Exits 1 when a check failed, 4 when gpu.require
    is set and there is no usable GPU (without it, a missing GPU is a warning), else 0.
    """


@gpu_app.command("cleanup")
def gpu_cleanup(
    ctx: typer.Context,
    level: Annotated[
        CleanupLevel | None,
        typer.Option(
            "--level",
            help="Clean up at this level whatever the usage (default: the level the "
            "gpu.policy thresholds reached).",
        ),
    ] = None,
    dry_run: GpuDryRunOption = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Restart or kill without asking (required off a terminal)."
        ),
    ] = False,
    kill_orphans: Annotated[
        bool,
        typer.Option(
            "--kill-orphans",
            help="Also end processes holding GPU memory that belong to no service "
            "(SIGTERM, then SIGKILL).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Free GPU memory progressively. At the soft threshold, ask the stack's components to
    free their framework caches (each replies with the bytes it freed); at the hard
    threshold, restart the service holding the most GPU memory. Processes holding GPU
    memory that no service started are reported, and ended only with --kill-orphans.

    Restarts and kills ask for confirmation on a terminal and need --yes otherwise.
    Exits 0 when done (or nothing was needed), 1 when a step failed, 2 when confirmation
    was missing, 4 when there is no usable GPU.
    """


@gpu_app.command("optimize")
def gpu_optimize(
    ctx: typer.Context,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Write the variables into the project's .env (or the global --env-file).",
        ),
    ] = False,
    json: JsonOption = False,
    dry_run: GpuDryRunOption = False,
) -> None:
    """Recommend settings for the GPUs found, each with its reason: mixed precision (bf16
    from compute capability 8.0, fp16 on 7.x), TF32, TensorFlow's allocator and memory
    growth, CuPy's pool limit, PyTorch's allocator, MIG, and what GH200's unified memory
    changes.

    `opsctl gpu optimize --env-file PATH` (or --write, for the project's .env) writes the
    variables into that file: atomically, mode 0600, every other line kept. Exits 4 when
    there is no usable GPU.
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
    prometheus = "prometheus"
    alerts = "alerts"
    grafana = "grafana"


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
    folder for the systemd units); for monitoring, the Prometheus scrape config
    (prometheus), its alerting rules (alerts) or a Grafana dashboard (grafana).
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
