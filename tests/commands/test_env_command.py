"""`env sync`, `env list`, the environments section of `verify`, and `up` building them first."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime import conftest as runtime_fixtures
from tests.runtime.conftest import StackProject
from tests.support import CliResult, run_cli, wait_for
from tests.venvs._wheels import (
    MISSING_PACKAGE,
    SERVICE,
    env_folders,
    env_project,
    imported_version,
    link_of,
    python_stamp,
    requirements_for,
    unresolvable_requirements,
    write_wheel,
)

make_stack = runtime_fixtures.make_stack
MakeStack = Callable[..., StackProject]
PRINT_VERSION = "import hello, time; print(hello.VERSION, flush=True); time.sleep(1000)"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 1.0 and 2.0 of the local package, as wheel files."""
    folder = tmp_path_factory.mktemp("wheels")
    return {version: write_wheel(folder, version) for version in ("1.0", "2.0")}


@dataclass(frozen=True)
class Synced:
    """A project after one `env sync`, and what that command printed."""

    root: Path
    config: Path
    first: CliResult

    def cli(self, *args: str) -> CliResult:
        return run_cli("-c", str(self.config), *args)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Synced:
    """One project synced through the CLI from the 1.0 wheel, shared by read-only tests."""
    root = tmp_path_factory.mktemp("synced")
    config = env_project(root, requirements_for(wheels["1.0"]))
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OPSCTL_"):
                patch.delenv(name)
        patch.setenv("NO_COLOR", "1")
        patch.setenv("COLUMNS", "200")
        first = run_cli("-c", str(config), "env", "sync")
    return Synced(root=root, config=config, first=first)


def cli(config: Path, *args: str) -> CliResult:
    return run_cli("-c", str(config), *args)


def listed(config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """`env list --json`: its exit code and the environments by service."""
    result = cli(config, "env", "list", "--json")
    rows = json.loads(result.stdout)["environments"]
    return result.exit_code, {row["service"]: row for row in rows}


def environment_check(config: Path, service: str = SERVICE) -> tuple[int, dict[str, Any]]:
    """`verify --json`: its exit code and the check of ``service``'s environment."""
    result = cli(config, "verify", "--json")
    report = json.loads(result.stdout)
    (check,) = [c for c in report["checks"] if c["name"] == f"{service} environment"]
    return result.exit_code, check


# Before anything is built


def test_env_list_before_any_sync_says_missing_and_exits_1(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """An environment never built is listed as missing, in the table and in JSON; exit 1."""
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))

    table = cli(config, "env", "list")
    assert table.exit_code == 1
    assert SERVICE in table.stdout
    assert "missing" in table.stdout
    code, rows = listed(config)
    assert code == 1
    assert rows[SERVICE]["state"] == "missing"
    assert rows[SERVICE]["path"] == str(link_of(tmp_path))


def test_verify_warns_on_a_missing_environment_without_failing(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """verify reports a not-yet-built environment as a warning in section environments."""
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))
    code, check = environment_check(config)
    assert check["section"] == "environments"
    assert check["status"] == "warn"
    assert "missing" in check["detail"]
    assert code == 0


# One sync, read by several tests


def test_env_sync_builds_and_prints_built_with_the_folder(synced: Synced) -> None:
    """The first `env sync` exits 0 and prints 'built' with the environment's folder."""
    assert synced.first.exit_code == 0, synced.first.output
    (folder,) = env_folders(synced.root)
    assert f"{SERVICE}: built {folder}" in synced.first.stdout
    assert imported_version(link_of(synced.root)) == "1.0"


def test_env_list_after_sync_says_in_sync_and_exits_0(synced: Synced) -> None:
    """After a sync `env list` shows the service in sync with its folder; exit 0."""
    table = synced.cli("env", "list")
    assert table.exit_code == 0, table.output
    assert "in sync" in table.stdout
    code, rows = listed(synced.config)
    assert code == 0
    (folder,) = env_folders(synced.root)
    assert rows[SERVICE]["state"] == "in sync"
    assert rows[SERVICE]["path"] == str(folder)


def test_env_sync_of_an_unchanged_declaration_does_not_rebuild(synced: Synced) -> None:
    """A second `env sync` prints 'in sync' and leaves the same folder and python untouched."""
    target = os.readlink(link_of(synced.root))
    (folder,) = env_folders(synced.root)
    before = python_stamp(folder)

    again = synced.cli("env", "sync")
    assert again.exit_code == 0, again.output
    assert f"{SERVICE}: in sync" in again.stdout
    assert "built" not in again.stdout
    assert os.readlink(link_of(synced.root)) == target
    assert python_stamp(folder) == before


def test_verify_passes_the_environment_check_when_in_sync(synced: Synced) -> None:
    """verify reports an in-sync environment as passing in section environments."""
    _, check = environment_check(synced.config)
    assert check["section"] == "environments"
    assert check["status"] == "pass"
    assert check["detail"].startswith("in sync")


# Changes and failures


def test_changed_requirements_are_listed_stale_until_env_sync_rebuilds(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """Requirements changed from the 1.0 to the 2.0 wheel: list says stale (exit 1) and verify
    warns; `env sync` builds a new folder, removes the old one, and all is in sync again.
    """
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))
    assert cli(config, "env", "sync").exit_code == 0
    (old,) = env_folders(tmp_path)
    (tmp_path / "requirements.txt").write_text(requirements_for(wheels["2.0"]))

    table = cli(config, "env", "list")
    assert table.exit_code == 1
    assert "stale" in table.stdout
    code, rows = listed(config)
    assert code == 1
    assert rows[SERVICE]["state"] == "stale"
    _, check = environment_check(config)
    assert check["status"] == "warn"
    assert "stale" in check["detail"]

    rebuilt = cli(config, "env", "sync")
    assert rebuilt.exit_code == 0, rebuilt.output
    (new,) = env_folders(tmp_path)
    assert new != old
    assert not old.exists()
    assert f"{SERVICE}: built {new}" in rebuilt.stdout
    assert imported_version(link_of(tmp_path)) == "2.0"
    code, rows = listed(config)
    assert code == 0
    assert rows[SERVICE]["state"] == "in sync"
    assert environment_check(config)[1]["status"] == "pass"


def test_failed_env_sync_exits_1_with_pips_error_and_keeps_the_working_environment(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """A requirement pip cannot find: exit 1 with pip's 'No matching distribution' line; the
    link is unchanged, its python still imports 1.0, and no new folder is left behind.
    """
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))
    assert cli(config, "env", "sync").exit_code == 0
    target = os.readlink(link_of(tmp_path))
    folders = env_folders(tmp_path)
    (tmp_path / "requirements.txt").write_text(unresolvable_requirements())

    failed = cli(config, "env", "sync")
    assert failed.exit_code == 1
    assert "No matching distribution" in failed.output
    assert MISSING_PACKAGE in failed.output
    assert os.readlink(link_of(tmp_path)) == target
    assert imported_version(link_of(tmp_path)) == "1.0"
    assert env_folders(tmp_path) == folders


def test_missing_requirements_file_exits_2_and_is_listed_broken(tmp_path: Path) -> None:
    """No requirements file: `env sync` exits 2 naming it, `env list` says broken (exit 1),
    and verify fails the environment check.
    """
    config = env_project(tmp_path, "")
    (tmp_path / "requirements.txt").unlink()

    result = cli(config, "env", "sync")
    assert result.exit_code == 2
    assert "requirements.txt does not exist" in result.output
    assert not (tmp_path / ".opsctl" / "venvs").exists()
    code, rows = listed(config)
    assert code == 1
    assert rows[SERVICE]["state"] == "broken"
    verify_code, check = environment_check(config)
    assert check["status"] == "fail"
    assert verify_code == 1


def test_env_sync_of_unknown_or_undeclared_service_exits_2(tmp_path: Path) -> None:
    """Naming a service that does not exist, or one without a python table, exits 2."""
    config = env_project(tmp_path, "--no-index\n")
    text = config.read_text() + '\n[services.plain]\ncommand = ["sleep", "100"]\n'
    config.write_text(text)

    unknown = cli(config, "env", "sync", "nosuch")
    assert unknown.exit_code == 2
    assert "nosuch" in unknown.output
    undeclared = cli(config, "env", "sync", "plain")
    assert undeclared.exit_code == 2
    assert "declares no Python environment" in undeclared.output
    assert not (tmp_path / ".opsctl" / "venvs").exists()


def test_env_sync_of_one_named_service_builds_only_that_one(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """`env sync first` builds the first service's environment and leaves the other missing."""
    config = env_project(tmp_path, requirements_for(wheels["1.0"]), services=("first", "second"))
    result = cli(config, "env", "sync", "first")
    assert result.exit_code == 0, result.output
    assert "second" not in result.stdout
    code, rows = listed(config)
    assert code == 1
    assert rows["first"]["state"] == "in sync"
    assert rows["second"]["state"] == "missing"


# up


def test_up_builds_the_environment_and_runs_the_service_with_it(
    make_stack: MakeStack, wheels: dict[str, Path]
) -> None:
    """`up` builds the missing environment first; the service's `python` is the environment's
    (it imports the package, its log shows the version) and it has VIRTUAL_ENV set.
    """
    stack = make_stack(
        f"""
        [services.app]
        command = ["python", "-c", "{PRINT_VERSION}"]
        python = {{ requirements = "requirements.txt" }}
        """
    )
    (stack.root / "requirements.txt").write_text(requirements_for(wheels["1.0"]))

    up = stack.cli("up")
    assert up.exit_code == 0, up.output
    wait_for(
        lambda: "1.0" in stack.cli("logs", "app").stdout.splitlines(),
        timeout_seconds=15,
        message="the service to print the package version",
    )
    link = link_of(stack.root)
    environ = Path(f"/proc/{stack.pid('app')}/environ").read_bytes().split(b"\0")
    assert f"VIRTUAL_ENV={link}".encode() in environ
    path = next(entry for entry in environ if entry.startswith(b"PATH="))
    assert path.startswith(f"PATH={link / 'bin'}{os.pathsep}".encode())
    assert listed(stack.config)[1][SERVICE]["state"] == "in sync"


def test_up_with_a_failing_build_exits_1_and_starts_nothing(make_stack: MakeStack) -> None:
    """A build that fails stops `up` with pip's error before supervisord is started."""
    stack = make_stack(
        """
        [services.app]
        command = ["python", "-c", "import time; time.sleep(1000)"]
        python = { requirements = "requirements.txt" }
        """
    )
    (stack.root / "requirements.txt").write_text(unresolvable_requirements())

    up = stack.cli("up")
    assert up.exit_code == 1
    assert "No matching distribution" in up.output
    assert not (stack.state_dir / "run" / "supervisord.pid").exists()
    assert not link_of(stack.root).exists()
    assert env_folders(stack.root) == []
