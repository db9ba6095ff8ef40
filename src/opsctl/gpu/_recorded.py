"""Recorded device answers: a GPU snapshot saved as JSON and read back instead of NVML.

``opsctl gpu status --record FILE`` writes one on a real host (a GH200, an H100 box);
``OPSCTL_GPU_RECORDED=FILE`` makes every GPU feature read it instead of NVML, so tests and
demos run the same code as production on a machine without a GPU.

The format is versioned (``"format": "opsctl-gpu-snapshot", "version": 1``) and validated
strictly: an unknown key or a wrong type is a configuration error (exit 2) that names the
file and the field. A recording may also hold ``"nvml_error": "DRIVER_NOT_LOADED"`` (any
NVML error name) for a host where NVML would not start: reading it raises the same
:class:`~opsctl.gpu._model.NoGpuError` the live path raises there.
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.errors import ConfigError
from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot, NoGpuError

FORMAT = "opsctl-gpu-snapshot"
VERSION = 1
_LARGEST_FILE_BYTES = 16 << 20
# Linux never numbers a process above 2^22, the largest pid_max it accepts.
_LARGEST_PID = 1 << 22
_LARGEST_CAPABILITY_PART = 99


def snapshot_to_dict(snapshot: GpuSnapshot) -> dict[str, Any]:
    """The snapshot as plain JSON-ready data (the shape ``gpu status --json`` also uses)."""
    return {
        "host": snapshot.host,
        "taken_at": snapshot.taken_at.isoformat(),
        "driver_version": snapshot.driver_version,
        "cuda_driver_version": snapshot.cuda_driver_version,
        "nvml_version": snapshot.nvml_version,
        "devices": [device_to_dict(device) for device in snapshot.devices],
    }


def device_to_dict(device: GpuDevice) -> dict[str, Any]:
    """One device as plain data; the compute capability is a ``[major, minor]`` list."""
    return {
        "index": device.index,
        "uuid": device.uuid,
        "name": device.name,
        "memory_used_bytes": device.memory_used_bytes,
        "memory_total_bytes": device.memory_total_bytes,
        "utilization_percent": device.utilization_percent,
        "memory_utilization_percent": device.memory_utilization_percent,
        "temperature_celsius": device.temperature_celsius,
        "power_watts": device.power_watts,
        "power_limit_watts": device.power_limit_watts,
        "sm_clock_mhz": device.sm_clock_mhz,
        "memory_clock_mhz": device.memory_clock_mhz,
        "ecc_corrected": device.ecc_corrected,
        "ecc_uncorrected": device.ecc_uncorrected,
        "mig_mode": device.mig_mode,
        "compute_capability": (
            None if device.compute_capability is None else list(device.compute_capability)
        ),
        "architecture": device.architecture,
        "processes": [
            {"pid": process.pid, "used_bytes": process.used_bytes, "name": process.name}
            for process in device.processes
        ],
    }


def save_snapshot(snapshot: GpuSnapshot, path: Path) -> None:
    """Write ``snapshot`` to ``path`` in the recorded format, atomically."""
    from opsctl._files import write_atomic

    document = {
        "format": FORMAT,
        "version": VERSION,
        "machine": platform.machine(),
        "nvml_error": None,
        **snapshot_to_dict(snapshot),
    }
    write_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n", mode=0o644)


def load_snapshot(path: Path) -> GpuSnapshot:
    """Read a recorded snapshot.

    Raises :class:`ConfigError` (exit 2) naming the file and the field when it cannot be
    read or is malformed, and :class:`NoGpuError` (exit 4) when it records a host without
    a usable GPU (an ``nvml_error``, or no device).
    """
    text, document = _read_document(path)
    recording = _validate(path, text, document)
    if recording.nvml_error is not None:
        from opsctl.gpu._nvml import init_failure

        raise init_failure(recording.nvml_error, f"recorded in {path}")
    if not recording.devices:
        message = f"No GPU: the recorded snapshot {path} holds no device."
        raise NoGpuError(message)
    snapshot: GpuSnapshot = recording.to_snapshot()
    return snapshot


def _read_document(path: Path) -> tuple[str, Any]:
    hint = "Record one with 'opsctl gpu status --record FILE', or unset OPSCTL_GPU_RECORDED."
    try:
        if path.stat().st_size > _LARGEST_FILE_BYTES:
            message = f"The recorded GPU snapshot {path} is larger than 16 MiB."
            raise ConfigError(message, hint=hint)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        message = f"Cannot read the recorded GPU snapshot {path}: {error}."
        raise ConfigError(message, hint=hint) from None
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as error:
        message = f"The recorded GPU snapshot {path} is not valid JSON: {error}."
        raise ConfigError(message, hint=hint) from None


def _validate(path: Path, text: str, document: Any) -> Any:
    from pydantic import ValidationError

    model = _models()
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        message = f"{path} is not a recorded GPU snapshot: 'format' must be {FORMAT!r}."
        raise ConfigError(message)
    if document.get("version") != VERSION:
        message = (
            f"The recorded GPU snapshot {path} has format version {document.get('version')!r}; "
            f"this opsctl reads version {VERSION}."
        )
        raise ConfigError(message, hint="Record it again with this opsctl.")
    try:
        # JSON mode: strict, yet a list may fill a tuple and a string a datetime.
        return model.model_validate_json(text)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        # A rule of the format's own reads better without pydantic's "Value error, ".
        said = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
        count = error.error_count()
        more = f" (and {count - 1} more problems)" if count > 1 else ""
        message = f"The recorded GPU snapshot {path} is malformed at {where}: {said}{more}."
        raise ConfigError(message) from None


_MODEL_CACHE: list[Any] = []


def _models() -> Any:
    """The pydantic models of the format, built on first use (pydantic is not needed before)."""
    if _MODEL_CACHE:
        return _MODEL_CACHE[0]
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field, model_validator

    CapabilityPart = Annotated[int, Field(ge=0, le=_LARGEST_CAPABILITY_PART)]  # noqa: N806  (a type)

    class Strict(BaseModel):
        # No NaN or infinity: they would print as "nan C" and as invalid JSON.
        model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    class Process(Strict):
        pid: int = Field(ge=1, le=_LARGEST_PID)
        used_bytes: int | None = Field(default=None, ge=0)
        name: str | None = None

    class Device(Strict):
        index: int = Field(ge=0)
        uuid: str
        name: str
        memory_used_bytes: int | None = Field(default=None, ge=0)
        memory_total_bytes: int | None = Field(default=None, ge=0)
        utilization_percent: float | None = Field(default=None, ge=0, le=100)
        memory_utilization_percent: float | None = Field(default=None, ge=0, le=100)
        temperature_celsius: float | None = None
        power_watts: float | None = Field(default=None, ge=0)
        power_limit_watts: float | None = Field(default=None, ge=0)
        sm_clock_mhz: int | None = Field(default=None, ge=0)
        memory_clock_mhz: int | None = Field(default=None, ge=0)
        ecc_corrected: int | None = Field(default=None, ge=0)
        ecc_uncorrected: int | None = Field(default=None, ge=0)
        mig_mode: bool | None = None
        compute_capability: tuple[CapabilityPart, CapabilityPart] | None = None
        architecture: str | None = None
        processes: list[Process] = Field(default_factory=list)

        @model_validator(mode="after")
        def used_within_total(self) -> Device:
            used, total = self.memory_used_bytes, self.memory_total_bytes
            if used is not None and total is not None and used > total:
                message = f"memory_used_bytes ({used}) is above memory_total_bytes ({total})"
                raise ValueError(message)
            return self

        def to_device(self) -> GpuDevice:
            values = self.model_dump(exclude={"processes"})
            processes = tuple(GpuProcess(**process.model_dump()) for process in self.processes)
            return GpuDevice(**values, processes=processes)

    class Recording(Strict):
        format: Literal["opsctl-gpu-snapshot"]
        version: Literal[1]
        host: str = "recorded"
        taken_at: datetime | None = None
        machine: str | None = None
        driver_version: str | None = None
        cuda_driver_version: str | None = None
        nvml_version: str | None = None
        nvml_error: str | None = None
        devices: list[Device] = Field(default_factory=list)

        @model_validator(mode="after")
        def devices_distinct(self) -> Recording:
            _check_distinct("index", [device.index for device in self.devices])
            # NVML gives no UUID for a device it cannot open; several may lack one.
            _check_distinct("uuid", [device.uuid for device in self.devices if device.uuid])
            return self

        def to_snapshot(self) -> GpuSnapshot:
            taken_at = self.taken_at or datetime.now(UTC)
            if taken_at.tzinfo is None:
                taken_at = taken_at.replace(tzinfo=UTC)
            taken_at = taken_at.astimezone(UTC)
            return GpuSnapshot(
                driver_version=self.driver_version,
                cuda_driver_version=self.cuda_driver_version,
                nvml_version=self.nvml_version,
                devices=tuple(device.to_device() for device in self.devices),
                host=self.host,
                taken_at=taken_at,
            )

    _MODEL_CACHE.append(Recording)
    return Recording


def _check_distinct(field: str, values: list[Any]) -> None:
    """Raise ``ValueError`` naming the first value of ``field`` two devices share."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            message = f"two devices have {field} {value!r}"
            raise ValueError(message)
        seen.add(value)
