"""Config values that used to pass validation and fail later."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli, write_project


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        (
            '[services.s]\ncommand = "sleep 1"\nexit_codes = [300]\n',
            "services.s.exit_codes.0",
            "less than or equal to 255",
        ),
        (
            '[services.s]\ncommand = "sleep 1"\nexit_codes = []\n',
            "services.s.exit_codes",
            "at least 1",
        ),
        (
            '[services.s]\ncommand = "sleep 1"\nenvironment = { "A=B" = "x" }\n',
            "services.s.environment",
            "pattern",
        ),
        ('[services.s]\ncommand = "sleep 1"\nport = true\n', "services.s.port", "valid integer"),
        (
            "[runtime]\ncrash_loop_window_seconds = 1e12\n",
            "runtime.crash_loop_window_seconds",
            "less than",
        ),
        ('[project]\nstate_dir = ""\n', "project.state_dir", "folder of its own"),
        ('[project]\nstate_dir = "opsctl.toml"\n', "project.state_dir", "not a folder"),
    ],
)
def test_values_that_would_fail_at_start_are_config_errors(
    tmp_path: Path, toml: str, key: str, words: str
) -> None:
    """Each of these is rejected at load with exit 2, naming the key."""
    config = write_project(tmp_path, toml)
    result = run_cli("-c", str(config), "config", "validate")
    assert result.exit_code == 2, result.output
    assert key in result.stderr
    assert words in result.stderr


def test_override_problem_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad value set by an OPSCTL_ variable is blamed on that variable, not the file."""
    config = write_project(tmp_path, '[services.Web]\ncommand = "sleep 1"\n')
    monkeypatch.setenv("OPSCTL_SERVICES__WEB__PORT", "not-a-port")
    result = run_cli("-c", str(config), "config", "validate")
    assert result.exit_code == 2
    assert "OPSCTL_SERVICES__WEB__PORT" in result.stderr
    assert "services.Web.port" in result.stderr


def test_override_of_environment_value_stays_a_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override of an environment value keeps 'true' as text."""
    config = write_project(
        tmp_path, '[services.web]\ncommand = "sleep 1"\nenvironment = { MODE = "x" }\n'
    )
    monkeypatch.setenv("OPSCTL_SERVICES__WEB__ENVIRONMENT__MODE", "true")
    result = run_cli("-c", str(config), "config", "show", "--json")
    assert result.exit_code == 0, result.output
    assert '"MODE": "true"' in result.stdout


def test_missing_env_file_option_is_an_error(tmp_path: Path) -> None:
    """--env-file naming a missing file exits 2 instead of being ignored."""
    config = write_project(tmp_path, '[services.s]\ncommand = "sleep 1"\n')
    result = run_cli(
        "-c", str(config), "--env-file", str(tmp_path / "nope.env"), "config", "validate"
    )
    assert result.exit_code == 2
    assert "nope.env" in result.stderr


def test_env_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """A .env with invalid UTF-8 gives a config error naming it, not a crash."""
    config = write_project(tmp_path, '[services.s]\ncommand = "sleep 1"\n')
    (tmp_path / ".env").write_bytes(b"A=\xff\xfe\n")
    result = run_cli("-c", str(config), "config", "validate")
    assert result.exit_code == 2
    assert ".env" in result.stderr
    assert "Traceback" not in result.output
