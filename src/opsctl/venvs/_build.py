"""Build, check and use the virtual environment a service declares in ``[services.NAME.python]``.

An environment is built from a requirements file or a project path, for a Python version.
It is built in a folder named after the hash of what it is built from, and a symlink
``.opsctl/venvs/NAME`` is switched to it only once the build succeeded: a failed build
leaves the environment in use untouched, and nothing half-built is ever used. uv builds it
when it is installed, else venv and pip.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from opsctl.config import Project
from opsctl.config._model import PythonEnvSection
from opsctl.errors import BusyError, ConfigError, OperationFailedError

logger = logging.getLogger(__name__)

_SCHEMA = "1"
_PIP_ERROR_LINES = 15
_PROJECT_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "requirements.txt")


@dataclass(frozen=True)
class EnvironmentState:
    """One service's environment: where it is and whether it matches its declaration."""

    service: str
    path: Path
    state: str  # "in sync", "stale", "missing" or "broken"
    detail: str


def venvs_folder(project: Project) -> Path:
    """Where the environments live."""
    return project.state_dir / "venvs"


def environment_for(project: Project, service: str) -> Path | None:
    """The environment a service runs with (the symlink's target), or ``None``."""
    link = venvs_folder(project) / service
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def declared_hash(project: Project, service: str) -> str:
    """A hash of everything the environment is built from: Python, requirements, project."""
    spec = _spec(project, service)
    digest = hashlib.sha256(f"{_SCHEMA}\0{_python(spec)}\0".encode())
    for path in _inputs(project, spec):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def environment_states(project: Project) -> list[EnvironmentState]:
    """The state of every declared environment (with the docker runtime, they are built
    into the image and not checked here).
    """
    states = []
    for name, service in project.services.items():
        if service.python is None:
            continue
        if project.config.runtime.kind == "docker":
            states.append(
                EnvironmentState(name, IMAGE_VENVS / name, "in image", "built with the image")
            )
            continue
        link = venvs_folder(project) / name
        try:
            wanted = declared_hash(project, name)
        except ConfigError as error:
            states.append(EnvironmentState(name, link, "broken", error.message))
            continue
        current = environment_for(project, name)
        if current is None:
            states.append(
                EnvironmentState(name, link, "missing", "not built yet; run 'opsctl env sync'")
            )
        elif not (current / "bin" / "python").exists():
            states.append(
                EnvironmentState(
                    name, current, "broken", "its python is missing; run 'opsctl env sync'"
                )
            )
        elif current.name.rpartition("-")[2] != wanted:
            states.append(
                EnvironmentState(
                    name, current, "stale", "built from another declaration; run 'opsctl env sync'"
                )
            )
        else:
            states.append(EnvironmentState(name, current, "in sync", f"built from {wanted}"))
    return states


def sync_environment(project: Project, service: str) -> tuple[Path, bool]:
    """Build the service's environment if it is missing or stale; return it, and whether it
    was built now. Raises :class:`OperationFailedError` with pip's own error when the build
    fails; the environment in use, if any, is left as it was.
    """
    spec = _spec(project, service)
    wanted = declared_hash(project, service)
    folder = venvs_folder(project)
    target = folder / f"{service}-{wanted}"
    link = folder / service
    if (
        environment_for(project, service) == target.resolve()
        and (target / "bin" / "python").exists()
    ):
        return target, False

    project.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    with (folder / f".{service}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"Another opsctl is building the environment of '{service}'."
            raise BusyError(message, hint="Wait for it to finish, then try again.") from None
        shutil.rmtree(target, ignore_errors=True)
        logger.info("Building the environment of %s in %s", service, target)
        try:
            _build(project, spec, target)
        except OperationFailedError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        _switch(link, target)
    built = re.compile(rf"{re.escape(service)}-[0-9a-f]{{16}}")
    for old in folder.iterdir():
        if old != target and built.fullmatch(old.name) and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target, True


IMAGE_VENVS = Path("/opt/venvs")
"""Where the unified image holds the services' environments, built with the image."""


def service_environment_variables(project: Project, service: str) -> dict[str, str]:
    """``VIRTUAL_ENV`` and ``PATH`` for a service that declares an environment, else nothing.

    With the local runtime the path is the symlink's, so a rebuilt environment is picked
    up at the next start; with the docker runtime it is the one built into the image.
    """
    if project.services[service].python is None:
        return {}
    docker = project.config.runtime.kind == "docker"
    venv = IMAGE_VENVS / service if docker else venvs_folder(project) / service
    path = project.services[service].environment.get("PATH", os.environ.get("PATH", os.defpath))
    return {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{path}"}


def image_requirements(project: Project) -> dict[str, Path]:
    """The requirements file of each service whose environment the image builds."""
    found = {}
    for name, service in project.services.items():
        if service.python is not None:
            if not service.python.requirements:
                message = (
                    f"Service '{name}': the image builds environments from requirements files only."
                )
                raise ConfigError(message)
            found[name] = project.root / service.python.requirements
    return found


def _spec(project: Project, service: str) -> PythonEnvSection:
    spec = project.service(service).python
    if spec is None:
        message = (
            f"Service '{service}' declares no Python environment ([services.{service}.python])."
        )
        raise ConfigError(message)
    return spec


def _python(spec: PythonEnvSection) -> str:
    if spec.python is None:
        return sys.executable
    found = shutil.which(f"python{spec.python}") or shutil.which(spec.python)
    if found is None:
        message = f"Python {spec.python} is not installed here (no python{spec.python} on PATH)."
        raise ConfigError(message, hint="Install it, or change python in the service's table.")
    return found


def _inputs(project: Project, spec: PythonEnvSection) -> list[Path]:
    paths: list[Path] = []
    if spec.requirements:
        requirements = project.root / spec.requirements
        if not requirements.is_file():
            message = f"The requirements file {requirements} does not exist."
            raise ConfigError(message)
        paths.append(requirements)
    if spec.project:
        folder = project.root / spec.project
        found = [folder / name for name in _PROJECT_FILES if (folder / name).is_file()]
        if not found:
            message = (
                f"{folder} has none of {', '.join(_PROJECT_FILES)}: it is not a Python project."
            )
            raise ConfigError(message)
        paths += found
    if not paths:
        message = "A Python environment needs requirements or project."
        raise ConfigError(message)
    return paths


def _build(project: Project, spec: PythonEnvSection, target: Path) -> None:
    python = _python(spec)
    uv = shutil.which("uv")
    installs: list[str] = []
    if spec.requirements:
        installs += ["-r", str(project.root / spec.requirements)]
    if spec.project:
        installs.append(str(project.root / spec.project))
    if uv:
        _run([uv, "venv", "--quiet", "--python", python, str(target)], project)
        _run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(target / "bin" / "python"),
                *installs,
            ],
            project,
        )
    else:
        _run([python, "-m", "venv", str(target)], project)
        pip = [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        _run([*pip, *installs], project)


def _run(argv: list[str], project: Project) -> None:
    logger.debug("Running %s", " ".join(argv))
    result = subprocess.run(argv, cwd=project.root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = "\n".join((result.stderr or result.stdout).strip().splitlines()[-_PIP_ERROR_LINES:])
        tool = Path(argv[0]).name
        message = f"Building the environment failed ({tool} exited {result.returncode}):\n{said}"
        raise OperationFailedError(
            message, hint="The environment in use, if any, was left as it was."
        )


def _switch(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` in one rename, so readers never see it missing."""
    temporary = link.with_name(f".{link.name}.new")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target.name)
    os.replace(temporary, link)
