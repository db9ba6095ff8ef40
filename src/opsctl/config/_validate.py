"""Checks across keys that a per-field model cannot express: dependencies, ports, binaries."""

from __future__ import annotations

import difflib
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from opsctl.config._model import Config, ServiceSection, TcpCheck

Problem = tuple[tuple[str | int, ...], str]


def check_consistency(
    config: Config, *, root: Path, environ: Mapping[str, str], lenient: bool = False
) -> list[Problem]:
    """Return every cross-key problem in ``config`` as ``(key path, problem)`` pairs
    (``lenient``: executables that are missing now are not a problem).
    """
    problems: list[Problem] = []
    dependency_problems = _check_dependencies(config)
    problems += dependency_problems
    problems += _check_ports(config)
    problems += _check_paths(config, root=root)
    for name, service in config.services.items():
        if not lenient:
            problems += _check_executable(name, service, root=root, environ=environ)
        problems += _check_health_ports(name, service)
    problems += _check_keys(config)
    if not dependency_problems:  # the stop order needs a valid dependency graph
        problems += _check_stop_timeout(config)
    if config.redis.service is not None and config.redis.service not in config.services:
        problems.append((("redis", "service"), f"names no service: '{config.redis.service}'"))
    return problems


def _check_paths(config: Config, *, root: Path) -> list[Problem]:
    """supervisord's config reads " ;" and " #" as the start of a comment, so the paths it
    is given must not contain them; and the state folder must be a folder of its own.
    """
    problems: list[Problem] = []
    state_dir = (root / config.project.state_dir).resolve()
    for key, value in (
        (("project", "root"), str(root)),
        (("project", "state_dir"), str(state_dir)),
    ):
        if " ;" in value or " #" in value:
            problems.append(
                (key, f"{value!r} contains ' ;' or ' #', which supervisord reads as a comment")
            )
    if state_dir in {root, *root.parents}:
        problems.append(
            (
                ("project", "state_dir"),
                "must be a folder of its own inside or beside the project, not the root",
            )
        )
    elif state_dir.exists() and not state_dir.is_dir():
        problems.append((("project", "state_dir"), f"{state_dir} exists and is not a folder"))
    return problems


def _check_stop_timeout(config: Config) -> list[Problem]:
    """A container stop timeout shorter than supervisord's own shutdown would get the stack
    killed mid-stop (Redis then writes no final snapshot).
    """
    configured = config.container.stop_timeout_seconds
    if configured is None or not config.services:
        return []
    from opsctl.runtime._render import required_stop_seconds

    needed = required_stop_seconds(config.services)
    if configured >= needed:
        return []
    return [
        (
            ("container", "stop_timeout_seconds"),
            f"{configured} s is shorter than the {needed} s supervisord may need to stop the "
            "services, priority group by group",
        )
    ]


def _check_keys(config: Config) -> list[Problem]:
    from opsctl.keys._providers import known_providers

    problems: list[Problem] = []
    known = known_providers()
    for name, key in config.keys.items():
        if key.provider not in known:
            close = difflib.get_close_matches(key.provider, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
            problems.append(
                (("keys", name, "provider"), f"unknown provider '{key.provider}'{hint}")
            )
        elif key.verify is not None and key.provider != "custom":
            problems.append(
                (("keys", name, "verify"), "only a 'custom' provider takes a verify table")
            )
        if key.service is not None and key.service not in config.services:
            problems.append((("keys", name, "service"), f"names no service: '{key.service}'"))
    return problems


def _check_dependencies(config: Config) -> list[Problem]:
    problems: list[Problem] = []
    for name, service in config.services.items():
        for index, dependency in enumerate(service.depends_on):
            if dependency not in config.services:
                problems.append(
                    (("services", name, "depends_on", index), f"names no service: '{dependency}'")
                )
            elif dependency == name:
                problems.append(
                    (("services", name, "depends_on", index), "a service cannot depend on itself")
                )
    if problems:
        return problems

    cycle = find_cycle({name: s.depends_on for name, s in config.services.items()})
    if cycle:
        path = " -> ".join(cycle)
        return [(("services", cycle[0], "depends_on"), f"dependency cycle: {path}")]
    return []


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """Return one cycle of ``graph`` as a closed path of names, or ``None`` if it has none."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for child in graph.get(node, []):
            cycle = visit(child)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for node in graph:
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def _check_ports(config: Config) -> list[Problem]:
    owners: dict[int, str] = {}
    problems: list[Problem] = []
    for name, service in config.services.items():
        if service.port is None:
            continue
        if service.port in owners:
            other = owners[service.port]
            problems.append(
                (
                    ("services", name, "port"),
                    f"port {service.port} is also used by service '{other}'",
                )
            )
        else:
            owners[service.port] = name
    return problems


def _check_executable(
    name: str, service: ServiceSection, *, root: Path, environ: Mapping[str, str]
) -> list[Problem]:
    try:
        argv = command_argv(service)
    except ValueError as error:
        return [(("services", name, "command"), f"cannot be split into arguments: {error}")]
    if not argv:
        return [(("services", name, "command"), "is empty")]

    executable = argv[0]
    directory = root / (service.directory or ".")
    if os.sep in executable:
        candidate = directory / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return []
        return [
            (
                ("services", name, "command"),
                f"executable '{executable}' does not exist or is not executable",
            )
        ]

    search_path = service.environment.get("PATH", environ.get("PATH", os.defpath))
    if shutil.which(executable, path=search_path) is None:
        return [(("services", name, "command"), f"executable '{executable}' was not found on PATH")]
    return []


def _check_health_ports(name: str, service: ServiceSection) -> list[Problem]:
    problems: list[Problem] = []
    for index, check in enumerate(service.health):
        if isinstance(check, TcpCheck) and check.port is None and service.port is None:
            problems.append(
                (
                    ("services", name, "health", index, "port"),
                    "needs a port: set it here or on the service",
                )
            )
    return problems


def command_argv(service: ServiceSection) -> list[str]:
    """Return the service's command as an argument list (a string is split like a shell).

    Raises :class:`ValueError` for a string with unbalanced quotes.
    """
    if isinstance(service.command, list):
        return list(service.command)
    return shlex.split(service.command)
