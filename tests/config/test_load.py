"""Loading opsctl.toml: discovery, precedence of the sources, placeholder expansion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsctl.config import HttpCheck, find_config, load_project
from opsctl.errors import ConfigError, ExitCode
from tests.support import run_cli, write_project

TIMEOUT_VARIABLE = "OPSCTL_RUNTIME__UP_TIMEOUT_SECONDS"

ONE_SERVICE = """
    [services.app]
    command = ["sleep", "100"]
    port = 7101
"""

WITH_TIMEOUT = """
    [runtime]
    up_timeout_seconds = 30

    [services.app]
    command = ["sleep", "100"]
"""


def shown_config(*args: str) -> dict[str, object]:
    """Run ``config show --json`` with ``args`` before it and return the parsed document."""
    result = run_cli(*args, "config", "show", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


# Discovery


def test_find_config_explicit_path_wins_over_environment_and_search(tmp_path: Path) -> None:
    """An explicit path is used even when OPSCTL_CONFIG and an upward match exist."""
    explicit = write_project(tmp_path / "explicit", ONE_SERVICE)
    from_env = write_project(tmp_path / "from_env", ONE_SERVICE)
    write_project(tmp_path, ONE_SERVICE)
    found = find_config(explicit, environ={"OPSCTL_CONFIG": str(from_env)}, cwd=tmp_path)
    assert found == explicit


def test_find_config_environment_variable_wins_over_search(tmp_path: Path) -> None:
    """OPSCTL_CONFIG is used when no explicit path is given, before searching upward."""
    from_env = write_project(tmp_path / "from_env", ONE_SERVICE)
    write_project(tmp_path, ONE_SERVICE)
    assert find_config(None, environ={"OPSCTL_CONFIG": str(from_env)}, cwd=tmp_path) == from_env


def test_find_config_environment_variable_naming_folder_uses_its_file(tmp_path: Path) -> None:
    """OPSCTL_CONFIG naming a folder means the opsctl.toml inside it."""
    folder = tmp_path / "proj"
    path = write_project(folder, ONE_SERVICE)
    assert find_config(None, environ={"OPSCTL_CONFIG": str(folder)}, cwd=tmp_path) == path


def test_find_config_relative_explicit_path_is_taken_from_cwd(tmp_path: Path) -> None:
    """A relative --config path is resolved against the working folder."""
    path = write_project(tmp_path / "a" / "b", ONE_SERVICE)
    assert find_config(Path("a/b/opsctl.toml"), environ={}, cwd=tmp_path) == path


def test_find_config_nested_cwd_finds_file_in_ancestor(tmp_path: Path) -> None:
    """Searching upward from a nested folder finds the nearest ancestor's opsctl.toml."""
    path = write_project(tmp_path / "proj", ONE_SERVICE)
    nested = tmp_path / "proj" / "src" / "deep" / "er"
    nested.mkdir(parents=True)
    assert find_config(None, environ={}, cwd=nested) == path


def test_find_config_nearest_of_two_ancestors_wins(tmp_path: Path) -> None:
    """With opsctl.toml at two levels, the one closest to the working folder is used."""
    write_project(tmp_path, ONE_SERVICE)
    inner = write_project(tmp_path / "inner", ONE_SERVICE)
    nested = tmp_path / "inner" / "sub"
    nested.mkdir()
    assert find_config(None, environ={}, cwd=nested) == inner


def test_find_config_empty_environment_variable_is_ignored(tmp_path: Path) -> None:
    """An empty OPSCTL_CONFIG falls through to the upward search."""
    path = write_project(tmp_path, ONE_SERVICE)
    assert find_config(None, environ={"OPSCTL_CONFIG": ""}, cwd=tmp_path) == path


def test_find_config_nothing_found_raises_config_error(tmp_path: Path) -> None:
    """No file anywhere raises ConfigError naming the folder searched from."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as caught:
        find_config(None, environ={}, cwd=empty)
    assert str(empty) in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


def test_cli_config_option_selects_file(tmp_path: Path) -> None:
    """--config selects the file to validate, named in the output."""
    path = write_project(tmp_path / "elsewhere", ONE_SERVICE)
    result = run_cli("--config", str(path), "config", "validate")
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout


def test_cli_config_option_wins_over_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config is used even when OPSCTL_CONFIG names another valid file."""
    chosen = write_project(tmp_path / "chosen", ONE_SERVICE)
    other = write_project(tmp_path / "other", ONE_SERVICE)
    monkeypatch.setenv("OPSCTL_CONFIG", str(other))
    assert shown_config("-c", str(chosen))["config_file"] == str(chosen)


def test_cli_environment_variable_selects_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPSCTL_CONFIG selects the file when --config is not given."""
    path = write_project(tmp_path / "viaenv", ONE_SERVICE)
    write_project(tmp_path, ONE_SERVICE.replace("7101", "7102"))
    monkeypatch.setenv("OPSCTL_CONFIG", str(path))
    assert shown_config()["config_file"] == str(path)


def test_cli_nested_working_folder_finds_project_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a nested folder, the CLI finds the project's opsctl.toml above it."""
    path = write_project(tmp_path / "proj", ONE_SERVICE)
    nested = tmp_path / "proj" / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    document = shown_config()
    assert document["config_file"] == str(path.resolve())
    assert document["root"] == str(path.parent.resolve())


def test_cli_missing_config_option_file_exits_2_naming_path(tmp_path: Path) -> None:
    """--config naming no file exits 2 and names the path, without a traceback."""
    missing = tmp_path / "nowhere" / "opsctl.toml"
    result = run_cli("--config", str(missing), "config", "validate")
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.output


def test_cli_missing_environment_file_exits_2_naming_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPSCTL_CONFIG naming no file exits 2 and names the path."""
    missing = tmp_path / "gone.toml"
    monkeypatch.setenv("OPSCTL_CONFIG", str(missing))
    result = run_cli("config", "validate")
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "OPSCTL_CONFIG" in result.stderr


def test_cli_no_config_anywhere_exits_2_naming_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no opsctl.toml found upward, the CLI exits 2 and names where it searched."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    result = run_cli("config", "show")
    assert result.exit_code == 2
    assert str(empty) in result.stderr
    assert "opsctl.toml" in result.stderr


def test_cli_missing_config_with_up_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    """up with a missing config file exits 2 and creates no state folder."""
    missing = tmp_path / "missing.toml"
    result = run_cli("-c", str(missing), "up")
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert not (tmp_path / ".opsctl").exists()


# Precedence: option > process environment > .env > file > default


def test_precedence_nothing_set_gives_builtin_default(tmp_path: Path) -> None:
    """With no source setting it, up_timeout_seconds is the built-in 60."""
    path = write_project(tmp_path, ONE_SERVICE)
    assert load_project(path).config.runtime.up_timeout_seconds == 60.0


def test_precedence_file_value_beats_default(tmp_path: Path) -> None:
    """A value in opsctl.toml replaces the built-in default."""
    path = write_project(tmp_path, WITH_TIMEOUT)
    assert load_project(path).config.runtime.up_timeout_seconds == 30.0


def test_precedence_dotenv_variable_beats_file(tmp_path: Path) -> None:
    """An override variable in .env beats the file's value."""
    path = write_project(tmp_path, WITH_TIMEOUT, env=f"{TIMEOUT_VARIABLE}=12\n")
    assert load_project(path).config.runtime.up_timeout_seconds == 12.0


def test_precedence_process_environment_beats_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override variable in the process environment beats the same variable in .env."""
    path = write_project(tmp_path, WITH_TIMEOUT, env=f"{TIMEOUT_VARIABLE}=12\n")
    monkeypatch.setenv(TIMEOUT_VARIABLE, "7")
    assert load_project(path).config.runtime.up_timeout_seconds == 7.0


def test_precedence_option_override_beats_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command-line override beats the process environment, .env and file."""
    path = write_project(tmp_path, WITH_TIMEOUT, env=f"{TIMEOUT_VARIABLE}=12\n")
    monkeypatch.setenv(TIMEOUT_VARIABLE, "7")
    project = load_project(path, overrides={"runtime.up_timeout_seconds": 3})
    assert project.config.runtime.up_timeout_seconds == 3.0


def test_precedence_process_environment_shown_by_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config show reports the value from the process environment over .env and file."""
    path = write_project(tmp_path, WITH_TIMEOUT, env=f"{TIMEOUT_VARIABLE}=12\n")
    monkeypatch.setenv(TIMEOUT_VARIABLE, "7")
    config = shown_config("-c", str(path))["config"]
    assert isinstance(config, dict)
    assert config["runtime"]["up_timeout_seconds"] == 7.0


def test_precedence_dotenv_shown_by_cli_when_process_environment_unset(tmp_path: Path) -> None:
    """config show reports the .env value when the process environment does not set it."""
    path = write_project(tmp_path, WITH_TIMEOUT, env=f"{TIMEOUT_VARIABLE}=12\n")
    config = shown_config("-c", str(path))["config"]
    assert isinstance(config, dict)
    assert config["runtime"]["up_timeout_seconds"] == 12.0


def test_precedence_env_file_option_beats_project_env_file(tmp_path: Path) -> None:
    """--env-file is read instead of the file named by project.env_file."""
    path = write_project(
        tmp_path,
        """
        [project]
        env_file = "configured.env"

        [services.app]
        command = "sleep ${DELAY}"
        """,
    )
    (tmp_path / "configured.env").write_text("DELAY=11\n")
    (tmp_path / "chosen.env").write_text("DELAY=22\n")
    config = shown_config("-c", str(path), "--env-file", str(tmp_path / "chosen.env"))["config"]
    assert isinstance(config, dict)
    assert config["services"]["app"]["command"] == "sleep 22"


def test_precedence_project_env_file_names_dotenv_read(tmp_path: Path) -> None:
    """project.env_file in the file chooses which .env is read."""
    path = write_project(
        tmp_path,
        """
        [project]
        env_file = "configured.env"

        [services.app]
        command = "sleep ${DELAY}"
        """,
        env="DELAY=1\n",
    )
    (tmp_path / "configured.env").write_text("DELAY=11\n")
    assert load_project(path).config.services["app"].command == "sleep 11"


def test_precedence_env_file_override_in_process_environment_selects_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPSCTL_PROJECT__ENV_FILE in the process environment beats project.env_file."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep ${DELAY}"
        """,
        env="DELAY=1\n",
    )
    (tmp_path / "other.env").write_text("DELAY=2\n")
    monkeypatch.setenv("OPSCTL_PROJECT__ENV_FILE", "other.env")
    project = load_project(path)
    assert project.config.project.env_file == "other.env"
    assert project.env_file == tmp_path / "other.env"
    assert project.config.services["app"].command == "sleep 2"


def test_precedence_environment_override_of_service_port_reaches_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An overridden service port is what {port} and {services.NAME.port} expand to."""
    path = write_project(
        tmp_path,
        """
        [services.db]
        command = "sleep {port}"
        port = 7201

        [services.app]
        command = "sleep {services.db.port}"
        """,
    )
    monkeypatch.setenv("OPSCTL_SERVICES__DB__PORT", "7299")
    services = load_project(path).config.services
    assert services["db"].port == 7299
    assert services["db"].command == "sleep 7299"
    assert services["app"].command == "sleep 7299"


def test_precedence_override_variable_without_separator_is_not_a_key(tmp_path: Path) -> None:
    """OPSCTL_ variables without a double underscore (like OPSCTL_DEBUG) override nothing."""
    path = write_project(tmp_path, ONE_SERVICE, env="OPSCTL_DEBUG=0\nOPSCTL_SOMETHING=1\n")
    assert load_project(path).config.services["app"].port == 7101


def test_env_placeholder_process_environment_beats_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} takes the process environment's value when .env sets the same variable."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep ${DELAY}"
        environment = { MODE = "${MODE}" }
        """,
        env="DELAY=5\nMODE=from-dotenv\n",
    )
    monkeypatch.setenv("MODE", "from-process")
    service = load_project(path).config.services["app"]
    assert service.command == "sleep 5"
    assert service.environment["MODE"] == "from-process"


def test_env_placeholder_unset_with_default_uses_default(tmp_path: Path) -> None:
    """${VAR:-default} takes the default when neither environment nor .env sets VAR."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep ${OPSCTL_TEST_UNSET_DELAY:-9}"
        """,
    )
    assert load_project(path).config.services["app"].command == "sleep 9"


def test_env_placeholder_dotenv_value_beats_default(tmp_path: Path) -> None:
    """${VAR:-default} takes the .env value when .env sets VAR."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep ${DELAY:-9}"
        """,
        env="DELAY=4\n",
    )
    assert load_project(path).config.services["app"].command == "sleep 4"


def test_reference_placeholders_expand_in_commands_urls_and_environment(tmp_path: Path) -> None:
    """{port}, {services.NAME.port} and {project.root} expand everywhere they are allowed."""
    path = write_project(
        tmp_path,
        """
        [services.redis]
        command = ["sleep", "{port}"]
        port = 7301

        [services.web]
        command = "python3 -m http.server {port}"
        port = 7302
        depends_on = ["redis"]

        [services.web.environment]
        REDIS_URL = "redis://127.0.0.1:{services.redis.port}/0"
        DATA = "{project.root}/data"

        [[services.web.health]]
        kind = "http"
        url = "http://127.0.0.1:{port}/health"
        """,
    )
    project = load_project(path)
    root = str(tmp_path.resolve())
    redis, web = project.services["redis"], project.services["web"]
    assert redis.command == ["sleep", "7301"]
    assert web.command == "python3 -m http.server 7302"
    assert web.environment["REDIS_URL"] == "redis://127.0.0.1:7301/0"
    assert web.environment["DATA"] == f"{root}/data"
    check = web.health[0]
    assert isinstance(check, HttpCheck)
    assert check.url == "http://127.0.0.1:7302/health"
    assert project.root == tmp_path.resolve()


def test_reference_placeholders_in_defaults_expand_to_project_root(tmp_path: Path) -> None:
    """Defaults written with {project.root} (backup destination, disk paths) are expanded."""
    path = write_project(tmp_path, ONE_SERVICE)
    config = load_project(path).config
    root = str(tmp_path.resolve())
    assert config.backup.destination == f"{root}/backups"
    assert config.monitoring.disk.paths == [root]


def test_escapes_expand_to_literal_characters_in_loaded_config(tmp_path: Path) -> None:
    """{{, }} and $$ in the file become literal braces and dollar signs."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = ["python3", "-c", "print('{{port}}', '$${{HOME}}', '$$5')"]
        port = 7401
        """,
    )
    command = load_project(path).config.services["app"].command
    assert command == ["python3", "-c", "print('{port}', '${HOME}', '$5')"]


def test_env_placeholder_set_but_empty_with_default_uses_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR:-default} takes the default when VAR is set but empty, as :- means in a shell."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep ${DELAY:-9}"
        """,
    )
    monkeypatch.setenv("DELAY", "")
    assert load_project(path).config.services["app"].command == "sleep 9"


# Errors raised by the loader itself


def test_load_error_lists_every_problem_with_line_numbers(tmp_path: Path) -> None:
    """Several mistakes are reported together, each with its key path and line."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "sleep 1"
        prot = 7001

        [runtime]
        up_timeout_seconds = -1
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    message = caught.value.message
    assert str(path.resolve()) in message
    assert "2 configuration problems" in message
    assert "line 3, services.app.prot" in message
    assert "line 6, runtime.up_timeout_seconds" in message


def test_load_error_from_environment_override_names_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value from an override variable is reported under the key it overrides."""
    path = write_project(tmp_path, WITH_TIMEOUT)
    monkeypatch.setenv(TIMEOUT_VARIABLE, "soon")
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert "runtime.up_timeout_seconds" in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


def test_load_override_through_non_table_raises_config_error(tmp_path: Path) -> None:
    """An override whose path runs through a plain value raises ConfigError, not a crash."""
    path = write_project(tmp_path, ONE_SERVICE)
    with pytest.raises(ConfigError) as caught:
        load_project(path, overrides={"services.app.port.deeper": 1})
    assert "services.app.port.deeper" in caught.value.message
