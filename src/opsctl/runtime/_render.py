"""Render supervisord.conf and the per-program launch specs from the project's config."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opsctl.config import Project, ServiceSection, command_argv
from opsctl.runtime._paths import StatePaths

_LOG_MAX_BYTES = "10MB"
_LOG_BACKUPS = 3
_BASE_PRIORITY = 100
_PRIORITY_STEP = 10


def dependency_levels(services: Mapping[str, ServiceSection]) -> list[list[str]]:
    """Group services into start levels: each level depends only on earlier ones.

    The config loader has already rejected cycles and unknown names.
    """
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            parents = services[name].depends_on
            depth[name] = 1 + max((depth_of(p) for p in parents), default=-1)
        return depth[name]

    levels: list[list[str]] = []
    for name in services:
        level = depth_of(name)
        while len(levels) <= level:
            levels.append([])
        levels[level].append(name)
    return levels


def with_dependencies(services: Mapping[str, ServiceSection], names: Sequence[str]) -> set[str]:
    """Return ``names`` plus everything they depend on, directly or not."""
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(services[name].depends_on)
    return wanted


def with_dependents(services: Mapping[str, ServiceSection], names: Sequence[str]) -> set[str]:
    """Return ``names`` plus everything that depends on them, directly or not."""
    wanted = set(names)
    changed = True
    while changed:
        changed = False
        for name, service in services.items():
            if name not in wanted and wanted.intersection(service.depends_on):
                wanted.add(name)
                changed = True
    return wanted


def priorities(services: Mapping[str, ServiceSection]) -> dict[str, int]:
    """Return supervisord priorities: the configured one, else one derived from depth."""
    result = {}
    for depth, level in enumerate(dependency_levels(services)):
        for name in level:
            configured = services[name].priority
            result[name] = configured or min(_BASE_PRIORITY + _PRIORITY_STEP * depth, 999)
    return result


def required_stop_seconds(services: Mapping[str, ServiceSection]) -> int:
    """How long supervisord can take to stop ``services``: it stops one priority group
    after another, each up to the longest stop timeout in it.
    """
    groups: dict[int, int] = {}
    for name, priority in priorities(services).items():
        groups[priority] = max(groups.get(priority, 0), services[name].stop_timeout_seconds)
    return sum(groups.values())


def render_supervisord_conf(
    project: Project,
    paths: StatePaths,
    *,
    launcher: Sequence[str],
    daemon: bool = True,
    autostart: bool = False,
) -> str:
    """Return supervisord.conf for the project.

    Every program runs ``launcher`` followed by its spec file; ``daemon`` selects whether
    supervisord forks into the background; ``autostart`` whether it starts the programs
    itself (in priority order) rather than waiting for opsctl to start them.
    """
    lines = [
        "; Rendered by opsctl from " + _ini(str(project.config_path)) + ". Do not edit.",
        "[unix_http_server]",
        f"file={_ini(str(paths.socket_file))}",
        "chmod=0700",
        "",
        "[supervisord]",
        f"logfile={_ini(str(paths.supervisord_log))}",
        f"logfile_maxbytes={_LOG_MAX_BYTES}",
        f"logfile_backups={_LOG_BACKUPS}",
        "loglevel=info",
        f"pidfile={_ini(str(paths.pid_file))}",
        f"childlogdir={_ini(str(paths.log_dir))}",
        f"directory={_ini(str(project.root))}",
        f"nodaemon={'false' if daemon else 'true'}",
        f"identifier=opsctl-{_ini(project.name)}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    priority = priorities(project.services)
    for name, service in project.services.items():
        lines += _program(
            name, service, paths, launcher=launcher, priority=priority[name], autostart=autostart
        )
    return "\n".join(lines)


def _program(
    name: str,
    service: ServiceSection,
    paths: StatePaths,
    *,
    launcher: Sequence[str],
    priority: int,
    autostart: bool,
) -> list[str]:
    command = " ".join(shlex.quote(part) for part in [*launcher, str(paths.spec_file(name))])
    autorestart = (
        service.autorestart
        if isinstance(service.autorestart, str)
        else str(service.autorestart).lower()
    )
    return [
        f"[program:{name}]",
        f"command={_ini(command)}",
        f"priority={priority}",
        f"autostart={'true' if autostart else 'false'}",
        f"autorestart={autorestart}",
        f"startsecs={service.start_seconds}",
        f"startretries={service.start_retries}",
        f"exitcodes={','.join(str(code) for code in service.exit_codes)}",
        f"stopsignal={service.stop_signal}",
        f"stopwaitsecs={service.stop_timeout_seconds}",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={_ini(str(paths.program_log(name)))}",
        f"stdout_logfile_maxbytes={_LOG_MAX_BYTES}",
        f"stdout_logfile_backups={_LOG_BACKUPS}",
        "",
    ]


def program_spec(project: Project, name: str) -> dict[str, Any]:
    """Return the launch spec of service ``name``: argv, working directory, environment.

    The environment is what an embedded :class:`opsctl.agent.Agent` needs (project name,
    Redis URL and password), overlaid by the ``.env`` file's variables (the process
    environment wins where both set one), then by the service's own ``environment`` table,
    then, for a service with a Python environment, ``VIRTUAL_ENV`` and its ``bin`` first on
    ``PATH``. The spec file is 0600: the Redis password never reaches supervisord.conf.
    """
    from opsctl.agent import agent_environment
    from opsctl.venvs import service_environment_variables

    service = project.service(name)
    environment = agent_environment(project)
    environment.update({key: project.environ[key] for key in project.dotenv})
    environment.update(service.environment)
    environment.update(service_environment_variables(project, name))
    directory: Path = project.root / (service.directory or ".")
    return {
        "argv": command_argv(service),
        "directory": str(directory),
        "environment": environment,
    }


def _ini(value: str) -> str:
    """Escape a value for supervisord's config parser, which expands ``%(name)s``."""
    return value.replace("%", "%%").replace("\n", " ")
