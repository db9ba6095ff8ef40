"""GPU support: observation (NVML snapshots), the framework stack check, progressive cleanup
and recommended settings; and the in-process library application code embeds.

Importing this package is cheap: no framework and no NVML binding is imported until a
function that needs one runs, and cleanup only ever touches frameworks the application
imported itself.

In application code::

    import opsctl.gpu
    from opsctl.agent import Agent

    opsctl.gpu.register_cleanup("torch", model_cache.clear)
    opsctl.gpu.register_tensorrt(context=context, engine=engine, runtime=runtime)
    agent = Agent("worker").start()
    opsctl.gpu.serve_requests(agent)      # answers `opsctl gpu cleanup` and the monitor
    opsctl.gpu.auto_cleanup()             # cleans up on its own as thresholds are crossed
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from opsctl.gpu._frameworks import FRAMEWORKS, FrameworkCleanup, Level
from opsctl.gpu._frameworks._auto import (
    HARD_PERCENT_VARIABLE,
    SOFT_PERCENT_VARIABLE,
    WARN_PERCENT_VARIABLE,
    AutoCleanup,
    Thresholds,
    Usage,
    device_usage_reader,
    thresholds_from,
)
from opsctl.gpu._frameworks._library import (
    FREE_CACHES_REQUEST,
    Cleaner,
    CleanupReport,
)
from opsctl.gpu._frameworks._library import serve_requests as _serve_requests
from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot, NoGpuError

logger = logging.getLogger(__name__)

_cleaner = Cleaner()


def register_cleanup(
    framework_or_name: str, fn: Callable[[], object], *, level: Level = "soft"
) -> None:
    """Add a cleanup step of the application's own, run by every :func:`cleanup` at
    ``level`` and above. Under a framework's name (``cupy``, ``tensorflow``, ``tensorrt``,
    ``torch``) it runs just before that framework is cleaned: the place to drop references
    to cached arrays or models. An int it returns is counted as bytes freed. Raises
    ``ValueError`` for an unknown level.
    """
    _cleaner.register_cleanup(framework_or_name, fn, level=level)


def register_tensorrt(
    *, context: object = None, engine: object = None, runtime: object = None
) -> None:
    """Hand TensorRT objects (``IExecutionContext``, ``ICudaEngine``, ``Runtime``) over for
    hard cleanup, which releases contexts, then engines, then runtimes.
    """
    _cleaner.register_tensorrt(context=context, engine=engine, runtime=runtime)


def cleanup(level: str = "soft") -> CleanupReport:
    """Free GPU memory held by this process: the registered steps, then each framework the
    process imported (CuPy pools, PyTorch's cache, TensorFlow's garbage; at ``hard`` level
    also the Keras session and registered TensorRT objects). Returns what was freed per
    framework, with notes such as TensorFlow's need for a restart. Raises ``ValueError``
    for a level other than ``soft`` or ``hard``.
    """
    return _cleaner.cleanup(level)


def serve_requests(agent: Any, *, max_level: Level = "hard") -> None:
    """Answer ``gpu.free_caches`` requests (from ``opsctl gpu cleanup`` and the monitor) on
    ``agent``, an :class:`opsctl.agent.Agent`: run :func:`cleanup` at the level asked,
    at most ``max_level``, and reply with ``{"freed_bytes", "frameworks", "notes", "level"}``.
    """
    _serve_requests(agent, cleaner=_cleaner, max_level=max_level)


def auto_cleanup(
    *,
    warn_percent: float | None = None,
    soft_percent: float | None = None,
    hard_percent: float | None = None,
    interval_seconds: float = 10.0,
    cooldown_seconds: float = 60.0,
    usage: Usage | None = None,
    on_cleanup: Callable[[CleanupReport], None] | None = None,
) -> AutoCleanup:
    """Start a daemon thread that checks device memory every ``interval_seconds`` and, as
    usage reaches each threshold, logs a warning (warn) or runs :func:`cleanup` (soft,
    hard); a level is acted on again only after ``cooldown_seconds``.

    Thresholds come from the arguments, else ``OPSCTL_GPU__POLICY__{WARN,SOFT,HARD}_PERCENT``
    (the variables that set ``[gpu.policy]``), else 80/90/97. ``usage`` returns
    ``(used_bytes, total_bytes)``; by default NVML is read for this process's device. With
    no GPU to watch, a warning is logged and the returned watcher is not running. Raises
    ``ValueError`` for thresholds that are not numbers or not in order.
    """
    thresholds = thresholds_from(
        os.environ, warn_percent=warn_percent, soft_percent=soft_percent, hard_percent=hard_percent
    )
    reader = usage
    if reader is None:
        try:
            reader = device_usage_reader()
        except NoGpuError as error:
            logger.warning("No automatic GPU cleanup: %s", error.message)
            return AutoCleanup(
                thresholds=thresholds,
                usage=lambda: None,
                clean=cleanup,
                interval_seconds=interval_seconds,
                cooldown_seconds=cooldown_seconds,
            )
    watcher = AutoCleanup(
        thresholds=thresholds,
        usage=reader,
        clean=cleanup,
        interval_seconds=interval_seconds,
        cooldown_seconds=cooldown_seconds,
        on_cleanup=on_cleanup,
    )
    return watcher.start()


def read_snapshot() -> GpuSnapshot:
    """Every GPU of this host now, from NVML (or recorded answers named by
    ``OPSCTL_GPU_RECORDED``). Raises :class:`NoGpuError` (exit 4) when there is none.
    """
    from opsctl.gpu._nvml import read_snapshot as read

    return read()


__all__ = [
    "FRAMEWORKS",
    "FREE_CACHES_REQUEST",
    "HARD_PERCENT_VARIABLE",
    "SOFT_PERCENT_VARIABLE",
    "WARN_PERCENT_VARIABLE",
    "AutoCleanup",
    "CleanupReport",
    "FrameworkCleanup",
    "GpuDevice",
    "GpuProcess",
    "GpuSnapshot",
    "NoGpuError",
    "Thresholds",
    "auto_cleanup",
    "cleanup",
    "read_snapshot",
    "register_cleanup",
    "register_tensorrt",
    "serve_requests",
]
