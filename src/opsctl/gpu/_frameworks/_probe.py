"""The probe ``gpu check`` runs in a subprocess, in one Python environment, for one framework.

It is run as ``python -c <this file's text> FRAMEWORK`` with the interpreter of the
environment being checked, which need not have opsctl installed: it imports only the
standard library and the one framework it probes. It prints one line, ``MARKER`` followed
by a JSON object, last on stdout. A framework whose import crashes or hangs takes only this
process down; the caller reads that from the exit status or its own timeout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from typing import Any

MARKER = "OPSCTL-GPU-PROBE "

# Wheels named after the CUDA release they were built for, when the framework cannot say.
_WHEEL_CUDA = {
    "cupy": re.compile(r"^cupy[-_]cuda(\d+)x$|^cupy[-_]cuda(\d{2})(\d)$"),
    "tensorrt": re.compile(r"^tensorrt[-_]cu(\d+)(?:[-_]libs)?$"),
}


def probe(name: str) -> dict[str, Any]:
    """Everything this environment can tell about framework ``name``."""
    result: dict[str, Any] = {"framework": name, "python": sys.version.split()[0]}
    module_name = {"torch": "torch", "cupy": "cupy"}.get(name, name)
    if importlib.util.find_spec(module_name) is None:
        return {**result, "installed": False}
    result["installed"] = True
    try:
        result.update(PROBES[name]())
    except Exception as error:  # the import's failure is the finding
        result["error"] = f"{type(error).__name__}: {error}".strip()
    if not result.get("cuda_runtime"):
        result["cuda_runtime"] = wheel_cuda(name)
    return result


def probe_cupy() -> dict[str, Any]:
    import cupy

    found: dict[str, Any] = {"version": str(cupy.__version__)}
    runtime = cupy.cuda.runtime
    try:
        found["cuda_runtime"] = from_cuda_int(int(runtime.runtimeGetVersion()))
    except Exception as error:
        found["runtime_error"] = f"{type(error).__name__}: {error}"
    try:
        found["device_count"] = int(runtime.getDeviceCount())
    except Exception as error:
        found["device_count"] = 0
        found["gpu_error"] = f"{type(error).__name__}: {error}"
    return found


def probe_tensorflow() -> dict[str, Any]:
    import tensorflow as tf

    info = dict(tf.sysconfig.get_build_info())
    found: dict[str, Any] = {
        "version": str(tf.__version__),
        "cuda_build": bool(info.get("is_cuda_build", False)),
        "cuda_runtime": str(info["cuda_version"]) if info.get("cuda_version") else None,
    }
    found["device_count"] = len(tf.config.list_physical_devices("GPU"))
    return found


def probe_torch() -> dict[str, Any]:
    import torch

    found: dict[str, Any] = {
        "version": str(torch.__version__),
        "cuda_build": torch.version.cuda is not None,
        "cuda_runtime": torch.version.cuda,
    }
    found["device_count"] = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    return found


def probe_tensorrt() -> dict[str, Any]:
    import tensorrt as trt

    found: dict[str, Any] = {"version": str(trt.__version__)}
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        found["device_count"] = 1 if builder is not None else 0
    except Exception as error:
        found["device_count"] = 0
        found["gpu_error"] = f"{type(error).__name__}: {error}"
    return found


PROBES: dict[str, Callable[[], dict[str, Any]]] = {
    "cupy": probe_cupy,
    "tensorflow": probe_tensorflow,
    "torch": probe_torch,
    "tensorrt": probe_tensorrt,
}


def from_cuda_int(value: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{value // 1000}.{value % 1000 // 10}"


def wheel_cuda(name: str) -> str | None:
    """The CUDA release an installed wheel's name says it was built for, if any."""
    pattern = _WHEEL_CUDA.get(name)
    if pattern is None:
        return None
    for distribution in importlib.metadata.distributions():
        match = pattern.match(str(distribution.metadata["Name"] or "").lower())
        if match:
            major, *minor = [group for group in match.groups() if group]
            return f"{major}.{minor[0]}" if minor else major
    return None


if __name__ == "__main__":
    # Frameworks print to stdout too; the marker makes this line findable among theirs.
    answer = probe(sys.argv[1])
    sys.stdout.write("\n" + MARKER + json.dumps(answer) + "\n")
    sys.stdout.flush()
