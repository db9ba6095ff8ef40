"""``[monitoring]`` values that parse but cannot mean what they say are config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.errors import ConfigError, ExitCode
from tests.support import run_cli, write_project


def test_inverted_disk_thresholds_are_a_config_error_naming_both_keys(tmp_path: Path) -> None:
    """warn_free_percent must be the larger free share: 5 and 99 are refused."""
    path = write_project(
        tmp_path,
        """
        [project]
        name = "demo"
        [monitoring.disk]
        warn_free_percent = 5
        fail_free_percent = 99
        """,
    )

    with pytest.raises(ConfigError) as caught:
        load_project(path)

    message = caught.value.message
    assert "monitoring.disk" in message
    assert "warn_free_percent (5) must be above fail_free_percent (99)" in message
    assert caught.value.exit_code == ExitCode.USAGE
    result = run_cli("-c", str(path), "monitor", "--once")
    assert result.exit_code == 2
    assert "warn_free_percent" in result.stderr


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("load_per_cpu = { warn = true }", "load_per_cpu.warn"),
        ("load_per_cpu = { critical = inf }", "load_per_cpu.critical"),
        ("memory_used_percent = { warn = nan, critical = 97 }", "memory_used_percent.warn"),
        ('heartbeat_age_seconds = { warn = "60" }', "heartbeat_age_seconds.warn"),
    ],
)
def test_thresholds_must_be_finite_numbers(tmp_path: Path, line: str, key: str) -> None:
    """Booleans, strings and infinite or NaN levels are refused under their key."""
    path = write_project(tmp_path, f'[project]\nname = "demo"\n[monitoring.thresholds]\n{line}\n')

    with pytest.raises(ConfigError) as caught:
        load_project(path)

    assert f"monitoring.thresholds.{key}" in caught.value.message


def test_disk_percent_as_boolean_is_refused(tmp_path: Path) -> None:
    """``warn_free_percent = true`` is no percentage."""
    path = write_project(
        tmp_path, '[project]\nname = "demo"\n[monitoring.disk]\nwarn_free_percent = true\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_project(path)
    assert "monitoring.disk.warn_free_percent" in caught.value.message


def test_integer_and_float_levels_are_accepted(tmp_path: Path) -> None:
    """Whole numbers and decimals both work, as before."""
    path = write_project(
        tmp_path,
        """
        [project]
        name = "demo"
        [monitoring.disk]
        warn_free_percent = 20
        fail_free_percent = 7.5
        [monitoring.thresholds]
        load_per_cpu = { warn = 1.5, critical = 3 }
        """,
    )
    monitoring = load_project(path).config.monitoring
    assert monitoring.disk.warn_free_percent == 20
    assert monitoring.thresholds.load_per_cpu.critical == 3


@pytest.mark.parametrize(("warn", "fail"), [(0, 0), (0, 5), (10, 0)])
def test_a_level_of_zero_is_no_level_and_needs_no_order(
    tmp_path: Path, warn: int, fail: int
) -> None:
    """0 turns a disk level off, so it is never compared with the other one."""
    path = write_project(
        tmp_path,
        f"""
        [project]
        name = "demo"
        [monitoring.disk]
        warn_free_percent = {warn}
        fail_free_percent = {fail}
        """,
    )
    assert load_project(path).config.monitoring.disk.fail_free_percent == fail
