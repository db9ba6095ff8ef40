"""The in-process cleanup library: what application code registers, and one ``cleanup`` call
that runs the application's own steps, then each loaded framework's.

Only frameworks the application already imported are cleaned: each is looked up in
``sys.modules``, never imported, so cleaning up never loads a framework (nor creates a
CUDA context) in a process that did not use it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opsctl.gpu._frameworks import FRAMEWORKS, LEVELS, FrameworkCleanup, Level, Registered

logger = logging.getLogger(__name__)

FREE_CACHES_REQUEST = "gpu.free_caches"
"""The agent request kind ``gpu cleanup`` and the monitor send to the stack's components."""

_ALIASES = {"pytorch": "torch", "tf": "tensorflow", "trt": "tensorrt"}


@dataclass(frozen=True)
class CleanupReport:
    """What one cleanup did, framework by framework (and step by step for the application's
    own named steps), with notes that apply to the whole process.
    """

    level: Level
    frameworks: tuple[FrameworkCleanup, ...]
    notes: tuple[str, ...] = ()

    @property
    def freed_bytes(self) -> int:
        """Bytes handed back to the driver, counting only what could be measured."""
        return sum(entry.freed_bytes or 0 for entry in self.frameworks)

    def to_dict(self) -> dict[str, Any]:
        """The reply to a ``gpu.free_caches`` request: ``freed_bytes``, ``frameworks`` by
        name, ``notes``, and the ``level`` that ran.
        """
        return {
            "level": self.level,
            "freed_bytes": self.freed_bytes,
            "frameworks": {entry.framework: entry.to_dict() for entry in self.frameworks},
            "notes": list(self.notes),
        }


class _RequestServer(Protocol):
    def on_request(
        self, kind: str, handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None: ...


class Cleaner:
    """Holds what the application registered and runs cleanups, one at a time (the agent's
    thread and the automatic cleanup's may ask at once).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._registered = Registered()

    def register_cleanup(
        self, framework_or_name: str, fn: Callable[[], object], *, level: Level = "soft"
    ) -> None:
        """Add a step of the application's own. Under a framework's name (``cupy``,
        ``tensorflow`` or ``tf``, ``tensorrt`` or ``trt``, ``torch`` or ``pytorch``, in any
        case) it runs just before that framework is
        cleaned, which is where dropping references to arrays or models belongs; under any
        other name it is reported on its own, and runs before every framework. It runs at
        ``level`` and above; an int it returns is counted as bytes freed.
        """
        _check_level(level)
        if not framework_or_name:
            message = "register_cleanup needs a framework or step name"
            raise ValueError(message)
        name = _ALIASES.get(framework_or_name.lower(), framework_or_name)
        if name.lower() in FRAMEWORKS:
            name = name.lower()
        with self._lock:
            self._registered.steps.setdefault(name, []).append((level, fn))

    def register_tensorrt(
        self, *, context: object = None, engine: object = None, runtime: object = None
    ) -> None:
        """Hand over TensorRT objects for hard cleanup: an ``IExecutionContext``, an
        ``ICudaEngine`` and/or a ``Runtime``. They are released contexts first, then engines,
        then runtimes. opsctl keeps a reference until then, so register what the
        application would drop anyway, and drop its own references too.
        """
        with self._lock:
            for kind, item in (("context", context), ("engine", engine), ("runtime", runtime)):
                if item is not None:
                    self._registered.tensorrt[kind].append(item)

    def cleanup(self, level: str = "soft") -> CleanupReport:
        """Run the application's named steps, then each loaded framework's cleanup (with the
        steps registered under its name first). ``soft`` frees caches and keeps every model
        usable; ``hard`` also clears the Keras session and releases TensorRT objects.
        A step or framework that raises is reported with its error; the others still run.
        Raises ``ValueError`` only for an unknown level.
        """
        checked = _check_level(level)
        with self._lock:
            entries = [
                _run_steps(name, steps, checked)
                for name, steps in self._registered.steps.items()
                if name not in FRAMEWORKS
            ]
            entries += [
                entry
                for name in FRAMEWORKS
                if (entry := self._clean_framework(name, checked)) is not None
            ]
        report = CleanupReport(checked, tuple(entries), _absent_notes())
        logger.info("GPU cleanup (%s) freed %d bytes", checked, report.freed_bytes)
        return report

    def _clean_framework(self, name: str, level: Level) -> FrameworkCleanup | None:
        framework = FRAMEWORKS[name]
        module = sys.modules.get(framework.module)
        steps = self._registered.steps.get(name, [])
        has_objects = name == "tensorrt" and any(self._registered.tensorrt.values())
        if module is None and not steps and not has_objects:
            return None

        before = _run_steps(name, steps, level) if steps else None
        try:
            entry = framework.clean(module, level, self._registered)
        except Exception as error:  # a framework's failure is reported, never raised
            logger.warning("Cleaning %s failed", framework.title, exc_info=True)
            entry = FrameworkCleanup(name, None, error=f"{type(error).__name__}: {error}")
        return _merge(before, entry) if before is not None else entry


def serve_requests(agent: _RequestServer, *, cleaner: Cleaner, max_level: Level = "hard") -> None:
    """Answer ``gpu.free_caches`` requests on ``agent`` (an :class:`opsctl.agent.Agent`) by
    running a cleanup at the level asked (``soft`` when not given, never above
    ``max_level``) and replying with :meth:`CleanupReport.to_dict`.
    """
    _check_level(max_level)

    def handle(payload: dict[str, Any]) -> dict[str, Any]:
        asked = str(payload.get("level", "soft"))
        level = _check_level(asked)
        notes: list[str] = []
        if LEVELS.index(level) > LEVELS.index(max_level):
            notes.append(f"asked for {level} cleanup; this process allows {max_level} at most")
            level = max_level
        reply = cleaner.cleanup(level).to_dict()
        reply["notes"] = notes + reply["notes"]
        return reply

    agent.on_request(FREE_CACHES_REQUEST, handle)


def _check_level(level: str) -> Level:
    for known in LEVELS:
        if level == known:
            return known
    message = f"unknown cleanup level {level!r}: use 'soft' or 'hard'"
    raise ValueError(message)


def _run_steps(
    name: str, steps: list[tuple[Level, Callable[[], object]]], level: Level
) -> FrameworkCleanup:
    measured: list[int] = []
    actions: list[str] = []
    errors: list[str] = []
    for step_level, fn in steps:
        if LEVELS.index(step_level) > LEVELS.index(level):
            continue
        label = getattr(fn, "__qualname__", repr(fn))
        try:
            result = fn()
        except Exception as error:  # the application's step failing must not stop the rest
            logger.warning("Cleanup step %s for %s failed", label, name, exc_info=True)
            errors.append(f"{label}: {type(error).__name__}: {error}")
            continue
        actions.append(label)
        if isinstance(result, int) and not isinstance(result, bool):
            measured.append(max(result, 0))
    freed = sum(measured) if measured else None
    return FrameworkCleanup(name, freed, actions=tuple(actions), error="; ".join(errors) or None)


def _merge(steps: FrameworkCleanup, entry: FrameworkCleanup) -> FrameworkCleanup:
    """One entry for a framework: its application steps' figures added to its own."""
    freed = None
    if steps.freed_bytes is not None or entry.freed_bytes is not None:
        freed = (steps.freed_bytes or 0) + (entry.freed_bytes or 0)
    errors = [error for error in (steps.error, entry.error) if error]
    return FrameworkCleanup(
        entry.framework,
        freed,
        entry.held_bytes,
        actions=steps.actions + entry.actions,
        notes=entry.notes,
        error="; ".join(errors) or None,
    )


def _absent_notes() -> tuple[str, ...]:
    """Name the frameworks installed but not loaded here, which had nothing to clean."""
    idle = [
        framework.title
        for framework in FRAMEWORKS.values()
        if framework.module not in sys.modules and _installed(framework.module)
    ]
    if not idle:
        return ()
    return (f"installed but not loaded in this process, nothing to clean: {', '.join(idle)}",)


def _installed(module: str) -> bool:
    """Whether ``module`` could be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
