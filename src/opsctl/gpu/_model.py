"""What opsctl knows about the GPUs of one host at one moment.

These frozen dataclasses are the single shape every GPU feature reads: ``gpu status``,
the monitor's dcgm-compatible metrics, ``gpu check`` and ``gpu cleanup``. They are filled
from NVML (:mod:`opsctl.gpu._nvml`) or from recorded answers (:mod:`opsctl.gpu._recorded`),
so the code that reads them cannot tell a live device from a recording.

Every measurement is optional: NVML answers "not supported" or "N/A" for many fields
depending on the board, the driver and MIG mode, and a missing figure must never hide the
others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsctl.errors import ResourceUnavailableError


class NoGpuError(ResourceUnavailableError):
    """No usable NVIDIA GPU: no driver, no NVML library, NVML refusing to start, or no device.

    Exit code 4. The message names which of these it is; the hint says what to do.
    """


@dataclass(frozen=True)
class GpuProcess:
    """A process holding a context (and usually memory) on a device."""

    pid: int
    used_bytes: int | None
    name: str | None = None


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU as NVML reports it; ``None`` where NVML has no answer."""

    index: int
    uuid: str
    name: str
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization_percent: float | None
    memory_utilization_percent: float | None
    temperature_celsius: float | None
    power_watts: float | None
    power_limit_watts: float | None
    sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    ecc_corrected: int | None
    ecc_uncorrected: int | None
    mig_mode: bool | None
    compute_capability: tuple[int, int] | None
    architecture: str | None
    processes: tuple[GpuProcess, ...]

    @property
    def memory_free_bytes(self) -> int | None:
        """Total minus used, when both are known."""
        if self.memory_used_bytes is None or self.memory_total_bytes is None:
            return None
        return max(self.memory_total_bytes - self.memory_used_bytes, 0)

    @property
    def memory_used_percent(self) -> float | None:
        """Used memory as a share of the total, when both are known."""
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True)
class GpuSnapshot:
    """Every device of a host, with the driver versions, at ``taken_at`` (aware, UTC)."""

    driver_version: str | None
    cuda_driver_version: str | None
    nvml_version: str | None
    devices: tuple[GpuDevice, ...]
    host: str
    taken_at: datetime
