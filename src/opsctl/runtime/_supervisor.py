"""A typed client for supervisord's XML-RPC interface over its unix socket."""

from __future__ import annotations

import http.client
import logging
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

logger = logging.getLogger(__name__)

# Fault codes from supervisor.xmlrpc.Faults.
FAULT_BAD_NAME = 10
FAULT_ALREADY_STARTED = 60
FAULT_NOT_RUNNING = 70

RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})
DOWN_STATES = frozenset({"STOPPED", "EXITED", "FATAL", "UNKNOWN"})


@dataclass(frozen=True)
class ProcessInfo:
    """One program as supervisord reports it."""

    name: str
    state: str
    pid: int
    started_at: int
    now: int
    exit_status: int
    spawn_error: str

    @property
    def uptime_seconds(self) -> int:
        """Seconds since the program last started, or 0 when it is not running."""
        return max(self.now - self.started_at, 0) if self.pid else 0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout_seconds: float) -> None:
        super().__init__("localhost", timeout=timeout_seconds)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, socket_path: Path, timeout_seconds: float) -> None:
        super().__init__()
        self._socket_path = socket_path
        self._timeout_seconds = timeout_seconds

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self._socket_path, self._timeout_seconds)


class SupervisorClient:
    """Calls supervisord over ``socket_path``. Each call opens its own connection, so one
    client can be shared between threads.
    """

    def __init__(self, socket_path: Path, *, timeout_seconds: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout_seconds = timeout_seconds

    def _proxy(self, timeout_seconds: float | None = None) -> Any:
        transport = _UnixTransport(self.socket_path, timeout_seconds or self.timeout_seconds)
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)

    def is_alive(self) -> bool:
        """Tell whether supervisord answers on the socket."""
        try:
            state = self._proxy(2.0).supervisor.getState()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return False
        return bool(state.get("statename") in {"RUNNING", "RESTARTING"})

    def pid(self) -> int:
        """Return supervisord's own pid."""
        return int(self._proxy().supervisor.getPID())

    def processes(self) -> dict[str, ProcessInfo]:
        """Return every program supervisord knows, by name."""
        infos = self._proxy().supervisor.getAllProcessInfo()
        return {info["name"]: _to_info(info) for info in infos}

    def process(self, name: str) -> ProcessInfo:
        """Return one program's info."""
        return _to_info(self._proxy().supervisor.getProcessInfo(name))

    def start(self, name: str) -> None:
        """Ask supervisord to start ``name`` without waiting; a running program is left alone."""
        logger.debug("supervisor.startProcess(%s)", name)
        try:
            self._proxy().supervisor.startProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != FAULT_ALREADY_STARTED:
                raise

    def stop(self, name: str, *, timeout_seconds: float) -> None:
        """Stop ``name`` and wait until it is down; a stopped program is left alone."""
        logger.debug("supervisor.stopProcess(%s)", name)
        try:
            self._proxy(timeout_seconds).supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != FAULT_NOT_RUNNING:
                raise

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """Reread supervisord.conf; return the names added, changed and removed."""
        result = self._proxy().supervisor.reloadConfig()
        added, changed, removed = result[0]
        return list(added), list(changed), list(removed)

    def add_group(self, name: str) -> None:
        """Activate a program that :meth:`reload_config` reported as added."""
        self._proxy().supervisor.addProcessGroup(name)

    def remove_group(self, name: str) -> None:
        """Forget a stopped program that :meth:`reload_config` reported as removed."""
        self._proxy().supervisor.removeProcessGroup(name)

    def shutdown(self) -> None:
        """Ask supervisord to exit (it stops whatever still runs)."""
        logger.debug("supervisor.shutdown()")
        self._proxy().supervisor.shutdown()


def _to_info(raw: Any) -> ProcessInfo:
    info = cast(dict[str, Any], raw)
    return ProcessInfo(
        name=str(info["name"]),
        state=str(info["statename"]),
        pid=int(info["pid"]),
        started_at=int(info["start"]),
        now=int(info["now"]),
        exit_status=int(info["exitstatus"]),
        spawn_error=str(info.get("spawnerr", "")),
    )
