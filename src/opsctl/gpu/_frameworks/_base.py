"""What every framework adapter shares: the result of one framework's cleanup, the levels,
and the objects an application registered.

An adapter is handed the framework's module only when the application already imported
it (it is taken from ``sys.modules``, never imported), so cleaning up can never be the
reason a framework gets loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

Level = Literal["soft", "hard"]
LEVELS: tuple[Level, ...] = ("soft", "hard")


@dataclass(frozen=True)
class FrameworkCleanup:
    """What cleaning one framework (or one registered step) did.

    ``freed_bytes`` is memory handed back to the driver, ``None`` where it cannot be
    measured; ``held_bytes`` is what the framework still holds afterwards, where known.
    """

    framework: str
    freed_bytes: int | None
    held_bytes: int | None = None
    actions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one framework's entry in a cleanup reply."""
        return {
            "freed_bytes": self.freed_bytes,
            "held_bytes": self.held_bytes,
            "actions": list(self.actions),
            "notes": list(self.notes),
            "error": self.error,
        }


@dataclass
class Registered:
    """What the application handed over: its own cleanup steps per name, and TensorRT
    objects by kind (``context``, ``engine``, ``runtime``), in registration order.
    """

    steps: dict[str, list[tuple[Level, Callable[[], object]]]] = field(default_factory=dict)
    tensorrt: dict[str, list[Any]] = field(
        default_factory=lambda: {"context": [], "engine": [], "runtime": []}
    )


@dataclass(frozen=True)
class Framework:
    """One framework opsctl knows: its key, its display name, the module it is imported as,
    and the function that cleans it (given the loaded module or ``None``, the level and
    what the application registered).
    """

    name: str
    title: str
    module: str
    clean: Callable[[ModuleType | None, Level, Registered], FrameworkCleanup]
