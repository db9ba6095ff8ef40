"""Building, checking and using a service's own environment, with real venvs and pip."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsctl.config import Project, load_project
from opsctl.errors import ConfigError, OperationFailedError
from opsctl.runtime._render import program_spec
from opsctl.venvs import (
    environment_for,
    environment_states,
    service_environment_variables,
    sync_environment,
)
from tests.support import write_project
from tests.venvs._wheels import (
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


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version 1.0 and 2.0 of the local package, as wheel files."""
    folder = tmp_path_factory.mktemp("wheels")
    return {version: write_wheel(folder, version) for version in ("1.0", "2.0")}


@dataclass(frozen=True)
class Built:
    """A project whose environment was synced once, and what that first sync returned."""

    root: Path
    config: Path
    path: Path
    built: bool

    def project(self) -> Project:
        return load_project(self.config)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Built:
    """One environment built from the 1.0 wheel, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("synced")
    config = env_project(root, requirements_for(wheels["1.0"]))
    path, built = sync_environment(load_project(config), SERVICE)
    return Built(root=root, config=config, path=path, built=built)


def state_of(project: Project, service: str = SERVICE) -> str:
    """The state environment_states gives ``service``."""
    return next(s.state for s in environment_states(project) if s.service == service)


# A built environment


def test_first_sync_builds_an_environment_that_imports_the_local_package(synced: Built) -> None:
    """The first sync builds, links the service's name to it, and its python has the package."""
    assert synced.built is True
    link = link_of(synced.root)
    assert link.is_symlink()
    assert link.resolve() == synced.path.resolve()
    assert synced.path.parent == link.parent
    assert imported_version(link) == "1.0"


def test_synced_environment_is_listed_in_sync_with_its_path(synced: Built) -> None:
    """environment_states reports the built environment in sync, at the folder it built."""
    (state,) = environment_states(synced.project())
    assert state.service == SERVICE
    assert state.state == "in sync"
    assert state.path == synced.path.resolve()
    assert environment_for(synced.project(), SERVICE) == synced.path.resolve()


def test_sync_with_nothing_changed_does_not_rebuild(synced: Built) -> None:
    """A second sync of an unchanged declaration returns the same folder and touches nothing."""
    before = python_stamp(synced.path)
    path, built = sync_environment(synced.project(), SERVICE)
    assert built is False
    assert path.resolve() == synced.path.resolve()
    assert python_stamp(path) == before
    assert env_folders(synced.root) == [synced.path.resolve()]


def test_program_spec_runs_the_service_with_its_environment_first_on_path(synced: Built) -> None:
    """The launch spec sets VIRTUAL_ENV to the service's link and puts its bin first on PATH."""
    spec = program_spec(synced.project(), SERVICE)
    link = link_of(synced.root)
    assert spec["environment"]["VIRTUAL_ENV"] == str(link)
    first, _, rest = spec["environment"]["PATH"].partition(os.pathsep)
    assert first == str(link / "bin")
    assert rest == os.environ["PATH"]


def test_service_without_python_table_gets_no_environment_variables(tmp_path: Path) -> None:
    """A service that declares no environment runs without VIRTUAL_ENV or a changed PATH."""
    config = write_project(
        tmp_path,
        """
        [services.plain]
        command = ["sleep", "100"]
        """,
    )
    project = load_project(config)
    assert service_environment_variables(project, "plain") == {}
    assert "VIRTUAL_ENV" not in program_spec(project, "plain")["environment"]
    assert environment_states(project) == []


# Rebuilds and failed builds


def test_changed_requirements_make_it_stale_and_sync_rebuilds_and_removes_the_old_folder(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """After the requirements change the environment is stale; sync builds anew, links it,
    and removes the folder built from the old requirements.
    """
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))
    old, _ = sync_environment(load_project(config), SERVICE)
    (tmp_path / "requirements.txt").write_text(requirements_for(wheels["2.0"]))
    assert state_of(load_project(config)) == "stale"

    new, built = sync_environment(load_project(config), SERVICE)
    assert built is True
    assert new.resolve() != old.resolve()
    assert link_of(tmp_path).resolve() == new.resolve()
    assert imported_version(link_of(tmp_path)) == "2.0"
    assert not old.exists()
    assert env_folders(tmp_path) == [new.resolve()]
    assert state_of(load_project(config)) == "in sync"


def test_failed_build_raises_pips_error_and_keeps_the_environment_in_use(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """A requirement pip cannot find fails with pip's message; the link still points at the
    working environment, which still imports the old version, and no half-built folder is left.
    """
    config = env_project(tmp_path, requirements_for(wheels["1.0"]))
    working, _ = sync_environment(load_project(config), SERVICE)
    link_target = os.readlink(link_of(tmp_path))
    (tmp_path / "requirements.txt").write_text(unresolvable_requirements())

    with pytest.raises(OperationFailedError) as caught:
        sync_environment(load_project(config), SERVICE)
    assert "No matching distribution" in caught.value.message
    assert os.readlink(link_of(tmp_path)) == link_target
    assert imported_version(link_of(tmp_path)) == "1.0"
    assert env_folders(tmp_path) == [working.resolve()]
    assert state_of(load_project(config)) == "stale"


def test_rebuilding_one_service_keeps_the_environment_of_a_service_named_with_its_prefix(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    """Building 'app' must not remove the environment 'app-extra' runs with."""
    config = env_project(tmp_path, requirements_for(wheels["1.0"]), services=("app", "app-extra"))
    extra, _ = sync_environment(load_project(config), "app-extra")
    sync_environment(load_project(config), "app")

    assert extra.is_dir(), "app-extra's environment folder was removed by app's build"
    assert state_of(load_project(config), "app-extra") == "in sync"


# Declarations that cannot be built


def test_missing_requirements_file_is_a_config_error_and_lists_as_broken(tmp_path: Path) -> None:
    """A requirements file that does not exist: sync raises ConfigError naming it, and the
    environment is listed as broken with the same message; nothing is built.
    """
    config = env_project(tmp_path, "")
    (tmp_path / "requirements.txt").unlink()
    project = load_project(config)

    with pytest.raises(ConfigError, match="requirements.txt does not exist"):
        sync_environment(project, SERVICE)
    (state,) = environment_states(project)
    assert state.state == "broken"
    assert "requirements.txt does not exist" in state.detail
    assert not (tmp_path / ".opsctl" / "venvs").exists()


def test_project_path_without_python_project_files_is_a_config_error(tmp_path: Path) -> None:
    """A project path holding no pyproject.toml, setup.cfg, setup.py or requirements.txt is
    refused before anything is built.
    """
    (tmp_path / "lib").mkdir()
    config = write_project(
        tmp_path,
        """
        [services.app]
        command = ["python", "-c", "pass"]
        python = { project = "lib" }
        """,
    )
    with pytest.raises(ConfigError, match="not a Python project"):
        sync_environment(load_project(config), SERVICE)
    assert not (tmp_path / ".opsctl" / "venvs").exists()


def test_python_version_not_installed_is_a_config_error(tmp_path: Path) -> None:
    """A Python version with no interpreter on PATH is refused with a message naming it."""
    config = env_project(tmp_path, "--no-index\n")
    text = config.read_text().replace(
        'python = { requirements = "requirements.txt" }',
        'python = { requirements = "requirements.txt", python = "1.99" }',
    )
    config.write_text(text)
    with pytest.raises(ConfigError, match=r"Python 1\.99 is not installed"):
        sync_environment(load_project(config), SERVICE)
    assert state_of(load_project(config)) == "broken"


def test_service_without_python_table_cannot_be_synced(tmp_path: Path) -> None:
    """Syncing a service that declares no environment is a ConfigError, not a build."""
    config = write_project(
        tmp_path,
        """
        [services.plain]
        command = ["sleep", "100"]
        """,
    )
    with pytest.raises(ConfigError, match="declares no Python environment"):
        sync_environment(load_project(config), "plain")
