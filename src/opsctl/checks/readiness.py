"""Readiness checks derived from the config, without the user writing them.

Each belongs to a section (config, files, keys, ports, disk, backup, gpu, memory-bank) that
``verify`` groups by and that ``--only``/``--skip`` can name.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsctl import secrets
from opsctl.checks._registry import BuildContext, build_check
from opsctl.checks._result import Check, Outcome, Status
from opsctl.config import DiskCheck, Project, command_argv

if TYPE_CHECKING:
    from opsctl.keys import KeyState
    from opsctl.runtime import Runtime, Snapshot


def _check(
    section: str,
    name: str,
    target: str,
    probe: Callable[[float], Outcome],
    *,
    severity: str = "error",
) -> Check:
    return Check(
        name=name,
        kind="builtin",
        target=target,
        probe=probe,
        severity="warning" if severity == "warning" else "error",
        section=section,
        tags=("builtin", section),
    )


def _fixed(outcome: Outcome) -> Callable[[float], Outcome]:
    return lambda _timeout: outcome


def readiness_checks(
    project: Project, runtime: Runtime, snapshot: Snapshot, *, online: bool = False
) -> list[Check]:
    """Return every built-in readiness check that applies to ``project``; with ``online``,
    keys are verified live instead of by their shape alone.
    """
    checks = [_config_check(project)]
    checks += _file_checks(project, runtime, snapshot)
    checks += _online_key_checks(project) if online else _key_checks(project)
    checks += _port_checks(project, snapshot)
    checks += _docker_checks(project, runtime)
    checks += _environment_checks(project)
    checks += _disk_checks(project)
    checks += _backup_checks(project)
    checks += _gpu_checks(project)
    checks += _memory_bank_checks(project)
    return checks


def _config_check(project: Project) -> Check:
    count = len(project.services)
    detail = f"{project.config_path.name}: {count} services, runtime {project.config.runtime.kind}"
    return _check(
        "config", "config valid", str(project.config_path), _fixed(Outcome("pass", detail))
    )


def _file_checks(project: Project, runtime: Runtime, snapshot: Snapshot) -> list[Check]:
    checks = [_env_file_check(project)] if project.config.keys or project.env_file.exists() else []
    for name, service in project.services.items():
        if service.directory:
            folder = project.root / service.directory
            outcome = (
                Outcome("pass", "exists") if folder.is_dir() else Outcome("fail", "does not exist")
            )
            checks.append(_check("files", f"{name} directory", str(folder), _fixed(outcome)))
    if snapshot.supervisor_running:
        checks.append(
            _check(
                "files",
                "supervisord.conf up to date",
                str(runtime.paths.conf_file),
                _conf_probe(runtime),
                severity="warning",
            )
        )
    return checks


def _env_file_check(project: Project) -> Check:
    path = project.env_file

    def probe(_timeout: float) -> Outcome:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return Outcome("warn", "missing: declared keys must come from the process environment")
        if mode & 0o077:
            return Outcome("warn", f"mode {mode:04o} lets others read it; run chmod 600 {path}")
        return Outcome("pass", f"present, mode {mode:04o}")

    return _check("files", "env file", str(path), probe)


def _conf_probe(runtime: Runtime) -> Callable[[float], Outcome]:
    def probe(_timeout: float) -> Outcome:
        from opsctl.runtime import render_supervisord_conf

        fresh = render_supervisord_conf(
            runtime.project, runtime.paths, launcher=runtime.launcher, daemon=runtime.daemon
        )
        try:
            current = runtime.paths.conf_file.read_text()
        except OSError:
            return Outcome("warn", "missing; run 'opsctl up' to write it")
        if current != fresh:
            return Outcome("warn", "differs from the config; run 'opsctl up' to apply it")
        return Outcome("pass", "matches the config")

    return probe


def _key_checks(project: Project) -> list[Check]:
    """Each declared key set (both halves of a pair) and shaped as its provider's or its
    own ``format`` says; nothing is sent.
    """
    from opsctl.keys import key_states

    checks = []
    for state in key_states(project):
        if not state.present:
            missing = state.variable if not state.value else state.secret_variable
            outcome = (
                Outcome("fail", f"{missing} is not set")
                if state.section.required
                else Outcome("skip", f"{missing} is not set (optional)")
            )
        else:
            origin = f"({secrets.mask(state.value or '')}, from {state.source})"
            if state.format_ok is False:
                detail = f"{state.variable} {origin} is not shaped like a key of {state.provider}"
                outcome = Outcome("fail", detail)
            else:
                outcome = Outcome("pass", f"{state.variable} set {origin}")
        checks.append(_check("keys", f"key {state.name}", state.provider, _fixed(outcome)))
    return checks


def _port_checks(project: Project, snapshot: Snapshot) -> list[Check]:
    checks = []
    for name, service in project.services.items():
        if service.port is None:
            continue
        port = service.port
        try:
            words = [*command_argv(service), *service.environment.values()]
        except ValueError:
            words = []
        mentioned = any(str(port) in word for word in words)
        outcome = (
            Outcome("pass", f"{port} appears in its command or environment")
            if mentioned
            else Outcome(
                "warn",
                f"{port} is in neither its command nor its environment: it may listen elsewhere",
            )
        )
        checks.append(_check("ports", f"{name} port used", f"{name}:{port}", _fixed(outcome)))

        info = snapshot.processes.get(name)
        if info is None or info.state not in {"RUNNING", "STARTING", "BACKOFF"}:
            checks.append(
                _check("ports", f"{name} port free", f"127.0.0.1:{port}", _port_free_probe(port))
            )
    return checks


def _port_free_probe(port: int) -> Callable[[float], Outcome]:
    def probe(_timeout: float) -> Outcome:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return Outcome("fail", f"port {port} is already in use by another process")
                return Outcome("fail", f"cannot bind port {port}: {error.strerror or error}")
        return Outcome("pass", f"port {port} is free")

    return probe


def _disk_checks(project: Project) -> list[Check]:
    disk = project.config.monitoring.disk
    paths = list(disk.paths)
    if _backup_configured(project):
        paths.append(str(_existing_ancestor(Path(project.config.backup.destination))))
    context = BuildContext(section="disk", root=project.root)
    checks = []
    for path in dict.fromkeys(paths):
        spec = DiskCheck(
            kind="disk",
            path=path,
            warn_free_percent=disk.warn_free_percent,
            fail_free_percent=disk.fail_free_percent,
            tags=["builtin", "disk"],
        )
        checks.append(build_check(spec, context))
    return checks


def _backup_configured(project: Project) -> bool:
    backup = project.config.backup
    return bool(backup.paths or backup.redis)


def _backup_checks(project: Project) -> list[Check]:
    if not _backup_configured(project):
        return []
    destination = Path(project.config.backup.destination)

    def probe(_timeout: float) -> Outcome:
        existing = _existing_ancestor(destination)
        if not existing.is_dir():
            return Outcome(
                "fail", f"{existing} is a file, not a folder: nothing can be created there"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            return Outcome("fail", f"{existing} is not writable")
        if existing == destination:
            return Outcome("pass", "exists and is writable")
        return Outcome("pass", f"will be created under {existing}, which is writable")

    checks = [_check("backup", "backup destination writable", str(destination), probe)]
    if project.config.backup.backend == "archive":
        checks.append(_backup_age_check(project, destination))
    return checks


def _backup_age_check(project: Project, destination: Path) -> Check:
    """The newest complete backup is younger than ``backup.max_age_hours``. Only a warning
    when it is not (or when there is none yet): an old backup must not stop ``up``, and
    ``verify --strict`` turns it into a failure for those who want that.
    """
    max_age_hours = project.config.backup.max_age_hours

    def probe(_timeout: float) -> Outcome:
        from datetime import UTC, datetime

        from opsctl.backup import list_backups

        complete = [stored for stored in list_backups(project) if stored.problem is None]
        if not complete:
            return Outcome("warn", "no complete backup yet: run opsctl backup run")
        newest = max(complete, key=lambda stored: stored.manifest.finished_at)
        age_hours = (datetime.now(UTC) - newest.manifest.finished_at).total_seconds() / 3600
        detail = f"newest complete backup {newest.id} is {age_hours:.1f} h old"
        if age_hours > max_age_hours:
            return Outcome("warn", f"{detail}, more than backup.max_age_hours ({max_age_hours:g})")
        return Outcome("pass", detail)

    return _check("backup", "newest backup age", str(destination), probe)


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _gpu_checks(project: Project) -> list[Check]:
    """With ``gpu.require``: the driver, and each framework installed in opsctl's and the
    services' environments (installed, seeing the GPU, built for a CUDA the driver runs),
    each probed in a subprocess by ``gpu check``'s own checks.
    """
    if not project.config.gpu.require:
        return []
    from opsctl.gpu._check import gpu_checks

    return gpu_checks(project, installed_only=True)


def _memory_bank_checks(project: Project) -> list[Check]:
    section = project.config.memory_bank
    if not section.required:
        return []
    folder = project.root / section.path

    def probe(_timeout: float) -> Outcome:
        from opsctl.memory_bank import inspect_bank

        if not folder.is_dir():
            return Outcome(
                "fail", "the memory-bank folder does not exist; run 'opsctl memory-bank init'"
            )
        report = inspect_bank(project)
        missing = [f.name for f in report.files if f.expected and (not f.present or f.error)]
        if missing:
            return Outcome("fail", f"inactive: missing or unreadable {', '.join(missing)}")
        stale = [f.name for f in report.files if f.present and f.stale]
        if stale:
            return Outcome("warn", f"active, but stale: {', '.join(stale)}")
        return Outcome("pass", f"active: {len(report.files)} files ({section.profile} profile)")

    return [_check("memory-bank", "memory bank active", str(folder), probe)]


def _online_key_checks(project: Project) -> list[Check]:
    """One live verification per declared key, through the keys subsystem."""
    from opsctl.keys import key_states

    checks = []
    for state in key_states(project):

        def probe(timeout: float, state: KeyState = state) -> Outcome:
            from opsctl.clients import http_client
            from opsctl.keys._verify import judge_key, verdict_status

            with http_client() as client:
                verdict = judge_key(project, state, client, timeout_seconds=timeout)
            if verdict.status == "missing" and not state.section.required:
                return Outcome("skip", verdict.detail)
            return Outcome(verdict_status(verdict), f"{verdict.status}: {verdict.detail}")

        check = _check("keys", f"key {state.name}", state.provider, probe)
        checks.append(dataclasses.replace(check, timeout_seconds=state.section.timeout_seconds))
    return checks


def _environment_checks(project: Project) -> list[Check]:
    """Each service's own Python environment: in sync passes; missing or stale warns (up
    builds it); broken fails.
    """
    from opsctl.venvs import environment_states

    statuses: dict[str, Status] = {
        "in sync": "pass",
        "in image": "pass",
        "missing": "warn",
        "stale": "warn",
    }
    return [
        _check(
            "environments",
            f"{state.service} environment",
            str(state.path),
            _fixed(Outcome(statuses.get(state.state, "fail"), f"{state.state}: {state.detail}")),
        )
        for state in environment_states(project)
    ]


def _docker_checks(project: Project, runtime: Runtime) -> list[Check]:
    """For the docker runtime: the engine answers and the image is there."""
    if project.config.runtime.kind != "docker":
        return []
    image = project.config.container.image

    def engine(_timeout: float) -> Outcome:
        from opsctl.errors import ResourceUnavailableError
        from opsctl.runtime.docker import connect

        try:
            version = connect(project.config.runtime.host).version().get("Version", "?")
        except ResourceUnavailableError as error:
            return Outcome("fail", error.message)
        return Outcome("pass", f"Docker Engine {version} answers")

    def image_present(_timeout: float) -> Outcome:
        from opsctl.errors import ResourceUnavailableError
        from opsctl.runtime.docker import connect

        try:
            client = connect(project.config.runtime.host)
        except ResourceUnavailableError as error:
            return Outcome("fail", error.message)
        try:
            found = client.images.get(image)
        except Exception:  # the SDK's ImageNotFound, or an engine error: both mean not usable
            return Outcome("fail", f"not on this engine; build it: scripts/build-image.sh {image}")
        return Outcome("pass", f"present ({found.short_id})")

    dockerfile = project.root / project.config.container.dockerfile
    found = (
        Outcome("pass", "present")
        if dockerfile.is_file()
        else Outcome("warn", "missing: the image cannot be rebuilt from here")
    )
    return [
        _check(
            "docker", "docker engine reachable", project.config.runtime.host or "default", engine
        ),
        _check("docker", "image present", image, image_present),
        _check("docker", "Dockerfile", str(dockerfile), _fixed(found), severity="warning"),
    ]
