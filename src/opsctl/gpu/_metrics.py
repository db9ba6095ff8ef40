"""GPU metrics for the monitor, named and labelled as NVIDIA's dcgm-exporter names them.

Dashboards and alert rules written for dcgm-exporter then work on opsctl's ``/metrics``
unchanged: the same metric names (``DCGM_FI_DEV_*``), the same labels (``gpu`` the index,
``UUID``, ``device`` as ``nvidia<index>``, ``modelName``, ``Hostname``) and the same units
(MiB for frame buffer memory, W, degrees C, MHz, percent). A figure NVML did not give is
left out rather than reported as 0.

``opsctl_gpu_process_memory_bytes{gpu,service}`` adds what dcgm-exporter cannot know: how
much memory each service of the stack holds on each GPU (``service=""`` for processes
no service holds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opsctl.gpu._model import GpuDevice, GpuSnapshot

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from opsctl.gpu._status import ProcessOwner

MIB = 1 << 20

# dcgm-exporter name: how to read it from a device, in dcgm's unit.
DEVICE_METRICS: dict[str, Callable[[GpuDevice], float | None]] = {
    "DCGM_FI_DEV_FB_USED": lambda device: _mib(device.memory_used_bytes),
    "DCGM_FI_DEV_FB_FREE": lambda device: _mib(device.memory_free_bytes),
    "DCGM_FI_DEV_GPU_UTIL": lambda device: device.utilization_percent,
    "DCGM_FI_DEV_MEM_COPY_UTIL": lambda device: device.memory_utilization_percent,
    "DCGM_FI_DEV_GPU_TEMP": lambda device: device.temperature_celsius,
    "DCGM_FI_DEV_POWER_USAGE": lambda device: device.power_watts,
    "DCGM_FI_DEV_SM_CLOCK": lambda device: _number(device.sm_clock_mhz),
    "DCGM_FI_DEV_MEM_CLOCK": lambda device: _number(device.memory_clock_mhz),
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": lambda device: _number(device.ecc_corrected),
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": lambda device: _number(device.ecc_uncorrected),
}
PROCESS_MEMORY = "opsctl_gpu_process_memory_bytes"


def fill_registry(
    registry: CollectorRegistry,
    snapshot: GpuSnapshot,
    owners: Sequence[ProcessOwner] | None = None,
) -> None:
    """Set the dcgm-compatible gauges of every device of ``snapshot`` in ``registry``.

    With ``owners`` (from :func:`opsctl.gpu._status.process_owners`), also set
    ``opsctl_gpu_process_memory_bytes`` per GPU and service. Gauges come from the metrics
    catalog (:func:`opsctl.metrics.gauge`), which holds their help, unit and labels.

    Filling the same registry again replaces every series: a device, service or figure
    that is gone leaves no stale value behind.
    """
    from opsctl.metrics import gauge

    for name, read in DEVICE_METRICS.items():
        metric = gauge(registry, name)
        metric.clear()
        for device in snapshot.devices:
            value = read(device)
            if value is not None:
                metric.labels(**device_labels(device, host=snapshot.host)).set(value)

    if owners is not None:
        metric = gauge(registry, PROCESS_MEMORY)
        metric.clear()
        for (gpu, service), used in process_memory(snapshot, owners).items():
            metric.labels(gpu=gpu, service=service).set(used)


def device_labels(device: GpuDevice, *, host: str) -> dict[str, str]:
    """dcgm-exporter's labels for ``device``."""
    return {
        "gpu": str(device.index),
        "UUID": device.uuid,
        "device": f"nvidia{device.index}",
        "modelName": device.name,
        "Hostname": host,
    }


def process_memory(
    snapshot: GpuSnapshot, owners: Sequence[ProcessOwner]
) -> dict[tuple[str, str], int]:
    """Bytes held per ``(gpu index, service)``; ``""`` for no service.

    Every device appears with at least the ``""`` series (0 when nothing is held), so a
    series does not vanish when the last orphan exits. A process whose memory NVML does
    not report (``N/A``) adds nothing.
    """
    totals: dict[tuple[str, str], int] = {(str(d.index), ""): 0 for d in snapshot.devices}
    for owner in owners:
        key = (str(owner.gpu_index), owner.service or "")
        totals[key] = totals.get(key, 0) + (owner.used_bytes or 0)
    return totals


def _mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def _number(value: int | None) -> float | None:
    return None if value is None else float(value)
