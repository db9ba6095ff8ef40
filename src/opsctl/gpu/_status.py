"""Which service of the stack holds each process NVML lists on a GPU.

NVML reports process ids as this host's kernel sees them. supervisord reports its
programs' pids in its own pid namespace: the host's for the local runtime, the unified
container's for the docker runtime. A GPU process belongs to a service when the service's
program, or one of its descendants, is that process: each GPU pid's parent chain is walked
in ``/proc`` until it meets a program.

For the docker runtime the container's pid namespace is found from its main process
(Docker's ``State.Pid``); every host process in that namespace has an ``NSpid`` line in
``/proc/PID/status`` whose last figure is its pid inside the container, which translates
supervisord's pids to host pids. A process in the container that no program started is
still marked as being in the container.

A process no service holds is an *orphan*: ``gpu cleanup --kill-orphans`` may end it.
Limits: the mapping reads this host's ``/proc``, so it needs the stack on this host (not a
remote Docker engine), and it sees other users' processes only with the rights to read
their ``/proc`` entries (root, or the same user).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl.errors import OpsctlError
from opsctl.gpu._model import GpuSnapshot

if TYPE_CHECKING:
    from opsctl.config import Project

logger = logging.getLogger(__name__)

PROC = Path("/proc")
_LONGEST_PARENT_CHAIN = 128


@dataclass(frozen=True)
class ProcessOwner:
    """A process holding a context on a GPU, and the service it belongs to (if any)."""

    gpu_index: int
    gpu_uuid: str
    pid: int
    used_bytes: int | None
    name: str | None
    service: str | None
    in_container: bool = False
    mapped: bool = True

    @property
    def orphan(self) -> bool:
        """True when the stack's processes are known and none of them holds this one.

        Never true when the mapping could not be made (no project, the stack unreachable):
        then nobody can tell, and nothing may be killed as an orphan.
        """
        return self.mapped and self.service is None


@dataclass(frozen=True)
class StackPids:
    """The stack's programs as host pids.

    ``known`` is False when they could not be read (``note`` says why): then no process
    can be called an orphan. A stack that is down is known: it holds nothing.
    """

    programs: Mapping[int, str] = field(default_factory=dict)
    container_namespace: str | None = None
    note: str | None = None
    known: bool = True


def process_owners(
    snapshot: GpuSnapshot, project: Project | None, *, proc: Path = PROC
) -> tuple[list[ProcessOwner], StackPids]:
    """Map every GPU process of ``snapshot`` to the service of ``project`` holding it.

    Without a project, or when the stack cannot be reached, every process is an orphan and
    the returned :class:`StackPids` carries a note saying why. Never raises for a stack
    that is down.
    """
    stack = (
        stack_pids(project, proc=proc)
        if project is not None
        else StackPids(note="not in a project (no opsctl.toml found)", known=False)
    )
    return map_processes(snapshot, stack, proc=proc), stack


def stack_pids(project: Project, *, proc: Path = PROC) -> StackPids:
    """The host pids of the project's running programs, from its runtime."""
    from opsctl.runtime import get_runtime

    try:
        runtime = get_runtime(project)
        snapshot = runtime.snapshot(window_seconds=0.0)
    except OpsctlError as error:
        logger.warning("The stack's programs are unknown: %s", error.message)
        return StackPids(note=f"the stack could not be reached: {error.message}", known=False)
    if not snapshot.supervisor_running:
        return StackPids(note="the stack is not running")
    pids = {info.pid: name for name, info in snapshot.processes.items() if info.pid > 0}
    if runtime.kind != "docker":
        return StackPids(programs=pids)
    return _container_pids(runtime, pids, proc=proc)


def _container_pids(runtime: object, pids: dict[int, str], *, proc: Path) -> StackPids:
    """Translate pids of the container's namespace to host pids."""
    from docker.errors import DockerException

    from opsctl.runtime.docker import DockerRuntime

    assert isinstance(runtime, DockerRuntime)  # noqa: S101  # only called for that kind
    try:
        container = runtime.container()
        main_pid = int(container.attrs["State"]["Pid"]) if container is not None else 0
    except OpsctlError as error:
        return StackPids(note=f"the container is unknown: {error.message}", known=False)
    except (DockerException, KeyError, TypeError, ValueError) as error:
        return StackPids(note=f"the container is unknown: {error}", known=False)
    namespace = pid_namespace(main_pid, proc=proc) if main_pid else None
    if namespace is None:
        note = "the container's pid namespace cannot be read from this host"
        return StackPids(note=note, known=False)
    inside_to_host = namespace_pids(namespace, proc=proc)
    programs = {inside_to_host[pid]: name for pid, name in pids.items() if pid in inside_to_host}
    return StackPids(programs=programs, container_namespace=namespace)


def map_processes(
    snapshot: GpuSnapshot, stack: StackPids, *, proc: Path = PROC
) -> list[ProcessOwner]:
    """One :class:`ProcessOwner` per process and device, in device then pid order."""
    owners = []
    for device in snapshot.devices:
        for process in device.processes:
            in_container = (
                stack.container_namespace is not None
                and pid_namespace(process.pid, proc=proc) == stack.container_namespace
            )
            owners.append(
                ProcessOwner(
                    gpu_index=device.index,
                    gpu_uuid=device.uuid,
                    pid=process.pid,
                    used_bytes=process.used_bytes,
                    name=process.name,
                    service=service_of(process.pid, stack.programs, proc=proc),
                    in_container=in_container,
                    mapped=stack.known,
                )
            )
    return owners


def service_of(pid: int, programs: Mapping[int, str], *, proc: Path = PROC) -> str | None:
    """The service whose program is ``pid`` or one of its ancestors, else None."""
    current: int | None = pid
    for _ in range(_LONGEST_PARENT_CHAIN):
        if current is None or current <= 1:
            return None
        if current in programs:
            return programs[current]
        current = parent_pid(current, proc=proc)
    return None


def parent_pid(pid: int, *, proc: Path = PROC) -> int | None:
    """The parent of ``pid``, or None when the process is not visible."""
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name sits in parentheses and may itself hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def pid_namespace(pid: int, *, proc: Path = PROC) -> str | None:
    """The identity of ``pid``'s pid namespace (``pid:[4026531836]``), or None."""
    try:
        return (proc / str(pid) / "ns" / "pid").readlink().name
    except OSError:
        return None


def namespace_pids(namespace: str, *, proc: Path = PROC) -> dict[int, int]:
    """``{pid inside the namespace: host pid}`` for every visible process in ``namespace``."""
    inside_to_host: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or pid_namespace(int(entry.name), proc=proc) != namespace:
            continue
        inside = innermost_pid(int(entry.name), proc=proc)
        if inside is not None:
            inside_to_host[inside] = int(entry.name)
    return inside_to_host


def innermost_pid(pid: int, *, proc: Path = PROC) -> int | None:
    """The pid of host process ``pid`` in its own (innermost) namespace, from ``NSpid``."""
    try:
        status = (proc / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            figures = line.split()[1:]
            return int(figures[-1]) if figures else None
    return None
