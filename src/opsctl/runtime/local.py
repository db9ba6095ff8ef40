"""The local runtime: supervisord runs on this host, its state under ``.opsctl/``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

from opsctl._files import tail_lines
from opsctl.errors import OperationFailedError
from opsctl.runtime._base import Runtime

logger = logging.getLogger(__name__)

_START_WAIT_SECONDS = 20.0
_POLL_SECONDS = 0.05


class LocalRuntime(Runtime):
    """supervisord as a daemon of this host, controlled over its unix socket."""

    kind: ClassVar[str] = "local"
    _stopped_pid: int | None = None

    @property
    def launcher(self) -> list[str]:
        """This interpreter running :mod:`opsctl._launch`."""
        # -P keeps the working folder off sys.path, so a project file named like a module
        # (json.py, supervisor/) cannot shadow what the launcher imports.
        return [sys.executable, "-P", "-m", "opsctl._launch"]

    def start_supervisor(self) -> None:
        """Start supervisord as a daemon and wait until it answers on its socket.

        Raises :class:`OperationFailedError` with supervisord's own words if it does not.
        """
        argv = [
            sys.executable,
            "-P",
            "-m",
            "supervisor.supervisord",
            "-c",
            str(self.paths.conf_file),
        ]
        logger.debug("Starting supervisord: %s", " ".join(argv))
        with tempfile.TemporaryFile() as errors:
            try:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    cwd=self.project.root,
                    check=False,
                    timeout=_START_WAIT_SECONDS,
                )
            except subprocess.TimeoutExpired:
                message = f"supervisord did not start within {_START_WAIT_SECONDS:g} s."
                hint = f"Is another supervisord holding {self.paths.socket_file}, stopped or hung?"
                raise OperationFailedError(message, hint=hint) from None
            errors.seek(0)
            said = errors.read().decode("utf-8", errors="replace").strip()
        if result.returncode != 0:
            message = f"supervisord did not start (exit code {result.returncode}): {said}"
            raise OperationFailedError(message, hint=f"See {self.paths.supervisord_log}.")

        deadline = time.monotonic() + _START_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.supervisor_running():
                return
            time.sleep(_POLL_SECONDS)
        last = " | ".join(tail_lines(self.paths.supervisord_log, 5))
        message = (
            f"supervisord did not answer on {self.paths.socket_file} "
            f"within {_START_WAIT_SECONDS:g} s."
        )
        raise OperationFailedError(message, hint=f"Its log ends: {last}")

    def stop_supervisor(self, *, timeout_seconds: float) -> None:
        """Ask supervisord to shut down and wait for its process to exit; kill it if it won't."""
        pid = self._supervisord_pid()
        self._stopped_pid = pid
        with contextlib.suppress(OSError, ConnectionError):
            self.client().shutdown()
        if pid is None:
            return

        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if not self.pid_alive(pid):
                return
            time.sleep(_POLL_SECONDS)
        logger.warning(
            "supervisord (pid %d) did not exit within %g s; killing it", pid, timeout_seconds
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def reap_leftovers(self) -> list[int]:
        """Kill what programs left behind in supervisord's session (a program that forked
        and exited leaves its children there). supervisord leads its own session, and a
        session id is not reused while any member lives, so nothing else is touched. A
        process that started a session of its own is out of reach. Returns the pids killed.
        """
        session = self._stopped_pid
        if session is None:
            return []
        leftovers = [
            pid
            for pid, sid in _sessions().items()
            if sid == session and pid not in {session, os.getpid()} and not _is_zombie(pid)
        ]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if leftovers:
            logger.warning(
                "Killed %d process(es) stopped programs left behind: %s", len(leftovers), leftovers
            )
        return leftovers

    def pid_alive(self, pid: int) -> bool:
        """Tell whether ``pid`` exists and is not a zombie."""
        return host_pid_alive(pid)

    def exec(self, service: str, argv: list[str]) -> int:
        """Run ``argv`` on this host in the service's directory, with its environment."""
        from opsctl.runtime._render import program_spec

        spec = program_spec(self.project, service)
        environment = {**os.environ, **spec["environment"]}
        try:
            code = subprocess.run(
                argv, cwd=spec["directory"], env=environment, check=False
            ).returncode
        except OSError as error:
            message = f"Cannot run '{argv[0]}' in {spec['directory']}: {error.strerror or error}."
            raise OperationFailedError(message) from None
        # A program killed by a signal exits 128 + its number, as in a shell.
        return 128 - code if code < 0 else code

    def copy_out(self, path: str, destination: Path) -> None:
        """Copy the file or folder at ``path`` (relative to the root) to ``destination``."""
        _copy(self.project.root / path, destination)

    def copy_in(self, source: Path, path: str) -> None:
        """Copy ``source`` to ``path`` (relative to the root) on this host."""
        _copy(source, self.project.root / path)

    def _supervisord_pid(self) -> int | None:
        try:
            return int(self.paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


def _sessions() -> dict[int, int]:
    """Map each process on this host to its session id."""
    sessions = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        sessions[int(entry.name)] = int(fields[3])
    return sessions


def _copy(source: Path, destination: Path) -> None:
    import shutil

    if not source.exists():
        message = f"{source} does not exist."
        raise OperationFailedError(message)
    if source.is_dir():
        shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def host_pid_alive(pid: int) -> bool:
    """Tell whether process ``pid`` of this host exists and is not a zombie (a zombie holds
    no memory and no files, and only waits for its parent to reap it).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses.
    return stat.rpartition(")")[2].split()[0] == "Z"
