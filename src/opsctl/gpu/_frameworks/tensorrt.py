"""TensorRT: release the objects the application registered, in the order TensorRT needs.

An execution context uses its engine, and an engine was made by its runtime, so they are
released contexts first, then engines, then runtimes. TensorRT's Python objects free their
memory when the last reference goes (``__del__``); opsctl drops its own reference and can
do no more, so an object the application still references elsewhere is reported as such.
Everything happens at hard level only: afterwards the application cannot run inference
until it builds the objects again.
"""

from __future__ import annotations

import gc
import sys
from types import ModuleType

from opsctl.gpu._frameworks._base import Framework, FrameworkCleanup, Level, Registered

RELEASE_ORDER = ("context", "engine", "runtime")
# sys.getrefcount counts its own argument and the local name holding the object.
_ONLY_OURS = 2


def clean(module: ModuleType | None, level: Level, registered: Registered) -> FrameworkCleanup:
    """At hard level, drop every registered context, then engine, then runtime, newest first
    within a kind, and collect garbage. Bytes freed cannot be measured from here.
    """
    del module
    objects = registered.tensorrt
    count = sum(len(objects[kind]) for kind in RELEASE_ORDER)
    if not count:
        return FrameworkCleanup("tensorrt", 0, notes=("no TensorRT objects are registered",))
    if level != "hard":
        note = f"{count} registered TensorRT objects are released at hard level only"
        return FrameworkCleanup("tensorrt", 0, notes=(note,))

    actions: list[str] = []
    notes: list[str] = []
    for kind in RELEASE_ORDER:
        while objects[kind]:
            item = objects[kind].pop()
            if sys.getrefcount(item) > _ONLY_OURS:
                notes.append(
                    f"a TensorRT {kind} ({type(item).__name__}) is still referenced by the "
                    "application: it is freed when that reference goes"
                )
            del item
            actions.append(f"released {kind}")
    gc.collect()
    return FrameworkCleanup("tensorrt", None, actions=tuple(actions), notes=tuple(notes))


FRAMEWORK = Framework(name="tensorrt", title="TensorRT", module="tensorrt", clean=clean)
