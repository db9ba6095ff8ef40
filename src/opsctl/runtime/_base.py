"""The runtime interface: the one place that starts and stops supervisord.

Two implementations share it: ``local`` (supervisord on this host) and ``docker``
(supervisord as the main process of the unified container). Everything above it, the
lifecycle in :mod:`opsctl.runtime._stack` and the health checks, is written once against
this interface. The host is a parameter of each runtime, not a global.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

from opsctl._files import tail_lines
from opsctl.config import Project
from opsctl.runtime._paths import StatePaths
from opsctl.runtime._supervisor import ProcessInfo, SupervisorClient

_EXIT_LINE = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ exited: (?P<name>\S+) \(.*not expected\)"
)
_SUPERVISORD_LOG_SCAN_LINES = 5000


@dataclass(frozen=True)
class Snapshot:
    """The stack's state at one moment: supervisord's view plus recent unexpected exits."""

    supervisor_running: bool
    processes: dict[str, ProcessInfo] = field(default_factory=dict)
    unexpected_exits: dict[str, int] = field(default_factory=dict)


class Runtime(abc.ABC):
    """Starts, reaches and stops the supervisord that runs the project's programs."""

    kind: ClassVar[str]

    def __init__(self, project: Project, *, host: str | None = None) -> None:
        self.project = project
        self.host = host
        self.paths = StatePaths(project.state_dir)

    @property
    @abc.abstractmethod
    def launcher(self) -> list[str]:
        """The command supervisord runs, before a spec file, to start a program."""

    @abc.abstractmethod
    def start_supervisor(self) -> None:
        """Start supervisord with the rendered config; return once it answers."""

    @abc.abstractmethod
    def stop_supervisor(self, *, timeout_seconds: float) -> None:
        """Make supervisord exit, after its programs were stopped; return once it is gone."""

    @abc.abstractmethod
    def pid_alive(self, pid: int) -> bool:
        """Tell whether a program's process still exists."""

    @abc.abstractmethod
    def exec(self, service: str, argv: list[str]) -> int:
        """Run ``argv`` where ``service`` runs, with its environment and working directory;
        stream its output to ours and return its exit code.
        """

    @abc.abstractmethod
    def copy_out(self, path: str, destination: Path) -> None:
        """Copy the file or folder at ``path`` in the stack to ``destination`` on this host."""

    @abc.abstractmethod
    def copy_in(self, source: Path, path: str) -> None:
        """Copy ``source`` on this host to ``path`` in the stack."""

    def reap_leftovers(self) -> list[int]:
        """After supervisord is gone, kill processes its programs left behind; return their
        pids. A container's are gone with it, so the default does nothing.
        """
        return []

    @property
    def daemon(self) -> bool:
        """Whether supervisord forks into the background (it does not as a container's PID 1)."""
        return True

    def client(self, *, timeout_seconds: float = 10.0) -> SupervisorClient:
        """Return a client for this runtime's supervisord."""
        from opsctl.clients import supervisor_client

        return supervisor_client(self.paths.socket_file, timeout_seconds=timeout_seconds)

    def supervisor_running(self) -> bool:
        """Tell whether supervisord answers on its socket."""
        return self.client().is_alive()

    def snapshot(self, *, window_seconds: float) -> Snapshot:
        """Return the stack's state, counting unexpected exits within ``window_seconds``.

        It is what the supervisord answering on the socket runs, even one that ``up`` would
        replace because the config changed.
        """
        if not self.client().is_alive():
            return Snapshot(supervisor_running=False)
        return Snapshot(
            supervisor_running=True,
            processes=self.client().processes(),
            unexpected_exits=self.unexpected_exits(window_seconds=window_seconds),
        )

    def unexpected_exits(self, *, window_seconds: float) -> dict[str, int]:
        """Count each program's unexpected exits in the last ``window_seconds``, from the
        supervisord log (supervisord itself keeps no restart count).
        """
        since = datetime.now().astimezone() - timedelta(seconds=window_seconds)
        counts: dict[str, int] = {}
        for line in tail_lines(self.paths.supervisord_log, _SUPERVISORD_LOG_SCAN_LINES):
            match = _EXIT_LINE.match(line)
            if not match:
                continue
            # supervisord writes local time without a zone.
            when = datetime.strptime(match["when"], "%Y-%m-%d %H:%M:%S").astimezone()
            if when >= since:
                counts[match["name"]] = counts.get(match["name"], 0) + 1
        return counts

    def log_file(self, service: str) -> Path:
        """The file holding a program's combined output."""
        return self.paths.program_log(service)

    def read_log(self, service: str, *, lines: int) -> list[str]:
        """Return the last ``lines`` lines of a program's output."""
        return tail_lines(self.log_file(service), lines)

    def follow_log(self, service: str, *, lines: int, poll_seconds: float = 0.25) -> Iterator[str]:
        """Yield the last ``lines`` lines, then every new line as it is written, forever.

        Survives the log being rotated or truncated.
        """
        from opsctl.runtime._follow import follow

        yield from self.read_log(service, lines=lines)
        yield from follow(self.log_file(service), poll_seconds=poll_seconds)
