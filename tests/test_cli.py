"""The root command: help, version, lazy loading, exit codes, error conversion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl import __version__
from opsctl._logging import verbosity_level
from opsctl.cli import COMMANDS, hoist_global_flags
from tests.support import run_cli, write_project

HEAVY_MODULES = [
    "pydantic",
    "redis",
    "httpx",
    "dotenv",
    "supervisor",
    "opsctl.commands",
    "opsctl.config",
]


def test_version_prints_package_version() -> None:
    """--version prints the version and exits 0."""
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"opsctl {__version__}\n"


def test_help_lists_every_command_without_importing_them() -> None:
    """--help lists all commands but imports no command module or heavy library."""
    probe = (
        "import sys, contextlib, io\n"
        "from opsctl.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "loaded = [m for m in " + repr(HEAVY_MODULES) + " if m in sys.modules]\n"
        "print(repr(loaded)); print(out.getvalue())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded, _, help_text = result.stdout.partition("\n")
    assert loaded == "[]"
    for name in COMMANDS:
        assert f" {name} " in help_text


def test_unknown_command_suggests_the_close_one() -> None:
    """A misspelt command exits 2 and suggests the command meant."""
    result = run_cli("helth")
    assert result.exit_code == 2
    assert "health" in result.stderr


def test_missing_config_exits_2_with_hint(tmp_path: Path) -> None:
    """Without any opsctl.toml, a command exits 2 and says how to point at one."""
    result = run_cli("status")
    assert result.exit_code == 2
    assert "No opsctl.toml found" in result.stderr
    assert "--config" in result.stderr
    assert "Traceback" not in result.output


def test_unexpected_error_is_one_line_unless_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug surfaces as one line with a --debug hint; --debug shows the traceback."""
    config = write_project(tmp_path, "[services.a]\ncommand = 'sleep 1'\n")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("opsctl.runtime._stack.Stack.status", explode)
    plain = run_cli("-c", str(config), "status")
    assert plain.exit_code == 1
    assert "unexpected RuntimeError: boom" in plain.stderr
    assert "Traceback" not in plain.stderr

    debug = run_cli("-c", str(config), "status", "--debug")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_global_flags_after_the_command_are_honoured() -> None:
    """-q, -v, --debug, -c and --env-file may follow the command; nothing after -- moves."""
    assert hoist_global_flags(["health", "-q", "--json"]) == ["-q", "health", "--json"]
    assert hoist_global_flags(["status", "-c", "proj", "--json"]) == [
        "-c",
        "proj",
        "status",
        "--json",
    ]
    assert hoist_global_flags(["logs", "api", "--config=x"]) == ["--config=x", "logs", "api"]
    assert hoist_global_flags(["exec", "api", "--", "ls", "-v"]) == [
        "exec",
        "api",
        "--",
        "ls",
        "-v",
    ]


@pytest.mark.parametrize(
    ("verbose", "quiet", "interactive", "expected"),
    [
        (0, 0, True, 20),
        (0, 0, False, 30),
        (1, 0, False, 20),
        (2, 0, False, 10),
        (5, 0, False, 10),
        (0, 1, True, 30),
        (0, 1, False, 40),
        (0, 9, False, 50),
    ],
)
def test_verbosity_flags_map_to_log_levels(
    verbose: int, quiet: int, interactive: bool, expected: int
) -> None:
    """-v and -q stack from INFO on a terminal and WARNING off one, clamped at both ends."""
    assert verbosity_level(verbose=verbose, quiet=quiet, interactive=interactive) == expected


def test_health_without_running_stack_is_unhealthy_json(tmp_path: Path) -> None:
    """health --json on a stopped stack prints one JSON report and exits 1."""
    config = write_project(tmp_path, "[services.a]\ncommand = 'sleep 1'\n")
    result = run_cli("-c", str(config), "health", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["status"] == "unhealthy"
    assert set(report) == {"status", "checks", "summary", "started_at", "duration_ms"}
    assert report["started_at"].endswith("Z")
    process = report["checks"][0]
    assert set(process) >= {"name", "kind", "target", "status", "severity", "duration_ms", "detail"}
    assert process["status"] == "fail"
    assert "supervisord is not running" in process["detail"]
