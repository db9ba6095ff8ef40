"""A real Prometheus Pushgateway for tests: started on a free loopback port, stopped after.

Usage::

    gateway = start_pushgateway(tmp_path / "pushgateway")
    try:
        ...  # push to gateway.url
        samples = gateway.samples("opsctl_verify_success")
    finally:
        gateway.stop()

or the ``running_pushgateway`` context manager. The gateway keeps nothing on disk
(``--persistence.file=``) and writes its log to ``DIRECTORY/pushgateway.log``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import free_port, wait_for

BINARY = "prometheus-pushgateway"
_START_ATTEMPTS = 3


@dataclass
class Pushgateway:
    """A running prometheus-pushgateway on 127.0.0.1."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The base URL to push to (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    def scrape(self) -> str:
        """Return the gateway's own ``/metrics`` exposition: every pushed group's samples."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:  # noqa: S310
            return str(response.read().decode("utf-8"))

    def families(self) -> list[Any]:
        """The scrape parsed with prometheus_client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        return list(text_string_to_metric_families(self.scrape()))

    def samples(self, name: str) -> list[Any]:
        """Every sample named ``name`` in a fresh scrape (labels include job and instance)."""
        return [
            sample for family in self.families() for sample in family.samples if sample.name == name
        ]

    def log(self) -> str:
        """What the gateway wrote to its log so far."""
        try:
            return (self.directory / "pushgateway.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the gateway (SIGTERM, then SIGKILL) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_pushgateway(directory: Path) -> Pushgateway:
    """Start prometheus-pushgateway on a free 127.0.0.1 port and wait until it is ready.

    Retries on another port when the chosen one was taken in the meantime. The caller stops
    it (``gateway.stop()``).
    """
    if shutil.which(BINARY) is None:
        message = f"{BINARY} is not installed (scripts/setup.sh --dev installs it)"
        raise RuntimeError(message)
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(_START_ATTEMPTS):
        gateway = _launch(directory, free_port())
        if gateway is not None:
            return gateway
    message = f"{BINARY} did not start; see {directory / 'pushgateway.log'}"
    raise RuntimeError(message)


@contextlib.contextmanager
def running_pushgateway(directory: Path) -> Iterator[Pushgateway]:
    """A Pushgateway for the duration of a ``with`` block."""
    gateway = start_pushgateway(directory)
    try:
        yield gateway
    finally:
        gateway.stop()


def _launch(directory: Path, port: int) -> Pushgateway | None:
    argv = [
        BINARY,
        f"--web.listen-address=127.0.0.1:{port}",
        "--persistence.file=",
        "--log.level=warn",
    ]
    with (directory / "pushgateway.log").open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    gateway = Pushgateway(port, directory, process)

    def ready() -> bool:
        if process.poll() is not None:
            return True
        try:
            with urllib.request.urlopen(f"{gateway.url}/-/ready", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(ready, timeout_seconds=15, message=f"{BINARY} on port {port}")
    if process.poll() is not None:
        return None
    return gateway
