"""``gpu check``, ``gpu cleanup`` and ``gpu optimize``: what acts on the GPUs and their
frameworks. ``gpu status`` lives in :mod:`opsctl.commands._gpu_observe`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsctl.commands._common import JSON_HELP, console, error_console, print_json, quiet
from opsctl.commands._gpu_observe import text_cell

if TYPE_CHECKING:
    from collections.abc import Callable

    from opsctl.config import Project
    from opsctl.gpu._check import GpuCheckReport
    from opsctl.gpu._cleanup import CleanupOutcome, CleanupPlan
    from opsctl.gpu._model import GpuSnapshot
    from opsctl.gpu._optimize import OptimizeReport

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")
]
LONGEST_PROBE_SECONDS = 3600.0
_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
_STEP_STYLES = {"done": "green", "skipped": "dim", "failed": "bold red"}
_LEVEL_STYLES = {"none": "green", "warn": "yellow", "soft": "yellow", "hard": "bold red"}


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


def check(
    ctx: typer.Context,
    json: JsonOption = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.1,
            max=LONGEST_PROBE_SECONDS,
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
    from opsctl.commands._gpu_observe import _project_if_any
    from opsctl.gpu._check import CHECK_ORDER, run_gpu_check

    chosen = tuple(item.value for item in framework) if framework else CHECK_ORDER
    result = run_gpu_check(_project_if_any(ctx), timeout_seconds=timeout, frameworks=chosen)
    if json:
        print_json(result.to_dict())
    else:
        _render_check(result, problems_only=quiet(ctx))
    if result.exit_code == 4:  # noqa: PLR2004
        error_console().print(f"error: {result.driver.problem}", markup=False)
    raise typer.Exit(result.exit_code)


def cleanup(
    ctx: typer.Context,
    level: Annotated[
        CleanupLevel | None,
        typer.Option(
            "--level",
            help="Clean up at this level whatever the usage (default: the level the "
            "gpu.policy thresholds reached).",
        ),
    ] = None,
    dry_run: DryRunOption = False,
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
    from opsctl.commands._common import load_project
    from opsctl.gpu._cleanup import apply_plan, plan_cleanup, stack_mapping
    from opsctl.gpu._nvml import read_snapshot

    project = load_project(ctx, lenient=True)
    snapshot = _read_or_report(read_snapshot, json=json)
    service_of_pid, unmapped = stack_mapping(project)
    policy = project.config.gpu.policy
    plan = plan_cleanup(
        snapshot,
        policy,
        service_of_pid,
        level=level.value if level else None,
        kill_orphans=kill_orphans,
        unmapped=unmapped,
    )
    if dry_run or plan.level == "none" and not (plan.kill_orphans and plan.orphans):
        _show_plan(plan, dry_run=dry_run, json=json)
        return
    if plan.destructive:
        _confirm(plan, yes=yes)
    if not json:
        _render_plan(plan)
    outcome = apply_plan(
        plan, project, policy=policy, reread=read_snapshot, service_of_pid=service_of_pid
    )
    if json:
        print_json({"dry_run": False, **outcome.to_dict()})
    else:
        _render_outcome(outcome)
    raise typer.Exit(0 if outcome.ok else 1)


def optimize(
    ctx: typer.Context,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Write the variables into the project's .env (or the global --env-file).",
        ),
    ] = False,
    json: JsonOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Recommend settings for the GPUs found, each with its reason: mixed precision (bf16
    from compute capability 8.0, fp16 on 7.x), TF32, TensorFlow's allocator and memory
    growth, CuPy's pool limit, PyTorch's allocator, MIG, and what GH200's unified memory
    changes.

    `opsctl gpu optimize --env-file PATH` (or --write, for the project's .env) writes the
    variables into that file: atomically, mode 0600, every other line kept. Exits 4 when
    there is no usable GPU.
    """
    from opsctl.gpu._nvml import read_snapshot
    from opsctl.gpu._optimize import recommend, write_env_file

    named = getattr(ctx.find_root().obj, "env_file", None)
    project = _project_for_optimize(ctx, named)
    warn_percent = project.config.gpu.policy.warn_percent if project else 80.0
    report = recommend(_read_or_report(read_snapshot, json=json), cupy_limit_percent=warn_percent)
    target = _env_target(named, project, write=write)
    # Written before anything is shown, so a file that cannot be written leaves no
    # document on stdout that names it as the one written.
    writes = write_env_file(target, report.variables) if target and not dry_run else []

    if json:
        print_json(
            {**report.to_dict(), "env_file": str(target) if target else None, "dry_run": dry_run}
        )
    else:
        _render_optimize(report, quiet=quiet(ctx))
    if target is None:
        return
    if dry_run:
        _say(f"dry run: would set {len(report.variables)} variables in {target}")
        return
    changed = sum(1 for write_result in writes if write_result.replaced)
    _say(f"wrote {len(writes)} variables to {target} ({changed} replaced, mode 0600)")


def _read_or_report(read: Callable[[], GpuSnapshot], *, json: bool) -> GpuSnapshot:
    """The snapshot; without a GPU, the reason as the one JSON document too, then exit 4."""
    from opsctl.gpu._model import NoGpuError

    try:
        return read()
    except NoGpuError as error:
        if json:
            print_json({"error": error.message, "hint": error.hint})
        raise


def _project_for_optimize(ctx: typer.Context, named: Path | None) -> Project | None:
    """The project if there is one; a global --env-file that does not exist yet is the
    file to create, not one to read.
    """
    from opsctl.commands._gpu_observe import _project_if_any

    state = ctx.find_root().obj
    if named is not None and not named.exists() and state is not None:
        state.env_file = None
        try:
            return _project_if_any(ctx)
        finally:
            state.env_file = named
    return _project_if_any(ctx)


def _env_target(named: Path | None, project: Project | None, *, write: bool) -> Path | None:
    from opsctl.errors import UsageError

    if named is not None:
        return named
    if not write:
        return None
    if project is None:
        message = "--write needs a project's .env, and no opsctl.toml was found."
        raise UsageError(message, hint="Name the file: opsctl gpu optimize --env-file PATH")
    return project.env_file


def _confirm(plan: CleanupPlan, *, yes: bool) -> None:
    from opsctl.errors import UsageError

    what = "; ".join(step for step in plan.steps() if not step.startswith("ask"))
    if yes:
        return
    if not sys.stdin.isatty():
        message = f"gpu cleanup would {what}, and standard input is not a terminal to confirm it."
        raise UsageError(message, hint="Pass --yes to go ahead, or --dry-run to see the plan.")
    if not typer.confirm(f"GPU cleanup will {what}. Go ahead?", default=False, err=True):
        raise typer.Exit(1)


def _show_plan(plan: CleanupPlan, *, dry_run: bool, json: bool) -> None:
    if json:
        print_json(
            {"dry_run": dry_run, "ok": True, "freed_bytes": 0, "plan": plan.to_dict(), "steps": []}
        )
        return
    _render_plan(plan)
    if plan.level == "none" and not dry_run:
        console().print("Below every threshold: nothing to clean up.")
    elif dry_run:
        console().print("dry run: nothing was changed.")


def _render_check(result: GpuCheckReport, *, problems_only: bool) -> None:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("CHECK", "RESULT", "DETAIL"):
        table.add_column(column)
    for row in result.report.checks:
        status = "warn" if row.status == "fail" and row.severity == "warning" else row.status
        if problems_only and status in {"pass", "skip"}:
            continue
        table.add_row(text_cell(row.name), f"[{_STYLES[status]}]{status}[/]", text_cell(row.detail))
    if table.row_count:
        console().print(table)
    summary = result.report.summary
    console().print(
        f"{summary['pass']} passed, {summary['warn']} warnings, {summary['fail']} failed, "
        f"{summary['skip']} not installed"
    )


def _render_plan(plan: CleanupPlan) -> None:
    out = console()
    policy = plan.policy
    for device in plan.devices:
        used = "unknown" if device.used_percent is None else f"{device.used_percent:.1f} %"
        style = _LEVEL_STYLES[device.level]
        out.print(
            f"GPU {device.index} {text_cell(device.name)}: {used} used "
            f"(warn {policy['warn_percent']:g} %, soft {policy['soft_percent']:g} %, "
            f"hard {policy['hard_percent']:g} %): [{style}]{device.level}[/]"
        )
    forced = " (asked for)" if plan.forced else ""
    out.print(f"level: [{_LEVEL_STYLES[plan.level]}]{plan.level}[/]{forced}")
    for number, step in enumerate(plan.steps(), start=1):
        out.print(f"  {number}. {text_cell(step)}")
    for note in plan.notes:
        out.print(f"  note: {text_cell(note)}")


def _render_outcome(outcome: CleanupOutcome) -> None:
    out = console()
    for step in outcome.steps:
        style = _STEP_STYLES[step.status]
        target, detail = text_cell(step.target), text_cell(step.detail)
        out.print(f"[{style}]{step.status}[/] {step.action} {target}: {detail}")
        for reply in step.replies:
            freed = reply["freed_bytes"]
            said = reply["error"] or (f"freed {freed} bytes" if freed is not None else "answered")
            out.print(
                f"    {text_cell(str(reply['component']))} (pid {reply['pid']}): {text_cell(said)}"
            )
            for note in reply["notes"]:
                out.print(f"      note: {text_cell(str(note))}")


def _render_optimize(report: OptimizeReport, *, quiet: bool) -> None:
    out = console()
    hardware = report.hardware
    cc = hardware.compute_capability
    capability = f"{cc[0]}.{cc[1]}" if cc else "unknown"
    extra = " (GH200)" if hardware.gh200 else ""
    mixed = "; different GPUs, the least capable decides" if hardware.mixed else ""
    out.print(
        f"[bold]{text_cell(hardware.name)}[/]{extra} x{hardware.devices}, compute capability "
        f"{capability}, {text_cell(hardware.architecture or 'architecture unknown')}{mixed}"
    )
    for item in report.recommendations:
        out.print(f"\n[bold]{text_cell(item.title)}[/]: {text_cell(item.value)}")
        if not quiet:
            out.print(f"  why: {text_cell(item.why)}")
        for name, value in item.variables.items():
            out.print(f"  {name}={text_cell(value)}")
        if item.code and not quiet:
            out.print(f"  in code: {text_cell(item.code)}")


def _say(text: str) -> None:
    error_console().print(text, markup=False)
