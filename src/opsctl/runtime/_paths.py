"""Where the stack's state lives under ``.opsctl/``."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# A unix socket path must fit in sun_path (108 bytes on Linux, 104 elsewhere).
_LONGEST_SOCKET_PATH = 100


@dataclass(frozen=True)
class StatePaths:
    """The files and folders of one project's runtime state."""

    state_dir: Path

    @property
    def run_dir(self) -> Path:
        """Folder (0700) of the socket, pid file, supervisord.conf and program specs."""
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        """Folder of supervisord's log and one log per program."""
        return self.state_dir / "logs"

    @property
    def conf_file(self) -> Path:
        """The rendered supervisord.conf."""
        return self.run_dir / "supervisord.conf"

    @property
    def pid_file(self) -> Path:
        """supervisord's pid file."""
        return self.run_dir / "supervisord.pid"

    @property
    def supervisord_log(self) -> Path:
        """supervisord's own log, which records every program start and exit."""
        return self.log_dir / "supervisord.log"

    @property
    def socket_file(self) -> Path:
        """The XML-RPC unix socket; moved to a short private folder if the path is too long."""
        preferred = self.run_dir / "supervisor.sock"
        if len(str(preferred)) <= _LONGEST_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"opsctl-{os.getuid()}-{digest}" / "supervisor.sock"

    def spec_file(self, service: str) -> Path:
        """The launch spec of one program."""
        return self.run_dir / "programs" / f"{service}.json"

    def started_spec_file(self, service: str) -> Path:
        """The spec a program was last started with, to tell whether it needs a restart."""
        return self.run_dir / "programs" / f"{service}.started.json"

    @property
    def applied_conf_file(self) -> Path:
        """The supervisord.conf the running supervisord last loaded."""
        return self.run_dir / "supervisord.conf.applied"

    def program_log(self, service: str) -> Path:
        """One program's combined stdout and stderr."""
        return self.log_dir / f"{service}.log"

    def ensure(self) -> None:
        """Create the state folders, private to this user. A state folder that already
        existed keeps its mode; the folders opsctl owns inside it are made 0700.
        """
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (self.run_dir, self.run_dir / "programs", self.log_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        self.socket_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_file.parent.chmod(0o700)
