"""``gpu cleanup`` and the monitor's automatic cleanup: one plan, one way to apply it.

Progressive, from the gentlest step up:

1. at or above the **soft** threshold, every component of the stack that serves
   ``gpu.free_caches`` (see :func:`opsctl.gpu.serve_requests`) is asked to free its
   framework caches, and replies with the bytes it freed;
2. at or above the **hard** threshold, the service holding the most GPU memory on the
   devices past it is restarted through the runtime, unless freeing caches already brought
   usage back under the threshold;
3. processes holding GPU memory that belong to no service (orphans) are always reported,
   and killed (SIGTERM, then SIGKILL) only when asked; never opsctl itself, its parent, or
   pid 1.

:func:`plan_cleanup` decides and changes nothing, so ``--dry-run`` shows exactly what
:func:`apply_plan` would do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from opsctl.gpu._frameworks._library import FREE_CACHES_REQUEST
from opsctl.gpu._model import GpuSnapshot

if TYPE_CHECKING:
    from opsctl.config import Project

logger = logging.getLogger(__name__)

PlanLevel = Literal["none", "warn", "soft", "hard"]
StepStatus = Literal["done", "failed", "skipped"]
_LEVEL_RANK = {"none": 0, "warn": 1, "soft": 2, "hard": 3}
REQUEST_TIMEOUT_SECONDS = 10.0
KILL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


class Policy(Protocol):
    """The thresholds, as ``[gpu.policy]`` holds them (percent of a device's memory)."""

    @property
    def warn_percent(self) -> float: ...
    @property
    def soft_percent(self) -> float: ...
    @property
    def hard_percent(self) -> float: ...


@dataclass(frozen=True)
class DeviceLoad:
    """One device's memory use and the threshold it reached."""

    index: int
    name: str
    used_bytes: int | None
    total_bytes: int | None
    used_percent: float | None
    level: PlanLevel


@dataclass(frozen=True)
class Holder:
    """A process holding memory on a device, and its service (``None``: an orphan)."""

    pid: int
    device: int
    used_bytes: int | None
    name: str | None
    service: str | None


@dataclass(frozen=True)
class CleanupPlan:
    """What a cleanup will do. ``level`` is the highest threshold reached, or the level
    asked for (``forced``). ``restart`` names the service to restart, ``orphans`` the
    processes no service holds, killed only when ``kill_orphans``.
    """

    level: PlanLevel
    forced: bool
    policy: dict[str, float]
    devices: tuple[DeviceLoad, ...]
    free_caches: bool
    restart: str | None
    restart_bytes: int | None
    orphans: tuple[Holder, ...]
    kill_orphans: bool
    notes: tuple[str, ...] = ()

    @property
    def destructive(self) -> bool:
        """Whether applying it restarts a service or kills a process (needs confirmation)."""
        return self.restart is not None or (self.kill_orphans and bool(self.orphans))

    @property
    def request_level(self) -> Literal["soft", "hard"]:
        """The cleanup level components are asked for: hard only when an operator asked for
        hard; past the hard threshold the restart is the hard step, and the other
        components keep their models.
        """
        return "hard" if self.forced and self.level == "hard" else "soft"

    def steps(self) -> list[str]:
        """The plan in words, one line per step, in the order they run."""
        lines = []
        if self.free_caches:
            lines.append(
                f"ask the stack's components to free GPU caches "
                f"({FREE_CACHES_REQUEST}, {self.request_level})"
            )
        if self.restart is not None:
            held = f" ({_size(self.restart_bytes)} of GPU memory)" if self.restart_bytes else ""
            lines.append(f"restart service '{self.restart}'{held}")
        for orphan in self.orphans:
            verb = "kill" if self.kill_orphans else "report (kill with --kill-orphans)"
            lines.append(
                f"{verb} pid {orphan.pid} ({orphan.name or '?'}) holding "
                f"{_size(orphan.used_bytes)} on GPU {orphan.device}, no service's process"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON data."""
        return {
            "level": self.level,
            "forced": self.forced,
            "policy": self.policy,
            "devices": [device.__dict__ for device in self.devices],
            "free_caches": self.free_caches,
            "request_level": self.request_level,
            "restart": self.restart,
            "restart_bytes": self.restart_bytes,
            "orphans": [orphan.__dict__ for orphan in self.orphans],
            "kill_orphans": self.kill_orphans,
            "destructive": self.destructive,
            "steps": self.steps(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class StepOutcome:
    """What one applied step did."""

    action: Literal["free_caches", "restart", "kill"]
    target: str
    status: StepStatus
    detail: str
    freed_bytes: int | None = None
    replies: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class CleanupOutcome:
    """The plan and what applying it did."""

    plan: CleanupPlan
    steps: tuple[StepOutcome, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return all(step.status != "failed" for step in self.steps)

    @property
    def freed_bytes(self) -> int:
        """Bytes the components reported freed (restarts and kills are not counted)."""
        return sum(step.freed_bytes or 0 for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON data."""
        return {
            "ok": self.ok,
            "freed_bytes": self.freed_bytes,
            "plan": self.plan.to_dict(),
            "steps": [{**step.__dict__, "replies": list(step.replies)} for step in self.steps],
        }


def plan_cleanup(
    snapshot: GpuSnapshot,
    policy: Policy,
    service_of_pid: Callable[[int], str | None],
    *,
    level: str | None = None,
    kill_orphans: bool = False,
    unmapped: str | None = None,
) -> CleanupPlan:
    """Decide what to do from ``snapshot`` and the thresholds of ``policy``; change nothing.

    ``level`` (``soft`` or ``hard``) forces that level whatever the usage, as an operator's
    explicit ask; by default the highest threshold any device reached decides.
    ``service_of_pid`` names the service a GPU process belongs to, ``None`` for none.
    ``unmapped`` says why the stack's processes are unknown, when they are: then no process
    can be called an orphan, and none is killed. Raises ``ValueError`` for another level.
    """
    if level not in {None, "soft", "hard"}:
        message = f"unknown cleanup level {level!r}: use 'soft' or 'hard'"
        raise ValueError(message)
    devices = tuple(_load(device, policy) for device in snapshot.devices)
    reached: PlanLevel = max(
        (device.level for device in devices), key=_LEVEL_RANK.__getitem__, default="none"
    )
    chosen: PlanLevel = "hard" if level == "hard" else "soft" if level == "soft" else reached
    holders = _holders(snapshot, service_of_pid)

    notes: list[str] = []
    restart, restart_bytes = None, None
    if chosen == "hard":
        hot = {d.index for d in devices if level == "hard" or d.level == "hard"}
        restart, restart_bytes = _largest_service(holders, hot)
        if restart is None:
            notes.append("no service of the stack holds GPU memory: there is nothing to restart")
        else:
            notes.append(f"'{restart}' holds the most GPU memory on the devices past the threshold")
    orphans, spared = _orphans(holders)
    notes += [f"pid {pid} is {why}: it is never killed" for pid, why in spared]
    if unmapped is not None and orphans:
        notes.append(
            f"which processes belong to the stack is unknown ({unmapped}): "
            f"none of the {len(orphans)} other GPU processes is treated as an orphan"
        )
        orphans = ()
    return CleanupPlan(
        level=chosen,
        forced=level is not None,
        policy={
            "warn_percent": policy.warn_percent,
            "soft_percent": policy.soft_percent,
            "hard_percent": policy.hard_percent,
        },
        devices=devices,
        free_caches=_LEVEL_RANK[chosen] >= _LEVEL_RANK["soft"],
        restart=restart,
        restart_bytes=restart_bytes,
        orphans=orphans,
        kill_orphans=kill_orphans,
        notes=tuple(notes),
    )


def apply_plan(
    plan: CleanupPlan,
    project: Project,
    *,
    policy: Policy | None = None,
    reread: Callable[[], GpuSnapshot] | None = None,
    service_of_pid: Callable[[int], str | None] | None = None,
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    kill_grace_seconds: float = KILL_GRACE_SECONDS,
) -> CleanupOutcome:
    """Carry out ``plan`` for ``project`` step by step; never raises for a step that fails
    (it is reported failed) except for an interrupt.

    With ``reread`` (and ``service_of_pid``), a restart the thresholds called for is
    skipped when usage fell under the hard threshold after the caches were freed, and an
    orphan is killed only if a fresh snapshot still lists it holding memory outside the
    stack (its pid may have been reused since the plan was made).
    """
    steps: list[StepOutcome] = []
    if plan.free_caches:
        steps.append(
            free_caches(project, plan.request_level, timeout_seconds=request_timeout_seconds)
        )
    if plan.restart is not None:
        steps.append(_restart_step(plan, project, policy, reread, service_of_pid))
    if plan.kill_orphans and plan.orphans:
        current = _current_orphans(reread, service_of_pid)
        for orphan in plan.orphans:
            if current is not None and orphan.pid not in current:
                detail = "no longer holds GPU memory outside the stack: left alone"
                steps.append(StepOutcome("kill", str(orphan.pid), "skipped", detail))
                continue
            steps.append(kill_process(orphan.pid, grace_seconds=kill_grace_seconds))
    return CleanupOutcome(plan, tuple(steps))


def automatic_cleanup(project: Project, snapshot: GpuSnapshot) -> CleanupOutcome:
    """The monitor's cleanup for ``snapshot``: by the ``[gpu.policy]`` thresholds only, with
    no confirmation (the policy is the operator's consent), orphans reported and never
    killed. Below the soft threshold nothing is applied.
    """
    from opsctl.gpu._nvml import read_snapshot

    service_of_pid, unmapped = stack_mapping(project)
    policy = project.config.gpu.policy
    plan = plan_cleanup(snapshot, policy, service_of_pid, unmapped=unmapped)
    if not plan.free_caches:
        return CleanupOutcome(plan)
    return apply_plan(
        plan, project, policy=policy, reread=read_snapshot, service_of_pid=service_of_pid
    )


def stack_mapping(project: Project) -> tuple[Callable[[int], str | None], str | None]:
    """A function naming the service a GPU pid belongs to, and why the mapping is unknown
    (``None`` when it is known).
    """
    from opsctl.gpu._status import service_of, stack_pids

    stack = stack_pids(project)

    def service_of_pid(pid: int) -> str | None:
        return service_of(pid, stack.programs)

    return service_of_pid, None if stack.known else (stack.note or "unknown")


def free_caches(project: Project, level: str, *, timeout_seconds: float) -> StepOutcome:
    """Ask every component serving ``gpu.free_caches`` to clean up at ``level`` and wait up
    to ``timeout_seconds`` for their replies.
    """
    from opsctl.agent import request
    from opsctl.errors import OperationFailedError

    target = project.redis()
    if target is None:
        detail = "the project has no Redis ([redis]), so its components cannot be asked"
        return StepOutcome("free_caches", "stack", "skipped", detail)
    try:
        replies = request(
            target,
            project.name,
            FREE_CACHES_REQUEST,
            {"level": "hard" if level == "hard" else "soft"},
            timeout_seconds=timeout_seconds,
        )
    except OperationFailedError as error:
        return StepOutcome("free_caches", "stack", "failed", error.message)
    if not replies:
        detail = (
            "no component serves gpu.free_caches "
            "(components answer once they call opsctl.gpu.serve_requests)"
        )
        return StepOutcome("free_caches", "stack", "skipped", detail)

    answers = tuple(_reply_dict(reply) for reply in replies)
    failed = [answer for answer in answers if not answer["ok"]]
    freed = sum(int(answer["freed_bytes"] or 0) for answer in answers)
    detail = (
        f"{len(answers) - len(failed)} of {len(answers)} components answered; freed {_size(freed)}"
    )
    status: StepStatus = "failed" if failed else "done"
    return StepOutcome("free_caches", "stack", status, detail, freed, answers)


def kill_process(pid: int, *, grace_seconds: float = KILL_GRACE_SECONDS) -> StepOutcome:
    """SIGTERM ``pid``, then SIGKILL after ``grace_seconds``; refuses opsctl itself, its
    parent and pid 1 and below.
    """
    if pid <= 1 or pid in {os.getpid(), os.getppid()}:
        return StepOutcome("kill", str(pid), "skipped", "never killed: opsctl itself or init")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return StepOutcome("kill", str(pid), "skipped", "already gone")
    except PermissionError:
        return StepOutcome(
            "kill", str(pid), "failed", "not allowed to signal it (run as its user or root)"
        )
    logger.info("Sent SIGTERM to GPU orphan %d", pid)
    if _wait_gone(pid, grace_seconds):
        return StepOutcome("kill", str(pid), "done", "ended after SIGTERM")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    logger.info("Sent SIGKILL to GPU orphan %d", pid)
    if _wait_gone(pid, grace_seconds):
        return StepOutcome(
            "kill", str(pid), "done", f"ended after SIGKILL ({grace_seconds:g} s after SIGTERM)"
        )
    return StepOutcome("kill", str(pid), "failed", "still alive after SIGKILL")


def _restart_step(
    plan: CleanupPlan,
    project: Project,
    policy: Policy | None,
    reread: Callable[[], GpuSnapshot] | None,
    service_of_pid: Callable[[int], str | None] | None,
) -> StepOutcome:
    from opsctl.config._model import GpuPolicySection
    from opsctl.errors import OpsctlError
    from opsctl.runtime import Stack, get_runtime

    name = plan.restart or ""
    if not plan.forced and reread is not None and service_of_pid is not None:
        thresholds = policy or GpuPolicySection.model_validate(plan.policy)
        again = plan_cleanup(reread(), thresholds, service_of_pid)
        if again.level != "hard":
            detail = "GPU memory fell below the hard threshold after the caches were freed"
            return StepOutcome("restart", name, "skipped", detail)
    logger.info("Restarting %s to return its GPU memory", name)
    try:
        result = Stack(get_runtime(project)).restart([name])
    except OpsctlError as error:
        return StepOutcome("restart", name, "failed", error.message)
    outcome = next((o for o in result.services if o.name == name), None)
    if not result.ok or outcome is None:
        detail = outcome.detail if outcome is not None and outcome.detail else "restart failed"
        return StepOutcome("restart", name, "failed", detail)
    return StepOutcome("restart", name, "done", outcome.detail or "restarted")


def _current_orphans(
    reread: Callable[[], GpuSnapshot] | None, service_of_pid: Callable[[int], str | None] | None
) -> set[int] | None:
    from opsctl.gpu._model import NoGpuError

    if reread is None or service_of_pid is None:
        return None
    try:
        snapshot = reread()
    except NoGpuError:
        return set()
    orphans, _ = _orphans(_holders(snapshot, service_of_pid))
    return {orphan.pid for orphan in orphans}


def _load(device: Any, policy: Policy) -> DeviceLoad:
    percent = device.memory_used_percent
    level: PlanLevel = "none"
    if percent is not None:
        if percent >= policy.hard_percent:
            level = "hard"
        elif percent >= policy.soft_percent:
            level = "soft"
        elif percent >= policy.warn_percent:
            level = "warn"
    return DeviceLoad(
        device.index,
        device.name,
        device.memory_used_bytes,
        device.memory_total_bytes,
        None if percent is None else round(percent, 2),
        level,
    )


def _holders(snapshot: GpuSnapshot, service_of_pid: Callable[[int], str | None]) -> list[Holder]:
    return [
        Holder(
            process.pid, device.index, process.used_bytes, process.name, service_of_pid(process.pid)
        )
        for device in snapshot.devices
        for process in device.processes
    ]


def _largest_service(holders: list[Holder], devices: set[int]) -> tuple[str | None, int | None]:
    totals: dict[str, int] = {}
    for holder in holders:
        if holder.service is not None and holder.device in devices:
            totals[holder.service] = totals.get(holder.service, 0) + (holder.used_bytes or 0)
    if not totals:
        return None, None
    name = min(totals, key=lambda service: (-totals[service], service))
    return name, totals[name]


def _orphans(holders: list[Holder]) -> tuple[tuple[Holder, ...], list[tuple[int, str]]]:
    protected = {os.getpid(): "opsctl itself", os.getppid(): "opsctl's parent"}
    orphans: dict[int, Holder] = {}
    spared: dict[int, str] = {}
    for holder in holders:
        if holder.service is not None:
            continue
        if holder.pid <= 1 or holder.pid in protected:
            spared[holder.pid] = protected.get(holder.pid, "init")
            continue
        known = orphans.get(holder.pid)
        if known is not None:
            total = (known.used_bytes or 0) + (holder.used_bytes or 0)
            orphans[holder.pid] = replace(known, used_bytes=total)
        else:
            orphans[holder.pid] = holder
    return tuple(orphans.values()), sorted(spared.items())


def _reply_dict(reply: Any) -> dict[str, Any]:
    result = reply.result if isinstance(reply.result, dict) else {}
    freed = result.get("freed_bytes")
    return {
        "component": reply.component,
        "pid": reply.pid,
        "ok": bool(reply.ok),
        "error": reply.error,
        "freed_bytes": freed if isinstance(freed, int) else None,
        "level": result.get("level"),
        "frameworks": result.get("frameworks", {}),
        "notes": result.get("notes", []),
    }


def _wait_gone(pid: int, seconds: float) -> bool:
    from opsctl.runtime.local import host_pid_alive

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not host_pid_alive(pid):
            return True
        time.sleep(_POLL_SECONDS)
    return not host_pid_alive(pid)


def _size(value: int | None) -> str:
    if value is None:
        return "an unknown amount"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":  # noqa: PLR2004
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
