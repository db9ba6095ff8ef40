"""TensorFlow: clear the Keras session and collect garbage, and say plainly what that cannot do.

TensorFlow's allocator reserves device memory and keeps it until the process exits: what
models and tensors release goes back to TensorFlow's own pool, for its reuse, never to the
driver. The only way to hand it back is to restart the process, and the report says so
instead of claiming memory was freed.
"""

from __future__ import annotations

import gc
import sys
from types import ModuleType

from opsctl.gpu._frameworks._base import Framework, FrameworkCleanup, Level, Registered

RESTART_NOTE = (
    "TensorFlow cannot return GPU memory to the driver before its process exits: "
    "restart the service to get it back"
)
# Keras is imported lazily by TensorFlow; a process that never touched it has no session.
_KERAS_MODULES = ("keras", "tf_keras")


def clean(module: ModuleType | None, level: Level, registered: Registered) -> FrameworkCleanup:
    """Collect garbage (and at hard level first clear the Keras session, which discards the
    process's Keras models and layers); report the memory TensorFlow still holds on each GPU
    through ``get_memory_info``. Bytes freed for the driver are always 0.
    """
    del registered
    if module is None:
        return FrameworkCleanup(
            "tensorflow", 0, notes=("TensorFlow is not loaded in this process",)
        )

    before_bytes = memory_in_use_bytes(module)
    actions: list[str] = []
    notes: list[str] = []
    if level == "hard":
        actions.append(_clear_session())
    else:
        notes.append("the Keras session is cleared at hard level only: it discards the models")
    gc.collect()
    actions.append("gc.collect")

    after_bytes = memory_in_use_bytes(module)
    if before_bytes is not None and after_bytes is not None and before_bytes > after_bytes:
        notes.append(
            f"{before_bytes - after_bytes} bytes went back to TensorFlow's own allocator, "
            "for its reuse, not to the driver"
        )
    notes.append(RESTART_NOTE)
    return FrameworkCleanup("tensorflow", 0, after_bytes, tuple(actions), tuple(notes))


def memory_in_use_bytes(module: ModuleType) -> int | None:
    """Bytes TensorFlow's allocator has in use over its GPUs, or ``None`` when it sees no GPU,
    has not started its runtime, or cannot tell. Asking a runtime that has not started would
    start it, and take device memory, so it is not asked.
    """
    if not runtime_started():
        return None
    try:
        devices = module.config.list_logical_devices("GPU")
        if not devices:
            return None
        return sum(
            int(module.config.experimental.get_memory_info(device.name)["current"])
            for device in devices
        )
    except (ValueError, RuntimeError, AttributeError, KeyError):
        return None


def runtime_started() -> bool:
    """Whether TensorFlow's eager runtime (and so its GPU context) exists in this process.

    TensorFlow offers no public way to ask without starting it; its context object's
    ``_initialized`` flag answers, and an unknown answer counts as not started.
    """
    eager = sys.modules.get("tensorflow.python.eager.context")
    if eager is None:
        return False
    try:
        return bool(getattr(eager.context(), "_initialized", False))
    except Exception:  # an internal that moved: treat as not started, never start it
        return False


def _clear_session() -> str:
    for name in _KERAS_MODULES:
        keras = sys.modules.get(name)
        if keras is not None:
            keras.backend.clear_session()
            return f"{name}.backend.clear_session"
    return "no Keras session to clear (Keras is not loaded)"


FRAMEWORK = Framework(name="tensorflow", title="TensorFlow", module="tensorflow", clean=clean)
