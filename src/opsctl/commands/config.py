"""``config show``, ``config validate`` and ``config render``."""

from __future__ import annotations

import json as json_module
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import JSON_HELP, console, load_project, print_json
from opsctl.errors import UsageError

if TYPE_CHECKING:
    from opsctl.config import Project

app = typer.Typer(
    name="config",
    help="Show, validate and render the configuration.",
    no_args_is_help=True,
    add_completion=False,
)


class RenderTarget(StrEnum):
    """What ``config render`` can write."""

    supervisord = "supervisord"
    compose = "compose"
    cron = "cron"
    systemd = "systemd"
    prometheus = "prometheus"
    alerts = "alerts"
    grafana = "grafana"


_MONITORING_TARGETS = {RenderTarget.prometheus, RenderTarget.alerts, RenderTarget.grafana}


@app.command()
def show(
    ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None:
    """Print the resolved configuration: defaults filled, placeholders expanded, secrets masked."""
    project = load_project(ctx)
    data = masked(project.config.model_dump(mode="json"))
    if json:
        print_json(
            {"config_file": str(project.config_path), "root": str(project.root), "config": data}
        )
        return
    sys.stdout.write(f"# {project.config_path}\n" + to_toml(data))


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check the configuration and exit 0 when valid, 2 (naming file, key and line) when not."""
    project = load_project(ctx)
    count = len(project.services)
    console().print(f"{project.config_path} is valid: {count} service{'s' if count != 1 else ''}.")


@app.command()
def render(
    ctx: typer.Context,
    target: Annotated[RenderTarget, typer.Argument(help="What to render.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Render a generated artefact from the configuration: supervisord.conf as opsctl uses
    it, the equivalent compose file, or the scheduled jobs for cron or systemd (with -o, a
    folder for the systemd units); for monitoring, the Prometheus scrape config
    (prometheus), its alerting rules (alerts) or a Grafana dashboard (grafana).
    """
    from opsctl._files import write_atomic

    project = load_project(ctx)
    if target is RenderTarget.systemd:
        _write_units(project, output)
        return
    text = _render_text(project, target)
    if output is None:
        sys.stdout.write(text + "\n")
    elif output.is_dir():
        message = f"{output} is a folder; give the file to write."
        raise UsageError(message)
    else:
        write_atomic(output, text + "\n", mode=0o644)


def _render_text(project: Project, target: RenderTarget) -> str:
    from opsctl.runtime import get_runtime, render_supervisord_conf

    if target in _MONITORING_TARGETS:
        from opsctl.metrics._render import render_alerts, render_grafana, render_prometheus

        renderers = {
            RenderTarget.prometheus: render_prometheus,
            RenderTarget.alerts: render_alerts,
            RenderTarget.grafana: render_grafana,
        }
        return renderers[target](project).rstrip("\n")
    if target is RenderTarget.compose:
        from opsctl.runtime import Stack
        from opsctl.runtime._compose import render_compose
        from opsctl.runtime.docker import DockerRuntime

        docker_runtime = DockerRuntime(project)
        Stack(docker_runtime).write_state()
        return render_compose(docker_runtime).rstrip("\n")
    if target is RenderTarget.cron:
        from opsctl.schedules import render_cron

        return render_cron(project).rstrip("\n")
    runtime = get_runtime(project)
    return render_supervisord_conf(
        project, runtime.paths, launcher=runtime.launcher, daemon=runtime.daemon
    )


def _write_units(project: Project, output: Path | None) -> None:
    """Write the systemd units into the folder ``output``, or print them with headers."""
    from opsctl._files import write_atomic
    from opsctl.schedules import render_systemd

    units = render_systemd(project)
    if output is None:
        sys.stdout.write("".join(f"# --- {name}\n{text}\n" for name, text in units.items()))
        return
    if output.exists() and not output.is_dir():
        message = f"{output} is not a folder; systemd units are written into a folder."
        raise UsageError(message)
    for name, text in units.items():
        write_atomic(output / name, text, mode=0o644)
        console().print(f"wrote {output / name}", markup=False)


def masked(value: Any, key: str = "") -> Any:
    """Return ``value`` with secrets masked: values under secret-sounding keys, URL passwords."""
    from opsctl import secrets

    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(item, key) for item in value]
    if isinstance(value, str):
        if key and secrets.is_secret_name(key) and not key.endswith("_env"):
            return secrets.mask(value)
        return secrets.scrub(secrets.mask_url(value))
    return value


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Write a plain dict as TOML: scalars first, then sub-tables and arrays of tables."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        is_table_array = isinstance(value, list) and bool(value)
        is_table_array = is_table_array and all(isinstance(item, dict) for item in value)
        if isinstance(value, dict) or is_table_array:
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_key(key)} = {json_module.dumps(value, ensure_ascii=False)}")
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        path = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, dict):
            text += f"\n[{path}]\n" + to_toml(value, path)
        else:
            for item in value:
                text += f"\n[[{path}]]\n" + to_toml(item, path)
    return text


def _key(key: str) -> str:
    return (
        key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json_module.dumps(key, ensure_ascii=False)
    )
