"""PyTorch: hand the caching allocator's unused blocks back to the driver.

``empty_cache`` returns what the allocator reserved but no tensor uses; memory of live
tensors stays. Nothing is done when CUDA was never initialised in the process, since
touching it would create a context (and take memory) instead of freeing any.
"""

from __future__ import annotations

import gc
from types import ModuleType

from opsctl.gpu._frameworks._base import Framework, FrameworkCleanup, Level, Registered


def clean(module: ModuleType | None, level: Level, registered: Registered) -> FrameworkCleanup:
    """Collect garbage, then ``torch.cuda.empty_cache()`` (and ``ipc_collect()`` at hard
    level, for memory shared with other processes); bytes freed are ``memory_reserved``
    summed over the devices, before minus after.
    """
    del registered
    if module is None:
        return FrameworkCleanup("torch", 0, notes=("PyTorch is not loaded in this process",))
    cuda = module.cuda
    if not cuda.is_initialized() or not cuda.is_available():
        return FrameworkCleanup(
            "torch", 0, 0, notes=("CUDA is not initialised by PyTorch in this process",)
        )

    devices = range(cuda.device_count())
    before_bytes = sum(int(cuda.memory_reserved(device)) for device in devices)

    gc.collect()
    cuda.empty_cache()
    actions = ["gc.collect", "torch.cuda.empty_cache"]
    if level == "hard":
        cuda.ipc_collect()
        actions.append("torch.cuda.ipc_collect")

    after_bytes = sum(int(cuda.memory_reserved(device)) for device in devices)
    allocated_bytes = sum(int(cuda.memory_allocated(device)) for device in devices)
    notes: tuple[str, ...] = ()
    if allocated_bytes:
        notes = (
            f"{allocated_bytes} bytes back live tensors; they are freed when the application "
            "drops its references",
        )
    return FrameworkCleanup(
        "torch", max(before_bytes - after_bytes, 0), after_bytes, tuple(actions), notes
    )


FRAMEWORK = Framework(name="torch", title="PyTorch", module="torch", clean=clean)
