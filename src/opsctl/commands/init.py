"""``init``: scaffold a new project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsctl.commands._common import console


def init(
    folder: Annotated[
        Path, typer.Argument(help="The project folder; created if missing.")
    ] = Path(),
    name: Annotated[
        str | None, typer.Option("--name", help="The project's name; default: the folder's.")
    ] = None,
) -> None:
    """Scaffold a project: a commented opsctl.toml, a .env.example from the declared keys
    (names only, no values), the memory bank's files, and the .gitignore lines for .env
    and .opsctl/. Never overwrites a file.
    """
    from opsctl.scaffold import init_project

    out = console()
    for path, done in init_project(folder, name=name):
        out.print(f"{done:<8} {path}", markup=False)
    out.print("Next: review opsctl.toml, then run 'opsctl verify' and 'opsctl up'.", markup=False)
