"""Lifecycle behaviour at the edges: partial ups, broken configs, leftovers, concurrency."""

from __future__ import annotations

import fcntl
import json
import stat
from collections.abc import Callable
from pathlib import Path

from tests.runtime.conftest import PYTHON, StackProject
from tests.support import pid_alive, wait_for

MakeStack = Callable[..., StackProject]


def test_change_to_an_untargeted_service_is_applied_by_the_next_up(make_stack: MakeStack) -> None:
    """A changed service left out of `up NAME` is restarted by the next plain `up`."""
    toml = """
        [services.a]
        command = "sleep 1001"
        [services.b]
        command = "sleep {seconds}"
    """
    stack = make_stack(toml.format(seconds=1002))
    assert stack.cli("up").exit_code == 0
    old_b = stack.pid("b")

    stack.config.write_text(stack.config.read_text().replace("sleep 1002", "sleep 1003"))
    partial = json.loads(stack.cli("up", "a", "--json").stdout)
    assert [row["action"] for row in partial["services"]] == ["running"]
    assert stack.pid("b") == old_b

    full = json.loads(stack.cli("up", "--json").stdout)
    assert {row["name"]: row["action"] for row in full["services"]} == {
        "a": "running",
        "b": "restarted",
    }
    new_b = stack.pid("b")
    assert new_b != old_b
    assert b"1003" in Path(f"/proc/{new_b}/cmdline").read_bytes()


def test_down_stops_a_stack_whose_config_no_longer_resolves(
    make_stack: MakeStack, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """down works when a ${VAR} the stack was started with is unset now."""
    monkeypatch.setenv("NAP_SECONDS", "1004")
    stack = make_stack('[services.nap]\ncommand = "sleep ${NAP_SECONDS}"\n')
    assert stack.cli("up").exit_code == 0
    pid = stack.pid("nap")

    monkeypatch.delenv("NAP_SECONDS")
    assert stack.cli("up").exit_code == 2
    down = stack.cli("down")
    assert down.exit_code == 0, down.output
    assert not pid_alive(pid)


def test_program_output_with_markup_characters_is_shown_verbatim(make_stack: MakeStack) -> None:
    """A log line like 'GET [/api/health] 500' is printed as is, never parsed as markup."""
    stack = make_stack(
        """
        [services.noisy]
        command = ["sh", "-c", "echo 'GET [/api/health] 500'; exit 3"]
        start_seconds = 0
        autorestart = false
        """
    )
    stack.cli("up", "--timeout", "2")
    wait_for(
        lambda: stack.status()["noisy"]["state"] == "EXITED", timeout_seconds=10, message="exit"
    )
    for command in (("status",), ("health",)):
        result = stack.cli(*command)
        assert "MarkupError" not in result.output
        assert "[/api/health]" in result.stdout


def test_down_kills_children_a_program_left_behind(make_stack: MakeStack, tmp_path: Path) -> None:
    """Children of a program that forked and exited are killed by down."""
    pids = tmp_path / "children"
    program = tmp_path / "forker.py"
    program.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '1005'])\n"
        f"open({str(pids)!r}, 'a').write(f'{{child.pid}}\\n')\n"
        "time.sleep(1.5)\n"
    )
    stack = make_stack(
        f'[services.forker]\ncommand = ["{PYTHON}", "{program}"]\nstart_seconds = 1\n'
    )
    assert stack.cli("up").exit_code == 0
    wait_for(
        lambda: pids.exists() and len(pids.read_text().split()) >= 2,
        timeout_seconds=15,
        message="a restart",
    )
    children = [int(pid) for pid in pids.read_text().split()]
    assert any(pid_alive(pid) for pid in children)

    assert stack.cli("down").exit_code == 0
    wait_for(
        lambda: not any(pid_alive(pid) for pid in children),
        timeout_seconds=5,
        message="children gone",
    )


def test_existing_state_folder_keeps_its_mode(make_stack: MakeStack, tmp_path: Path) -> None:
    """A state folder that already existed is not made private; opsctl's own folders are."""
    shared = tmp_path / "shared-state"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    stack = make_stack(f'[project]\nstate_dir = "{shared}"\n[services.s]\ncommand = "sleep 1006"\n')
    assert stack.cli("up").exit_code == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "run").stat().st_mode) == 0o700
    assert stack.cli("down").exit_code == 0


def test_second_lifecycle_run_exits_busy_while_one_holds_the_lock(make_stack: MakeStack) -> None:
    """While another up holds the lock, up and down exit 75 and say why."""
    stack = make_stack('[services.s]\ncommand = "sleep 1007"\n')
    run_dir = stack.state_dir / "run"
    run_dir.mkdir(parents=True)
    with (run_dir / "lifecycle.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for command in ("up", "down"):
            result = stack.cli(command)
            assert result.exit_code == 75
            assert "Another opsctl up, down or restart is running" in result.stderr
    assert not (run_dir / "supervisord.pid").exists()


def test_project_file_named_like_a_module_does_not_break_the_launcher(
    make_stack: MakeStack,
) -> None:
    """A json.py in the project folder cannot shadow the launcher's imports."""
    stack = make_stack('[services.s]\ncommand = "sleep 1008"\n')
    (stack.root / "json.py").write_text("raise ImportError('shadowed')\n")
    result = stack.cli("up", "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert stack.status()["s"]["state"] == "RUNNING"


def test_up_with_no_services_is_a_usage_error(make_stack: MakeStack) -> None:
    """A config without services starts nothing and says so."""
    stack = make_stack("[project]\nname = 'empty'\n")
    result = stack.cli("up")
    assert result.exit_code == 2
    assert "declares no services" in result.stderr
    assert not (stack.state_dir / "run" / "supervisord.pid").exists()
