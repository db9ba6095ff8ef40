"""``gpu status``: what each GPU is doing, and which service holds its memory."""

from __future__ import annotations

import math
import os
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import JSON_HELP, console, error_console, print_json, quiet

if TYPE_CHECKING:
    from opsctl.config import Project
    from opsctl.gpu._model import GpuDevice, GpuSnapshot
    from opsctl.gpu._status import ProcessOwner, StackPids

_GIB = 1 << 30
_MIB = 1 << 20
_LAST_COLUMNS = ("CLOCKS SM/MEM", "ECC CORR/UNCORR", "MIG")
_SHORT_UUID = 12  # "GPU-" and the first 8 hexadecimal digits identify a card in practice
_NAMED_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Controls, formatting characters and line or paragraph separators: any of them can break
# a table row or rewrite the terminal.
_HIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
_BYTE_LIMIT = 0x100


def status(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
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
    from opsctl.gpu._model import NoGpuError
    from opsctl.gpu._nvml import read_snapshot
    from opsctl.gpu._status import process_owners

    try:
        snapshot = read_snapshot()
    except NoGpuError as error:
        if json:
            print_json({"gpus": [], "processes": [], "error": error.message, "hint": error.hint})
        raise
    if record is not None:
        from opsctl.gpu._recorded import save_snapshot

        save_snapshot(snapshot, record)
        error_console().print(f"Recorded the device answers in {record}.", markup=False)

    owners, stack = process_owners(snapshot, _project_if_any(ctx))
    if json:
        print_json(status_document(snapshot, owners, stack))
        return
    _render(snapshot, owners, stack, problems_only=quiet(ctx))


def status_document(
    snapshot: GpuSnapshot, owners: list[ProcessOwner], stack: StackPids
) -> dict[str, Any]:
    """The JSON document of ``gpu status --json``."""
    from opsctl.gpu._nvml import is_gh200
    from opsctl.gpu._recorded import device_to_dict

    gpus = []
    for device in snapshot.devices:
        row = device_to_dict(device)
        row["memory_used_percent"] = device.memory_used_percent
        row["gh200"] = is_gh200(device)
        gpus.append(row)
    return {
        "host": snapshot.host,
        "taken_at": snapshot.taken_at.isoformat(),
        "driver_version": snapshot.driver_version,
        "cuda_driver_version": snapshot.cuda_driver_version,
        "nvml_version": snapshot.nvml_version,
        "gpus": gpus,
        "processes": [
            {
                "gpu": owner.gpu_index,
                "uuid": owner.gpu_uuid,
                "pid": owner.pid,
                "name": owner.name,
                "used_bytes": owner.used_bytes,
                "service": owner.service,
                "orphan": owner.orphan,
                "in_container": owner.in_container,
            }
            for owner in owners
        ],
        "mapping": {"known": stack.known, "note": stack.note},
    }


def text_cell(text: str) -> str:
    """``text`` safe for one table cell or line: rich markup escaped, and every control
    character (newline and tab included), formatting character and line separator shown
    as an escape (``\\n``, ``\\x1b``, ``\\u2028``), so it can add no row and move no cursor.
    """
    from rich.markup import escape

    return escape("".join(_shown(character) for character in text))


def _shown(character: str) -> str:
    if unicodedata.category(character) not in _HIDDEN_CATEGORIES:
        return character
    if character in _NAMED_CONTROLS:
        return _NAMED_CONTROLS[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < _BYTE_LIMIT else f"\\u{code:04x}"


def _project_if_any(ctx: typer.Context) -> Project | None:
    """The project, or None when no config is named and none is found above the working
    folder: ``gpu status`` is useful on any GPU host. A config that exists but is broken
    is still an error.
    """
    from opsctl import envvars
    from opsctl.commands._common import load_project
    from opsctl.config import find_config
    from opsctl.errors import ConfigError

    named = getattr(ctx.find_root().obj, "config_path", None) or os.environ.get(envvars.CONFIG)
    if not named:
        try:
            find_config(environ={}, cwd=Path.cwd())
        except ConfigError:
            return None
    return load_project(ctx, lenient=True)


def _render(
    snapshot: GpuSnapshot, owners: list[ProcessOwner], stack: StackPids, *, problems_only: bool
) -> None:
    from rich.table import Table

    out = console()
    if problems_only:
        _render_problems(snapshot, owners)
        return
    versions = (
        f"driver {snapshot.driver_version or '-'}, CUDA {snapshot.cuda_driver_version or '-'}, "
        f"NVML {snapshot.nvml_version or '-'}"
    )
    out.print(f"[bold]{text_cell(snapshot.host)}[/]: {text_cell(versions)}")
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in (*("GPU", "NAME", "UUID", "MEMORY", "UTIL", "TEMP", "POWER"), *_LAST_COLUMNS):
        table.add_column(column)
    for device in snapshot.devices:
        table.add_row(*_device_cells(device))
    out.print(table)
    out.print()

    if not owners:
        out.print("No process holds GPU memory.")
    else:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("GPU", "PID", "PROCESS", "SERVICE", "MEMORY"):
            table.add_column(column)
        for owner in owners:
            table.add_row(*_process_cells(owner))
        out.print(table)
    if stack.note is not None:
        said = "Services unknown" if not stack.known else "Note"
        out.print(f"[dim]{said}: {text_cell(stack.note)}.[/]")


def _render_problems(snapshot: GpuSnapshot, owners: list[ProcessOwner]) -> None:
    """``-q``: only what needs attention: uncorrected ECC errors and orphan processes."""
    out = console()
    for device in snapshot.devices:
        if device.ecc_uncorrected:
            out.print(
                f"GPU {device.index} ({text_cell(device.name)}): "
                f"{device.ecc_uncorrected} uncorrected ECC errors"
            )
    for owner in owners:
        if owner.orphan:
            out.print(
                f"GPU {owner.gpu_index}: pid {owner.pid} ({text_cell(owner.name or '?')}) holds "
                f"{_bytes(owner.used_bytes)} and belongs to no service"
            )


def _device_cells(device: GpuDevice) -> list[str]:
    from opsctl.gpu._nvml import is_gh200

    name = text_cell(device.name) + (" [dim](Grace Hopper)[/]" if is_gh200(device) else "")
    uuid = device.uuid if len(device.uuid) <= _SHORT_UUID else device.uuid[:_SHORT_UUID] + "…"
    ecc = f"{_count(device.ecc_corrected)} / {_count(device.ecc_uncorrected)}"
    if device.ecc_uncorrected:
        ecc = f"[bold red]{ecc}[/]"
    return [
        str(device.index),
        name,
        text_cell(uuid),
        _memory(device),
        _percent(device.utilization_percent),
        _figure(device.temperature_celsius, "C"),
        _power(device),
        _clocks(device),
        ecc,
        {True: "on", False: "off", None: "-"}[device.mig_mode],
    ]


def _process_cells(owner: ProcessOwner) -> list[str]:
    if not owner.mapped:
        service = "?"
    elif owner.service is not None:
        service = text_cell(owner.service)
    elif owner.in_container:
        service = "[yellow]orphan (in the container)[/]"
    else:
        service = "[yellow]orphan[/]"
    return [
        str(owner.gpu_index),
        str(owner.pid),
        text_cell(owner.name or "?"),
        service,
        _bytes(owner.used_bytes),
    ]


def _memory(device: GpuDevice) -> str:
    used, total = device.memory_used_bytes, device.memory_total_bytes
    if used is None or total is None:
        return "-"
    percent = device.memory_used_percent or 0.0
    text = f"{used / _GIB:.1f} / {total / _GIB:.1f} GiB ({percent:.0f} %)"
    return f"[bold red]{text}[/]" if percent >= 90 else text  # noqa: PLR2004


def _power(device: GpuDevice) -> str:
    if _known(device.power_watts) is None:
        return "-"
    if _known(device.power_limit_watts) is None:
        return f"{device.power_watts:.0f} W"
    return f"{device.power_watts:.0f} / {device.power_limit_watts:.0f} W"


def _clocks(device: GpuDevice) -> str:
    if device.sm_clock_mhz is None and device.memory_clock_mhz is None:
        return "-"
    return f"{_count(device.sm_clock_mhz)} / {_count(device.memory_clock_mhz)} MHz"


def _percent(value: float | None) -> str:
    return _figure(value, "%")


def _figure(value: float | None, unit: str) -> str:
    known = _known(value)
    return "-" if known is None else f"{known:.0f} {unit}"


def _known(value: float | None) -> float | None:
    """None for no answer and for a figure that is not finite: both show as "-"."""
    return None if value is None or not math.isfinite(value) else value


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _bytes(value: int | None) -> str:
    if value is None:
        return "N/A"
    if value >= _GIB:
        return f"{value / _GIB:.1f} GiB"
    return f"{value / _MIB:.0f} MiB"
