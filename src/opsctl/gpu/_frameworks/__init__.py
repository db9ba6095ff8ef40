"""The frameworks opsctl knows, one module each, chosen by name through :data:`FRAMEWORKS`.

Each module cleans its framework inside the application's process; the probes that
``gpu check`` runs in subprocesses live in :mod:`opsctl.gpu._frameworks._probe`.
"""

from __future__ import annotations

from opsctl.gpu._frameworks import cupy, tensorflow, tensorrt, torch
from opsctl.gpu._frameworks._base import (
    LEVELS,
    Framework,
    FrameworkCleanup,
    Level,
    Registered,
)

# The order cleanup runs them in; the application's own steps for a framework run before it.
FRAMEWORKS: dict[str, Framework] = {
    module.FRAMEWORK.name: module.FRAMEWORK for module in (tensorrt, cupy, torch, tensorflow)
}

__all__ = ["FRAMEWORKS", "LEVELS", "Framework", "FrameworkCleanup", "Level", "Registered"]
