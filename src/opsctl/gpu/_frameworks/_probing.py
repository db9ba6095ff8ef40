"""Running the probe of :mod:`opsctl.gpu._frameworks._probe` in a subprocess and reading
its answer, and judging the CUDA release a framework was built for against the driver's.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from opsctl.checks._result import Status
from opsctl.gpu._frameworks import _probe as probe_module

_QUIET_FRAMEWORKS = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}


def run_probe(
    python: str, framework: str, *, timeout_seconds: float, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Run the probe for ``framework`` with ``python``; return its answer, or
    ``{"failure": ...}`` when it crashed, hung or answered nothing.
    """
    source = Path(probe_module.__file__).read_text(encoding="utf-8")
    env = {**_QUIET_FRAMEWORKS, **environ}
    try:
        process = subprocess.Popen(
            [python, "-c", source, framework],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        return {"failure": f"cannot run {python}: {error.strerror or error}"}
    with _ended_on_exit(process):
        try:
            out, err = process.communicate(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            return {"failure": f"hung: no answer within {timeout_seconds:g} s"}
    return _answer(process.returncode, out, err)


def compare_cuda(runtime: str | None, driver: str | None) -> tuple[Status, str, bool | None]:
    """Judge a framework built for CUDA ``runtime`` on a driver supporting CUDA ``driver``.

    Newer major than the driver: fail. Same major, newer minor: warn, since it runs through
    CUDA's minor version compatibility but PTX JIT and the newest features do not. Else pass.
    """
    if runtime is None:
        return "pass", "CUDA release it was built for unknown", None
    if driver is None:
        return "pass", f"built for CUDA {runtime} (driver's CUDA version unknown)", None
    built, supported = cuda_version(runtime), cuda_version(driver)
    if built is None or supported is None:
        return "pass", f"built for CUDA {runtime}, driver's CUDA {driver} (not comparable)", None
    if built[0] > supported[0]:
        text = (
            f"built for CUDA {runtime}, newer than the driver's CUDA {driver}: "
            f"upgrade the driver or install a build for CUDA {supported[0]}"
        )
        return "fail", text, False
    if built[0] == supported[0] and built[1] is not None and built[1] > (supported[1] or 0):
        text = (
            f"built for CUDA {runtime}, newer than the driver's CUDA {driver}: runs through "
            "minor version compatibility, but PTX JIT and newer features fail; upgrade the driver"
        )
        return "warn", text, True
    return "pass", f"built for CUDA {runtime}, driver supports CUDA {driver}", True


def cuda_version(text: str) -> tuple[int, int | None] | None:
    """``12.4``, ``12`` or NVML's integer form ``12040`` as (major, minor)."""
    text = text.strip()
    try:
        if text.isdigit() and len(text) >= 4:  # noqa: PLR2004  (12040, not 12)
            value = int(text)
            return value // 1000, value % 1000 // 10
        major, _, rest = text.partition(".")
        return int(major), int(rest.split(".")[0]) if rest else None
    except ValueError:
        return None


def _answer(returncode: int, out: bytes, err: bytes) -> dict[str, Any]:
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        if line.startswith(probe_module.MARKER):
            try:
                parsed: dict[str, Any] = json.loads(line[len(probe_module.MARKER) :])
            except json.JSONDecodeError:
                break
            return parsed
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return {"failure": f"crashed with signal {-returncode}{name} while probing"}
    lines = err.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1] if lines else "no output"
    return {"failure": f"the probe exited with {returncode} and no answer: {last}"}


@contextlib.contextmanager
def _ended_on_exit(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill and reap the probe's process group unless the probe ended by itself, whatever
    ends the block: a timeout, an error while waiting, an interrupt. Until then the group is
    also listed for :func:`_kill_running_groups`, in case opsctl exits meanwhile.
    """
    with _RUNNING_LOCK:
        _RUNNING.add(process)
    try:
        yield
    finally:
        # Only while the leader is unreaped is its pid certainly still this group's id.
        if process.returncode is None:
            _kill_group(process)
        with _RUNNING_LOCK:
            _RUNNING.discard(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.communicate()
    except (OSError, ValueError):
        process.wait()


def _kill_running_groups() -> None:
    """At exit, kill the groups of probes still running: the checks run in daemon threads,
    which stop without unwinding when opsctl exits (an interrupt, a check given up on).
    """
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
atexit.register(_kill_running_groups)
