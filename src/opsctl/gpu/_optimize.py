"""``gpu optimize``: settings recommended for the GPUs found, each with its reason.

Recommendations follow the hardware: the compute capability decides the precision (bf16
from 8.0, Ampere; fp16 with loss scaling on 7.x; full fp32 below) and whether TF32 exists;
memory and MIG mode shape the allocator settings; a GH200 gets what its unified CPU-GPU
memory changes. On a host with different GPUs the least capable one decides, so every
setting is valid on every device. Variables go into a ``.env`` through the project's safe
writer (atomic, mode 0600, other lines kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.gpu._model import GpuDevice, GpuSnapshot

if TYPE_CHECKING:
    from opsctl.keys import EnvWrite

PRECISION_VARIABLE = "OPSCTL_GPU_MIXED_PRECISION"
"""Written by ``gpu optimize`` for application code to read: ``bf16``, ``fp16`` or ``fp32``."""

_AMPERE = (8, 0)
_VOLTA = (7, 0)
_GIB = 1 << 30
_SMALL_CARD_BYTES = 16 * _GIB


@dataclass(frozen=True)
class Recommendation:
    """One setting: the variables that carry it (none for advice), the code that applies it
    in an application where no variable can, and why.
    """

    key: str
    title: str
    framework: str
    value: str
    why: str
    variables: dict[str, str] = field(default_factory=dict)
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one recommendation."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Hardware:
    """The device the recommendations are made for, and how it was chosen."""

    name: str
    devices: int
    compute_capability: tuple[int, int] | None
    architecture: str | None
    memory_total_bytes: int | None
    gh200: bool
    mig: bool
    mixed: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the hardware found."""
        data = dict(self.__dict__)
        cc = self.compute_capability
        data["compute_capability"] = None if cc is None else f"{cc[0]}.{cc[1]}"
        return data


@dataclass(frozen=True)
class OptimizeReport:
    """Every recommendation for the hardware found."""

    hardware: Hardware
    recommendations: tuple[Recommendation, ...]

    @property
    def variables(self) -> dict[str, str]:
        """Every variable to write, in recommendation order."""
        found: dict[str, str] = {}
        for recommendation in self.recommendations:
            found.update(recommendation.variables)
        return found

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``gpu optimize --json``."""
        return {
            "hardware": self.hardware.to_dict(),
            "recommendations": [item.to_dict() for item in self.recommendations],
            "variables": self.variables,
        }


def recommend(snapshot: GpuSnapshot, *, cupy_limit_percent: float = 80.0) -> OptimizeReport:
    """Recommend settings for the GPUs of ``snapshot``; ``cupy_limit_percent`` caps CuPy's
    pool (``[gpu.policy].warn_percent`` by default in the command). Raises ``ValueError``
    for a snapshot without devices.
    """
    if not snapshot.devices:
        message = "there is no GPU in the snapshot to recommend settings for"
        raise ValueError(message)
    hardware = describe(snapshot.devices)
    items = [
        _precision(hardware),
        *_tf32(hardware),
        _tensorflow_allocator(hardware),
        _cupy_limit(hardware, cupy_limit_percent),
        _torch_allocator(),
        *_mig(hardware),
        *_gh200(hardware),
    ]
    return OptimizeReport(hardware, tuple(items))


def describe(devices: tuple[GpuDevice, ...]) -> Hardware:
    """The least capable device (lowest compute capability, then least memory) stands for
    all, so that what is recommended runs everywhere.
    """
    from opsctl.gpu._nvml import is_gh200

    def weakness(device: GpuDevice) -> tuple[tuple[int, int], int]:
        return device.compute_capability or (0, 0), device.memory_total_bytes or 0

    weakest = min(devices, key=weakness)
    kinds = {(d.name, d.compute_capability) for d in devices}
    return Hardware(
        name=weakest.name,
        devices=len(devices),
        compute_capability=weakest.compute_capability,
        architecture=weakest.architecture,
        memory_total_bytes=weakest.memory_total_bytes,
        gh200=all(is_gh200(device) for device in devices),
        mig=any(device.mig_mode for device in devices),
        mixed=len(kinds) > 1,
    )


def write_env_file(path: Path, variables: dict[str, str]) -> list[EnvWrite]:
    """Set each variable in the ``.env`` at ``path`` (created if missing), one atomic write
    each, mode 0600, every other line kept byte for byte.
    """
    from opsctl.keys import set_key

    return [set_key(path, name, value) for name, value in variables.items()]


def _precision(hardware: Hardware) -> Recommendation:
    cc = hardware.compute_capability
    if cc is None:
        return Recommendation(
            "mixed_precision",
            "Mixed precision",
            "all",
            "unknown",
            "NVML did not report the compute capability, so no precision can be chosen safely",
        )
    label = f"compute capability {cc[0]}.{cc[1]}"
    if cc >= _AMPERE:
        return Recommendation(
            "mixed_precision",
            "Mixed precision",
            "all",
            "bf16",
            f"{label} has bf16 tensor cores: about twice the fp32 matmul throughput and half "
            "the activation memory, with fp32's exponent range, so no loss scaling is needed",
            {PRECISION_VARIABLE: "bf16"},
            'keras.mixed_precision.set_global_policy("mixed_bfloat16"); '
            'torch.autocast("cuda", dtype=torch.bfloat16)',
        )
    if cc >= _VOLTA:
        return Recommendation(
            "mixed_precision",
            "Mixed precision",
            "all",
            "fp16",
            f"{label} has fp16 tensor cores but no bf16: fp16 needs loss scaling to keep small "
            "gradients from underflowing",
            {PRECISION_VARIABLE: "fp16"},
            'keras.mixed_precision.set_global_policy("mixed_float16"); '
            'torch.autocast("cuda", dtype=torch.float16) with torch.amp.GradScaler',
        )
    return Recommendation(
        "mixed_precision",
        "Mixed precision",
        "all",
        "fp32",
        f"{label} has no tensor cores: reduced precision saves memory but gains no speed",
        {PRECISION_VARIABLE: "fp32"},
    )


def _tf32(hardware: Hardware) -> list[Recommendation]:
    cc = hardware.compute_capability
    if cc is None or cc < _AMPERE:
        return []
    return [
        Recommendation(
            "tf32",
            "TF32 for fp32 matrix maths",
            "torch, tensorflow",
            "on",
            "Ampere and later run fp32 matmuls and convolutions on tensor cores in TF32 (10-bit "
            "mantissa) several times faster; TensorFlow does by default, PyTorch only for "
            "convolutions unless told. Leave NVIDIA_TF32_OVERRIDE unset: 0 turns it off",
            {"TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1"},
            'torch.set_float32_matmul_precision("high")',
        )
    ]


def _tensorflow_allocator(hardware: Hardware) -> Recommendation:
    small = (hardware.memory_total_bytes or 0) < _SMALL_CARD_BYTES
    why = (
        "by default TensorFlow reserves nearly all memory of every GPU it sees at start, "
        "leaving none to the stack's other services on the device; growth takes only what "
        "is used, and CUDA's stream-ordered allocator (cuda_malloc_async) fragments less "
        "than TensorFlow's own"
    )
    if small:
        why += "; on a card this small, reserving everything up front starves other processes"
    return Recommendation(
        "tensorflow_allocator",
        "TensorFlow allocator and memory growth",
        "tensorflow",
        "cuda_malloc_async, growth on",
        why,
        {"TF_GPU_ALLOCATOR": "cuda_malloc_async", "TF_FORCE_GPU_ALLOW_GROWTH": "true"},
    )


def _cupy_limit(hardware: Hardware, percent: float) -> Recommendation:
    limit = f"{percent:g}%"
    total = hardware.memory_total_bytes
    of = (
        f" (about {total * percent / 100 / _GIB:.0f} GiB of {total / _GIB:.0f} GiB)"
        if total
        else ""
    )
    return Recommendation(
        "cupy_pool_limit",
        "CuPy memory pool limit",
        "cupy",
        limit,
        f"CuPy keeps freed blocks cached in its pool; capped at {limit} of the device{of}, "
        "one process's cache alone cannot push the device past the warn threshold",
        {"CUPY_GPU_MEMORY_LIMIT": limit},
    )


def _torch_allocator() -> Recommendation:
    return Recommendation(
        "torch_allocator",
        "PyTorch allocator",
        "torch",
        "expandable_segments:True",
        "segments that grow in place instead of new fixed-size blocks cut the fragmentation "
        "behind out-of-memory errors while reserved memory is still free (PyTorch 2.1 and later)",
        {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"},
    )


def _mig(hardware: Hardware) -> list[Recommendation]:
    if not hardware.mig:
        return []
    return [
        Recommendation(
            "mig",
            "MIG instances",
            "all",
            "per instance",
            "MIG mode is on: each instance has its own memory, so limits and pool sizes apply "
            "to the instance, and CUDA_VISIBLE_DEVICES must name MIG UUIDs (nvidia-smi -L)",
        )
    ]


def _gh200(hardware: Hardware) -> list[Recommendation]:
    if not hardware.gh200:
        return []
    return [
        Recommendation(
            "gh200_unified_memory",
            "GH200 unified memory",
            "all",
            "managed memory for working sets larger than HBM",
            "the Hopper GPU reads and writes the Grace CPU's LPDDR5X coherently over "
            "NVLink-C2C (about 900 GB/s), so data sets larger than HBM fit through managed "
            "memory, at a lower bandwidth than HBM but far above PCIe. NVML's memory figures "
            "and opsctl's thresholds count HBM only: memory that migrated to the CPU side "
            "is not in them",
            code=(
                "cupy.cuda.set_allocator(cupy.cuda.MemoryPool(cupy.cuda.malloc_managed).malloc); "
                "TensorFlow: TF_FORCE_UNIFIED_MEMORY=1 with per_process_gpu_memory_fraction > 1"
            ),
        ),
        Recommendation(
            "gh200_numa",
            "GH200 NUMA placement",
            "system",
            "CPU work on the Grace node",
            "Linux shows the GPU's HBM as a NUMA node of its own beside the Grace CPU's memory: "
            "bind CPU-side processes to the Grace node (numactl --cpunodebind/--membind, see "
            "numactl -H) so host buffers are not placed in HBM the GPU needs",
        ),
        Recommendation(
            "gh200_arm64",
            "GH200 software builds",
            "all",
            "aarch64 with CUDA",
            "the Grace CPU is aarch64: every environment needs aarch64 builds of the frameworks "
            "made with CUDA; 'opsctl gpu check' shows which see the GPU",
        ),
    ]
