"""Starting and stopping the stack: one runtime interface, a local and a docker runtime."""

from __future__ import annotations

from opsctl.config import Project
from opsctl.runtime._base import Runtime, Snapshot
from opsctl.runtime._paths import StatePaths
from opsctl.runtime._render import dependency_levels, render_supervisord_conf
from opsctl.runtime._stack import DownResult, ServiceOutcome, ServiceStatus, Stack, UpResult
from opsctl.runtime._supervisor import ProcessInfo, SupervisorClient

__all__ = [
    "DownResult",
    "ProcessInfo",
    "Runtime",
    "ServiceOutcome",
    "ServiceStatus",
    "Snapshot",
    "Stack",
    "StatePaths",
    "SupervisorClient",
    "UpResult",
    "dependency_levels",
    "get_runtime",
    "render_supervisord_conf",
]


def get_runtime(project: Project) -> Runtime:
    """Return the runtime ``runtime.kind`` names, for ``runtime.host``."""
    kind = project.config.runtime.kind
    if kind == "local":
        from opsctl.runtime.local import LocalRuntime

        return LocalRuntime(project, host=project.config.runtime.host)
    from opsctl.runtime.docker import DockerRuntime

    return DockerRuntime(project, host=project.config.runtime.host)
