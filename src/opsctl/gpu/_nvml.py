"""Reading a :class:`~opsctl.gpu._model.GpuSnapshot` from NVML through nvidia-ml-py.

NVML answers "not supported" or "N/A" for many fields depending on the board, the driver,
MIG mode and permissions; each such field becomes ``None`` and never hides the others.
Only a failure to start NVML at all (no library, no driver, a driver/library mismatch) or
a host without devices is an error: :class:`~opsctl.gpu._model.NoGpuError`, exit 4.

``OPSCTL_GPU_RECORDED=FILE`` replaces NVML with answers recorded earlier
(:mod:`opsctl.gpu._recorded`): for tests, demos and reproducing a report from another host.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot, NoGpuError

logger = logging.getLogger(__name__)

RECORDED_ENV = "OPSCTL_GPU_RECORDED"
"""Path of a recorded snapshot to read instead of asking NVML."""

_T = TypeVar("_T")
_NOT_AVAILABLE_UINT = 0xFFFFFFFF
_MILLI = 1000.0

# nvmlDeviceArchitecture_t values, as NVML numbers them.
ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada",
    9: "Hopper",
    10: "Blackwell",
    13: "Rubin",
}

# Field errors that mean "no answer for this field on this device": the field is None.
_NO_ANSWER = {
    "NOT_SUPPORTED",
    "NO_PERMISSION",
    "NOT_FOUND",
    "NO_DATA",
    "FUNCTION_NOT_FOUND",
    "ARGUMENT_VERSION_MISMATCH",
    "DEPRECATED",
    "NOT_READY",
}

# Why NVML would not start, by NVML error name: (message, hint).
_INIT_FAILURES: dict[str, tuple[str, str]] = {
    "LIBRARY_NOT_FOUND": (
        "No GPU: the NVIDIA driver's NVML library (libnvidia-ml.so.1) was not found.",
        "Install the NVIDIA driver on this host; in a container, run it with the NVIDIA "
        "container runtime and a GPU request (container.gpus).",
    ),
    "DRIVER_NOT_LOADED": (
        "No GPU: the NVIDIA kernel driver is not loaded.",
        "Check 'lsmod | grep nvidia' and the kernel log; load the driver (modprobe nvidia) "
        "or reboot after installing it.",
    ),
    "LIB_RM_VERSION_MISMATCH": (
        "No GPU: the NVML library does not match the loaded NVIDIA kernel driver "
        "(driver/library version mismatch).",
        "This usually follows a driver upgrade without a reboot: reboot, or unload and "
        "reload the nvidia kernel modules.",
    ),
    "NO_PERMISSION": (
        "No GPU: NVML was refused access to the NVIDIA devices.",
        "Check the permissions of /dev/nvidia*, or that the container was given the GPUs.",
    ),
    "FUNCTION_NOT_FOUND": (
        "No GPU: the installed NVIDIA driver is too old for nvidia-ml-py.",
        "Upgrade the NVIDIA driver, or install an older nvidia-ml-py that matches it.",
    ),
    "GPU_IS_LOST": (
        "No GPU: NVML reports that a GPU fell off the bus.",
        "Check the kernel log (Xid errors); the host usually needs a reboot.",
    ),
}


def read_snapshot() -> GpuSnapshot:
    """Every device of this host now, or the recorded snapshot ``OPSCTL_GPU_RECORDED`` names.

    Raises :class:`NoGpuError` (exit 4) when NVML is missing or will not start, or when it
    sees no device; :class:`~opsctl.errors.ConfigError` (exit 2) for a malformed recording.
    """
    recorded = os.environ.get(RECORDED_ENV)
    if recorded:
        from opsctl.gpu._recorded import load_snapshot

        return load_snapshot(Path(recorded))
    return read_live_snapshot()


def read_live_snapshot() -> GpuSnapshot:
    """Ask NVML for every device; see :func:`read_snapshot`."""
    pynvml = _import_pynvml()
    _start(pynvml)
    try:
        count = _device_count(pynvml)
        if count == 0:
            message = "No GPU: the NVIDIA driver is loaded but reports no device."
            hint = "Check 'nvidia-smi', CUDA_VISIBLE_DEVICES and the container's GPU request."
            raise NoGpuError(message, hint=hint)
        devices = tuple(_read_device(pynvml, index) for index in range(count))
        return GpuSnapshot(
            driver_version=_field(pynvml, "driver version", pynvml.nvmlSystemGetDriverVersion),
            cuda_driver_version=_cuda_version(pynvml),
            nvml_version=_field(pynvml, "NVML version", pynvml.nvmlSystemGetNVMLVersion),
            devices=devices,
            host=socket.gethostname(),
            taken_at=datetime.now(UTC),
        )
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError as error:
            logger.debug("nvmlShutdown failed: %s", error)


def is_gh200(device: GpuDevice) -> bool:
    """Whether ``device`` is the Hopper half of a GH200 Grace Hopper superchip.

    NVML names it ("NVIDIA GH200 480GB"); that name is the reliable sign, also in a
    recording taken elsewhere. Its host is aarch64 (:func:`host_is_aarch64`), and CPU and
    GPU share memory coherently over NVLink-C2C.
    """
    return "GH200" in device.name.upper() or "GRACE HOPPER" in device.name.upper()


def host_is_aarch64() -> bool:
    """Whether this host is an ARM64 machine, as a Grace CPU is."""
    return platform.machine().lower() in {"aarch64", "arm64"}


def nvml_error_name(error: BaseException) -> str:
    """The NVML error's name without its prefix ("NOT_SUPPORTED"), or "UNKNOWN"."""
    pynvml = _import_pynvml()
    value = getattr(error, "value", None)
    for name in dir(pynvml):
        if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == value:
            return name.removeprefix("NVML_ERROR_")
    return "UNKNOWN"


def init_failure(name: str, detail: str) -> NoGpuError:
    """The :class:`NoGpuError` for NVML failing to start with the error ``name``."""
    message, hint = _INIT_FAILURES.get(
        name,
        (
            f"No GPU: NVML could not start ({detail}).",
            "Run 'nvidia-smi' to see whether the driver works on this host.",
        ),
    )
    return NoGpuError(message, hint=hint)


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        message = "No GPU support installed: the nvidia-ml-py package is missing."
        raise NoGpuError(message, hint="pip install 'opsctl[gpu]'") from None
    return pynvml


def _start(pynvml: Any) -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise init_failure(nvml_error_name(error), str(error)) from None
    except OSError as error:
        # ctypes found a library by that name that is not a usable NVML.
        message = f"No GPU: libnvidia-ml.so.1 could not be used ({error})."
        raise NoGpuError(message, hint="Reinstall the NVIDIA driver.") from None


def _device_count(pynvml: Any) -> int:
    try:
        return int(pynvml.nvmlDeviceGetCount())
    except pynvml.NVMLError as error:
        raise init_failure(nvml_error_name(error), str(error)) from None


def _field(pynvml: Any, what: str, call: Callable[..., _T], *args: Any) -> _T | None:
    """``call(*args)``, or None when NVML has no answer for it."""
    try:
        value = call(*args)
    except pynvml.NVMLError as error:
        name = nvml_error_name(error)
        if name in _NO_ANSWER:
            logger.debug("NVML has no %s: %s", what, error)
        else:
            logger.warning("NVML could not read the %s: %s", what, error)
        return None
    if isinstance(value, int) and value == _NOT_AVAILABLE_UINT:
        return None
    return value


def _cuda_version(pynvml: Any) -> str | None:
    call = getattr(pynvml, "nvmlSystemGetCudaDriverVersion_v2", None)
    version = _field(pynvml, "CUDA driver version", call) if call else None
    if version is None:
        version = _field(pynvml, "CUDA driver version", pynvml.nvmlSystemGetCudaDriverVersion)
    if not version:
        return None
    # NVML encodes 12.4 as 12040.
    return f"{version // 1000}.{version % 1000 // 10}"


def _read_device(pynvml: Any, index: int) -> GpuDevice:
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as error:
        logger.warning("GPU %d cannot be reached: %s", index, error)
        return _unreachable(index, str(error))

    def get(what: str, call: Callable[..., _T], *args: Any) -> _T | None:
        return _field(pynvml, f"{what} of GPU {index}", call, handle, *args)

    used, total = _memory(pynvml, index, handle)
    utilization = get("utilization", pynvml.nvmlDeviceGetUtilizationRates)
    power = get("power usage", pynvml.nvmlDeviceGetPowerUsage)
    limit = get("power limit", pynvml.nvmlDeviceGetEnforcedPowerLimit)
    mig = get("MIG mode", pynvml.nvmlDeviceGetMigMode)
    architecture = get("architecture", pynvml.nvmlDeviceGetArchitecture)
    ecc = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    return GpuDevice(
        index=index,
        uuid=get("UUID", pynvml.nvmlDeviceGetUUID) or "",
        name=get("name", pynvml.nvmlDeviceGetName) or "unknown",
        memory_used_bytes=used,
        memory_total_bytes=total,
        utilization_percent=None if utilization is None else float(utilization.gpu),
        memory_utilization_percent=None if utilization is None else float(utilization.memory),
        temperature_celsius=_as_float(
            get("temperature", _temperature_call(pynvml), pynvml.NVML_TEMPERATURE_GPU)
        ),
        power_watts=None if power is None else _as_float(power / _MILLI),
        power_limit_watts=None if limit is None else _as_float(limit / _MILLI),
        sm_clock_mhz=get("SM clock", pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM),
        memory_clock_mhz=get("memory clock", pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM),
        ecc_corrected=get(
            "corrected ECC errors",
            pynvml.nvmlDeviceGetTotalEccErrors,
            ecc[0],
            pynvml.NVML_VOLATILE_ECC,
        ),
        ecc_uncorrected=get(
            "uncorrected ECC errors",
            pynvml.nvmlDeviceGetTotalEccErrors,
            ecc[1],
            pynvml.NVML_VOLATILE_ECC,
        ),
        mig_mode=None if mig is None else bool(mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE),
        compute_capability=_capability(
            get("compute capability", pynvml.nvmlDeviceGetCudaComputeCapability)
        ),
        architecture=None if architecture is None else ARCHITECTURES.get(architecture),
        processes=_processes(pynvml, index, handle),
    )


def _temperature_call(pynvml: Any) -> Callable[[Any, int], int]:
    """The temperature reading: the long-standing call while the bindings still have it
    (every driver answers it), else its versioned successor.
    """
    call = getattr(pynvml, "nvmlDeviceGetTemperature", None)
    return call or pynvml.nvmlDeviceGetTemperatureV  # type: ignore[no-any-return]


def _unreachable(index: int, why: str) -> GpuDevice:
    """A device NVML lists but cannot open: shown, with every figure unknown."""
    return GpuDevice(
        index=index,
        uuid="",
        name=f"unreachable ({why})",
        memory_used_bytes=None,
        memory_total_bytes=None,
        utilization_percent=None,
        memory_utilization_percent=None,
        temperature_celsius=None,
        power_watts=None,
        power_limit_watts=None,
        sm_clock_mhz=None,
        memory_clock_mhz=None,
        ecc_corrected=None,
        ecc_uncorrected=None,
        mig_mode=None,
        compute_capability=None,
        architecture=None,
        processes=(),
    )


def _memory(pynvml: Any, index: int, handle: Any) -> tuple[int | None, int | None]:
    """Used and total bytes. Version 2 counts memory the driver reserves as neither used nor
    free, as nvidia-smi does; older drivers only have version 1.
    """
    version = getattr(pynvml, "nvmlMemory_v2", None)
    info = None
    if version is not None:
        info = _field(
            pynvml, f"memory of GPU {index}", pynvml.nvmlDeviceGetMemoryInfo, handle, version
        )
    if info is None:
        info = _field(pynvml, f"memory of GPU {index}", pynvml.nvmlDeviceGetMemoryInfo, handle)
    if info is None:
        return None, None
    return int(info.used), int(info.total)


def _capability(value: tuple[int, int] | None) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _as_float(value: float | None) -> float | None:
    """``value`` as a float; None for no answer, and for NaN or an infinity, which no
    reading can be and no JSON document can hold.
    """
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _processes(pynvml: Any, index: int, handle: Any) -> tuple[GpuProcess, ...]:
    """Compute and graphics processes, one entry per pid.

    Under MIG a pid can appear once per GPU/compute instance: its memory is summed. A
    process listed as both compute and graphics is counted once.
    """
    entries: dict[tuple[int, int, int], int | None] = {}
    for kind in ("Compute", "Graphics"):
        for info in _process_list(pynvml, index, handle, kind):
            key = (
                int(info.pid),
                _instance(info, "gpuInstanceId"),
                _instance(info, "computeInstanceId"),
            )
            entries.setdefault(key, info.usedGpuMemory)
    used_by_pid: dict[int, int | None] = {}
    for (pid, _, _), used in entries.items():
        if pid in used_by_pid:
            before = used_by_pid[pid]
            used_by_pid[pid] = None if before is None or used is None else before + int(used)
        else:
            used_by_pid[pid] = None if used is None else int(used)
    return tuple(
        GpuProcess(pid=pid, used_bytes=used, name=process_name(pid))
        for pid, used in sorted(used_by_pid.items())
    )


def _instance(info: Any, attribute: str) -> int:
    value = getattr(info, attribute, None)
    return -1 if value is None else int(value)


def _process_list(pynvml: Any, index: int, handle: Any, kind: str) -> list[Any]:
    """The newest version of ``nvmlDevice Get<kind>RunningProcesses`` the library has."""
    for version in ("_v3", "_v2"):
        call = getattr(pynvml, f"nvmlDeviceGet{kind}RunningProcesses{version}", None)
        if call is None:
            continue
        try:
            return list(call(handle))
        except pynvml.NVMLError as error:
            if nvml_error_name(error) == "FUNCTION_NOT_FOUND":
                continue
            level = logging.DEBUG if nvml_error_name(error) in _NO_ANSWER else logging.WARNING
            logger.log(level, "NVML could not list %s processes of GPU %d: %s", kind, index, error)
            return []
    return []


def process_name(pid: int, *, proc: Path = Path("/proc")) -> str | None:
    """The process's command name, when it is visible from here (NVML does not give it)."""
    try:
        return (proc / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
