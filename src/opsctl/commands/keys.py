"""``keys``: status, verification, guided setup and safe editing of API keys."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsctl.commands._common import (
    JSON_HELP,
    console,
    error_console,
    load_project,
    plain,
    print_json,
    quiet,
)

if TYPE_CHECKING:
    from opsctl.config import Project
    from opsctl.keys import KeyResult, KeyState

app = typer.Typer(
    name="keys",
    help="Set up, check and verify the API keys the stack uses.",
    no_args_is_help=True,
    add_completion=False,
)

JsonOption = Annotated[bool, typer.Option("--json", help=JSON_HELP)]
_STYLES = {
    "valid": "green",
    "rate-limited": "yellow",
    "skipped": "dim",
    "missing": "bold red",
    "bad-format": "bold red",
    "invalid": "bold red",
    "forbidden": "bold red",
    "unreachable": "red",
}
_ATTEMPTS = 3


@app.command()
def status(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show each declared key: provider, variable, source, masked value, format, last check.

    Sends no request. Exits 1 when a required key is missing or malformed.
    """
    from opsctl.keys import key_states, last_verification

    project = load_project(ctx)
    rows = [_status_row(state, last_verification(project, state)) for state in key_states(project)]
    if json:
        print_json({"keys": rows})
    else:
        _render_status(rows, problems_only=quiet(ctx))
    failing = [
        row for row in rows if row["required"] and (not row["present"] or row["format_ok"] is False)
    ]
    raise typer.Exit(1 if failing else 0)


@app.command()
def verify(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None, typer.Argument(help="Keys to verify; all when none.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Verify keys live, concurrently: one cheap read-only request per key, each with a timeout.

    Each key ends valid, invalid, forbidden (valid but lacking scope), rate-limited,
    unreachable, bad-format (no request sent), missing or skipped. Exits 0 when every
    required key is valid, 3 when the only problem is rate limiting, else 1.
    """
    from opsctl.keys import key_states, verify_keys

    project = load_project(ctx)
    states = _select(project, key_states(project), names or [])
    results = verify_keys(project, states)
    if json:
        print_json({"keys": [result.to_dict() for result in results]})
    else:
        _render_results(results, problems_only=quiet(ctx))
    raise typer.Exit(_verify_exit_code(states, results))


@app.command()
def setup(
    ctx: typer.Context,
    all_keys: Annotated[
        bool, typer.Option("--all", help="Go through every key, not only missing or failing ones.")
    ] = False,
    check: Annotated[
        bool | None,
        typer.Option("--verify/--no-verify", help="Verify each new key live (default: ask)."),
    ] = None,
) -> None:
    """Guided set-up of missing or malformed keys, writing them to the .env file.

    For each key: what it is for and where to get one, the current value masked (Enter
    keeps it), a hidden prompt, a format check that asks again, an optional live check.
    Needs a terminal; scripts use `opsctl keys set NAME --stdin`.
    """
    from opsctl.keys import key_states

    if not sys.stdin.isatty():
        from opsctl.errors import UsageError

        message = "keys setup asks for keys at a terminal, and standard input is not one."
        raise UsageError(message, hint="In scripts and CI use: opsctl keys set NAME --stdin")
    project = load_project(ctx)
    todo = [s for s in key_states(project) if all_keys or not s.present or s.format_ok is False]
    out = error_console()
    if not todo:
        out.print("Every declared key is set and well-formed. Use --all to go through them anyway.")
        return
    for state in todo:
        _set_up_one(project, state, check=check)
    out.print(f"Done. Keys are in {project.env_file}.")


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The declared key, or any variable name.")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the value from standard input (for scripts).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Store a value that fails the format check.")
    ] = False,
) -> None:
    """Store a key in the .env file, atomically, at mode 0600. The value is never echoed."""
    from opsctl.errors import UsageError

    project = load_project(ctx)
    variable, state = _variable(project, name)
    if stdin:
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif sys.stdin.isatty():
        value = typer.prompt(f"{variable}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        message = "No value: standard input is not a terminal and --stdin was not given."
        raise UsageError(message, hint=f'echo "$VALUE" | opsctl keys set {name} --stdin')
    if not value:
        message = (
            f"An empty value was given for {variable}; use 'opsctl keys unset {name}' to remove it."
        )
        raise UsageError(message)
    if state is not None and not force and _format_problem(state, variable, value):
        message = f"{variable} is not shaped like a key of {state.provider}; nothing was written."
        raise UsageError(message, hint="Check the value, or pass --force to store it anyway.")
    _store(project, variable, value)


@app.command()
def unset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The declared key, or any variable name.")],
) -> None:
    """Remove a key from the .env file; every other line is kept as it was."""
    from opsctl.keys import unset_key

    project = load_project(ctx)
    variable, _ = _variable(project, name)
    result = unset_key(project.env_file, variable)
    said = (
        f"removed {variable} from {result.path}"
        if result.replaced
        else f"{variable} was not in {result.path}"
    )
    error_console().print(said, markup=False)


def _variable(project: Project, name: str) -> tuple[str, KeyState | None]:
    from opsctl.keys import key_states

    for state in key_states(project):
        if name in {state.name, state.variable}:
            return state.variable, state
        if state.secret_variable and name == state.secret_variable:
            return state.secret_variable, state
    return name, None


def _format_problem(state: KeyState, variable: str, value: str) -> bool:
    """True when ``value`` is not shaped like the half of ``state`` that ``variable`` holds."""
    from dataclasses import replace

    if variable == state.secret_variable:
        return replace(state, value=None, secret_value=value).format_ok is False
    return replace(state, value=value, secret_value=None).format_ok is False


def _store(project: Project, variable: str, value: str) -> None:
    import os

    from opsctl import secrets
    from opsctl.keys import set_key

    secrets.register(value)
    result = set_key(project.env_file, variable, value)
    out = error_console()
    verb = "updated" if result.replaced else "added"
    out.print(f"{verb} {variable} in {result.path} (mode 0600)", markup=False)
    if result.fixed_mode is not None:
        out.print(
            f"fixed the file's mode: it was {result.fixed_mode:04o}, readable by others",
            markup=False,
        )
    if os.environ.get(variable):
        out.print(
            f"note: {variable} is also set in this shell's environment, which takes precedence",
            markup=False,
        )


def _set_up_one(project: Project, state: KeyState, *, check: bool | None) -> None:
    from dataclasses import replace

    from opsctl import secrets
    from opsctl.keys import PROVIDERS, verify_one

    out = error_console()
    provider = PROVIDERS.get(state.provider)
    title = provider.title if provider else state.provider
    out.print(
        f"\n[bold]{state.name}[/] ({title}, {'required' if state.section.required else 'optional'})"
    )
    if state.section.description:
        out.print(f"  for: {state.section.description}", markup=False)
    where = state.section.url or (provider.where if provider else None)
    if where:
        out.print(f"  get one at: {where}", markup=False)
    if state.value:
        out.print(
            f"  current value: {secrets.mask(state.value)} (from {state.source})", markup=False
        )

    new_value = _ask(state, state.variable, state.value)
    new_secret = None
    if state.secret_variable and (new_value is not None or not state.secret_value):
        new_secret = _ask(state, state.secret_variable, state.secret_value)
    if new_value is None and new_secret is None:
        out.print("  left as it was", markup=False)
        return
    value = new_value or state.value
    secret = new_secret or state.secret_value
    candidate = replace(state, value=value, secret_value=secret, source=".env")
    if check if check is not None else typer.confirm("  Verify it now?", default=True, err=True):
        result = verify_one(project, candidate)
        out.print(
            f"  verification: [{_STYLES.get(result.status, '')}]{result.status}[/]: "
            + plain(result.detail)
        )
        if result.status in {"invalid", "forbidden"} and not typer.confirm(
            "  Save it anyway?", default=False, err=True
        ):
            return
    if value and value != state.value:
        _store(project, state.variable, value)
    if state.secret_variable and secret and secret != state.secret_value:
        _store(project, state.secret_variable, secret)


def _ask(state: KeyState, variable: str, current: str | None) -> str | None:
    """Prompt (hidden) until the value is well-formed; ``None`` keeps the current value."""
    out = error_console()
    hint = (
        " (Enter keeps the current one)"
        if current
        else (" (Enter skips)" if not state.section.required else "")
    )
    for _ in range(_ATTEMPTS):
        value: str = typer.prompt(
            f"  {variable}{hint}", hide_input=True, default="", show_default=False, err=True
        )
        if not value:
            if current or not state.section.required:
                return None
            out.print("  a value is required", markup=False)
            continue
        if _format_problem(state, variable, value):
            out.print(
                f"  that is not shaped like a key of {state.provider}; try again", markup=False
            )
            continue
        return value
    out.print("  too many attempts; left as it was", markup=False)
    return None


def _select(project: Project, states: list[KeyState], names: list[str]) -> list[KeyState]:
    from opsctl.errors import UsageError

    if not names:
        return states
    known = {state.name: state for state in states} | {state.variable: state for state in states}
    unknown = [name for name in names if name not in known]
    if unknown:
        message = (
            f"No declared key named {', '.join(repr(n) for n in unknown)} in {project.config_path}."
        )
        raise UsageError(message, hint=f"Declared: {', '.join(s.name for s in states) or 'none'}.")
    return list({id(known[name]): known[name] for name in names}.values())


def _verify_exit_code(states: list[KeyState], results: list[KeyResult]) -> int:
    required = {state.name for state in states if state.section.required}
    problems = {
        r.status
        for r in results
        if r.status not in {"valid", "skipped"} and (r.name in required or r.status != "missing")
    }
    if not problems:
        return 0
    return 3 if problems == {"rate-limited"} else 1


def _status_row(state: KeyState, last: dict[str, Any] | None) -> dict[str, Any]:
    from opsctl import secrets

    return {
        "name": state.name,
        "provider": state.provider,
        "variable": state.variable,
        "required": state.section.required,
        "present": state.present,
        "source": state.source,
        "value": secrets.mask(state.value) if state.value else None,
        "format_ok": state.format_ok,
        "last_verification": {k: last[k] for k in ("status", "detail", "checked_at")}
        if last
        else None,
    }


def _render_status(rows: list[dict[str, Any]], *, problems_only: bool) -> None:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("KEY", "PROVIDER", "VARIABLE", "SOURCE", "VALUE", "FORMAT", "LAST CHECK"):
        table.add_column(column)
    for row in rows:
        fmt = {True: "[green]ok[/]", False: "[bold red]bad[/]", None: "-"}[row["format_ok"]]
        problem = not row["present"] or row["format_ok"] is False
        if problems_only and not problem:
            continue
        last = row["last_verification"]
        last_text = (
            f"[{_STYLES.get(last['status'], '')}]{last['status']}[/] {last['checked_at']}"
            if last
            else "-"
        )
        missing = "[bold red]missing[/]" if row["required"] else "[dim]not set[/]"
        table.add_row(
            row["name"],
            row["provider"],
            row["variable"],
            row["source"] or "-",
            row["value"] or missing,
            fmt,
            last_text,
        )
    if table.row_count:
        console().print(table)


def _render_results(results: list[KeyResult], *, problems_only: bool) -> None:
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("KEY", "PROVIDER", "RESULT", "DETAIL", "MS"):
        table.add_column(column, justify="right" if column == "MS" else "left")
    for result in results:
        if problems_only and result.status in {"valid", "skipped"}:
            continue
        style = _STYLES.get(result.status, "")
        table.add_row(
            result.name,
            result.provider,
            f"[{style}]{result.status}[/]",
            plain(result.detail),
            str(result.duration_ms),
        )
    if table.row_count:
        console().print(table)
