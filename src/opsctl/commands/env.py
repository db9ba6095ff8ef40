"""``env``: the per-service Python environments."""

from __future__ import annotations

from typing import Annotated

import typer

from opsctl.commands._common import JSON_HELP, console, load_project, plain, print_json

app = typer.Typer(
    name="env",
    help="Build and list the services' own Python environments.",
    no_args_is_help=True,
    add_completion=False,
)
_STYLES = {
    "in sync": "green",
    "in image": "green",
    "stale": "yellow",
    "missing": "yellow",
    "broken": "bold red",
}


@app.command()
def sync(
    ctx: typer.Context,
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to sync; all when none.")
    ] = None,
) -> None:
    """Build each declared environment that is missing or stale; the others are left alone.

    A failed build shows pip's error and leaves the environment in use as it was (exit 1).
    """
    from opsctl.venvs import sync_environment

    project = load_project(ctx)
    if project.config.runtime.kind == "docker":
        console().print(
            "With the docker runtime they are built with the image: scripts/build-image.sh"
        )
        return
    names = services or [name for name, service in project.services.items() if service.python]
    for name in names:
        project.service(name)
    out = console()
    for name in names:
        path, built = sync_environment(project, name)
        out.print(f"{name}: {'built' if built else 'in sync'} {path}", markup=False)


@app.command("list")
def list_(
    ctx: typer.Context, json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False
) -> None:
    """List each declared environment: service, path, and in sync, stale, missing or broken.

    Exits 1 when any is not in sync.
    """
    from rich.table import Table

    from opsctl.venvs import environment_states

    states = environment_states(load_project(ctx))
    if json:
        print_json({"environments": [{**s.__dict__, "path": str(s.path)} for s in states]})
    else:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for column in ("SERVICE", "STATE", "PATH", "DETAIL"):
            table.add_column(column)
        for state in states:
            style = _STYLES.get(state.state, "")
            table.add_row(
                state.service, f"[{style}]{state.state}[/]", str(state.path), plain(state.detail)
            )
        if table.row_count:
            console().print(table)
    raise typer.Exit(0 if all(s.state in {"in sync", "in image"} for s in states) else 1)
