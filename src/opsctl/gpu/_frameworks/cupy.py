"""CuPy: return the cached blocks of the default device pool and the pinned host pool.

CuPy keeps freed device memory in its pool for reuse, so the driver sees it as used until
the pool's free blocks are handed back. Blocks still backing live arrays stay: only the
application can drop those references.
"""

from __future__ import annotations

from types import ModuleType

from opsctl.gpu._frameworks._base import Framework, FrameworkCleanup, Level, Registered


def clean(module: ModuleType | None, level: Level, registered: Registered) -> FrameworkCleanup:
    """Free every cached block of both default pools; bytes freed are the pool's total before
    minus after. The level makes no difference: nothing gentler exists and nothing harder
    can be done in the process.
    """
    del level, registered
    if module is None:
        return FrameworkCleanup("cupy", 0, notes=("CuPy is not loaded in this process",))

    pool = module.get_default_memory_pool()
    pinned = module.get_default_pinned_memory_pool()
    before_bytes = int(pool.total_bytes())
    pinned_blocks = int(pinned.n_free_blocks())

    pool.free_all_blocks()
    pinned.free_all_blocks()

    after_bytes = int(pool.total_bytes())
    in_use_bytes = int(pool.used_bytes())
    actions = (
        "device memory pool: free_all_blocks",
        f"pinned memory pool: free_all_blocks ({pinned_blocks} free blocks)",
    )
    notes: tuple[str, ...] = ()
    if in_use_bytes:
        notes = (
            f"{in_use_bytes} bytes back live CuPy arrays; they are freed when the "
            "application drops its references",
        )
    return FrameworkCleanup(
        "cupy", max(before_bytes - after_bytes, 0), in_use_bytes, actions=actions, notes=notes
    )


FRAMEWORK = Framework(name="cupy", title="CuPy", module="cupy", clean=clean)
