"""Scaffold a project: a commented opsctl.toml, .env.example, a memory bank, .gitignore lines."""

from __future__ import annotations

import re
from pathlib import Path

from opsctl._files import write_atomic
from opsctl.config import Project, load_project
from opsctl.errors import UsageError
from opsctl.keys._state import secret_variable

_GITIGNORE_LINES = (".env", ".opsctl/")

_TEMPLATE = """\
# opsctl.toml: the stack, described once. Every key is explained in docs/config.md of
# opsctl; placeholders: {{port}}, {{services.NAME.port}}, {{project.root}}, ${{VAR}},
# ${{VAR:-default}}. Any key can be overridden with OPSCTL_SECTION__KEY variables.

[project]
name = "{name}"
# env_file = ".env"
# state_dir = ".opsctl"

[runtime]
kind = "local"              # or "docker": one container with supervisord inside
up_timeout_seconds = 60

# [container]               # for kind = "docker"
# image = "opsctl-unified:latest"
# gpus = "all"

[services.redis]
command = "redis-server --port {{port}} --bind 127.0.0.1 --dir {{project.state_dir}}"
port = {redis_port}
stop_timeout_seconds = 15

[[services.redis.health]]
kind = "redis"

# [services.api]
# command = "python -m myapp.api --port {{port}}"
# port = 8000
# depends_on = ["redis"]
# environment = {{ REDIS_URL = "redis://127.0.0.1:{{services.redis.port}}/0" }}
# python = {{ requirements = "requirements.txt" }}     # its own virtual environment
#
# [[services.api.health]]
# kind = "http"
# url = "http://127.0.0.1:{{port}}/health"

# [keys.OPENAI_API_KEY]
# provider = "openai"
# description = "What the stack uses it for"

# [[verify.checks]]
# name = "model weights present"
# kind = "file"
# path = "models/model.bin"

[memory_bank]
profile = "roo"             # or "cline", or "custom" with files = [...]
"""


def init_project(folder: Path, *, name: str | None = None) -> list[tuple[Path, str]]:
    """Create what a new project needs in ``folder``; never overwrite a file.

    Returns ``(path, what was done)`` for each file: created, kept, or lines added.
    """
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}", name):
        message = f"'{name}' is not a project name: letters, digits, spaces, '_', '.', '-'."
        raise UsageError(message)
    folder.mkdir(parents=True, exist_ok=True)
    for file_name in ("opsctl.toml", ".env.example", ".gitignore"):
        if (folder / file_name).exists() and not (folder / file_name).is_file():
            message = f"{folder / file_name} exists and is not a file; nothing was written."
            raise UsageError(message)
    results: list[tuple[Path, str]] = []
    config = folder / "opsctl.toml"
    if config.exists():
        results.append((config, "kept"))
    else:
        project_name = name or re.sub(r"[^A-Za-z0-9_.-]", "-", folder.resolve().name) or "stack"
        write_atomic(config, _TEMPLATE.format(name=project_name, redis_port=6390), mode=0o644)
        results.append((config, "created"))

    project = load_project(config.resolve(), cwd=folder.resolve(), environ={}, lenient=True)
    results.append(_env_example(project.root, project))
    results += _memory_bank(project)
    results.append(_gitignore(project.root))
    return results


def _env_example(root: Path, project: Project) -> tuple[Path, str]:
    path = root / ".env.example"
    if path.exists():
        return path, "kept"
    lines = ["# Copy to .env and fill in; `opsctl keys setup` does it for you.", ""]
    for key_name, key in project.config.keys.items():
        lines.append(
            f"# {key.description or key.provider}" + ("" if key.required else " (optional)")
        )
        lines.append(f"{key.env or key_name}=")
        secret = secret_variable(key)
        if secret:
            lines.append(f"{secret}=")
    write_atomic(path, "\n".join(lines) + "\n", mode=0o644)
    return path, "created"


def _memory_bank(project: Project) -> list[tuple[Path, str]]:
    from opsctl.memory_bank import bank_folder, init_bank

    folder = bank_folder(project)
    return [
        (folder / name, "created" if created else "kept") for name, created in init_bank(project)
    ]


def _gitignore(root: Path) -> tuple[Path, str]:
    path = root / ".gitignore"
    if path.exists() and not path.is_file():
        message = f"{path} exists and is not a file; nothing was added to it."
        raise UsageError(message)
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    present = {line.strip() for line in current.splitlines()}
    missing = [
        line for line in _GITIGNORE_LINES if line not in present and line.rstrip("/") not in present
    ]
    if not missing:
        return path, "kept"
    joiner = "" if not current or current.endswith("\n") else "\n"
    write_atomic(path, current + joiner + "\n".join(missing) + "\n", mode=0o644)
    return path, f"added {', '.join(missing)}"
