"""The local runtime driving a real supervisord and a real redis-server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtime.conftest import PYTHON, StackProject
from tests.runtime.programs import CRASHER, NEVER_READY, SERVICE, STUBBORN, write_program
from tests.support import free_port, pid_alive, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)

MakeStack = Callable[..., StackProject]


def redis_toml(port: int, *, start_seconds: int = 1, extra: str = "") -> str:
    return f"""
        [services.redis]
        command = "redis-server --port {{port}} --bind 127.0.0.1 --save '' --appendonly no {extra}"
        port = {port}
        start_seconds = {start_seconds}
        [[services.redis.health]]
        kind = "redis"
    """


def health(stack: StackProject) -> tuple[int, dict[str, object]]:
    result = stack.cli("health", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_up_then_health_passes_and_down_leaves_no_process(make_stack: MakeStack) -> None:
    """up starts Redis, health passes, down stops it and supervisord, and no pid survives."""
    stack = make_stack(redis_toml(free_port()))

    up = stack.cli("up")
    assert up.exit_code == 0, up.output
    code, report = health(stack)
    assert code == 0, report
    assert report["status"] == "healthy"
    assert {check["name"] for check in report["checks"]} >= {"redis:process", "redis:redis"}

    redis_pid = stack.pid("redis")
    supervisord_pid = int((stack.state_dir / "run" / "supervisord.pid").read_text())
    down = stack.cli("down", "--json")
    assert down.exit_code == 0, down.output
    assert json.loads(down.stdout)["services"][0]["action"] == "stopped"
    assert not pid_alive(redis_pid)
    assert not pid_alive(supervisord_pid)
    assert stack.status()["redis"]["state"] == "DOWN"


def test_killed_redis_fails_health_then_recovers_after_restart(make_stack: MakeStack) -> None:
    """A SIGKILLed Redis makes health exit 1; supervisord restarts it and health passes again."""
    stack = make_stack(redis_toml(free_port(), start_seconds=3))
    assert stack.cli("up").exit_code == 0
    old_pid = stack.pid("redis")

    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old_pid), timeout_seconds=5, message="redis to die")
    code, report = health(stack)
    assert code == 1
    assert report["status"] == "unhealthy"
    process = next(check for check in report["checks"] if check["name"] == "redis:process")
    assert process["status"] == "fail"

    wait_for(lambda: health(stack)[0] == 0, timeout_seconds=20, message="health to pass again")
    assert stack.pid("redis") != old_pid


def test_up_is_idempotent_and_restarts_a_service_whose_env_changed(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """A second up leaves running services alone; a changed .env value restarts the service."""
    port = free_port()
    journal = tmp_path / "journal"
    program = write_program(tmp_path, "service", SERVICE)
    stack = make_stack(
        f"""
        [services.app]
        command = ["{PYTHON}", "{program}", "app", "{port}", "{journal}"]
        port = {port}
        environment = {{ GREETING = "${{GREETING}}" }}
        """,
        env="GREETING=hello\n",
    )
    assert stack.cli("up").exit_code == 0
    first_pid = stack.pid("app")

    again = stack.cli("up", "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["services"] == [
        {"name": "app", "action": "running", "detail": "", "log_tail": []}
    ]
    assert stack.pid("app") == first_pid

    (stack.root / ".env").write_text("GREETING=bonjour\n")
    changed = stack.cli("up", "--json")
    assert json.loads(changed.stdout)["services"][0]["action"] == "restarted"
    new_pid = stack.pid("app")
    assert new_pid != first_pid
    assert (
        Path(f"/proc/{new_pid}/environ").read_bytes().split(b"\0").count(b"GREETING=bonjour") == 1
    )


def test_start_waits_for_dependency_health_and_stop_runs_in_reverse(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """A dependent starts once its dependency answers, and is down before the dependency stops."""
    db_port, api_port = free_port(), free_port()
    journal = tmp_path / "journal"
    program = write_program(tmp_path, "service", SERVICE)
    stack = make_stack(
        f"""
        [services.api]
        command = ["{PYTHON}", "{program}", "api", "{api_port}", "{journal}"]
        port = {api_port}
        depends_on = ["db"]
        environment = {{ DEPENDS_PORT = "{{services.db.port}}", STOP_DELAY = "1.5" }}

        [services.db]
        command = ["{PYTHON}", "{program}", "db", "{db_port}", "{journal}"]
        port = {db_port}
        environment = {{ LISTEN_DELAY = "1.5" }}
        """
    )
    assert stack.cli("up").exit_code == 0
    assert stack.cli("down").exit_code == 0

    events = [line.split(maxsplit=1)[1] for line in journal.read_text().splitlines()]
    assert events.index("db start") < events.index("api start")
    assert "api dependency-up" in events
    assert events.index("api exit") < events.index("db term")


def test_program_ignoring_sigterm_is_killed_with_its_children_after_stop_timeout(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """A program that ignores SIGTERM is killed, child included, after its stop timeout."""
    child_pid_file = tmp_path / "child.pid"
    program = write_program(tmp_path, "stubborn", STUBBORN)
    stack = make_stack(
        f"""
        [services.stubborn]
        command = ["{PYTHON}", "{program}", "{child_pid_file}"]
        stop_timeout_seconds = 2
        """
    )
    assert stack.cli("up").exit_code == 0
    wait_for(child_pid_file.exists, timeout_seconds=5, message="the child pid file")
    program_pid, child_pid = stack.pid("stubborn"), int(child_pid_file.read_text())

    begin = time.monotonic()
    down = stack.cli("down", "--json")
    elapsed = time.monotonic() - begin

    assert down.exit_code == 0, down.output
    outcome = json.loads(down.stdout)["services"][0]
    assert outcome["action"] == "stopped"
    assert "killed after its stop timeout" in outcome["detail"]
    assert elapsed >= 2
    assert not pid_alive(program_pid)
    assert not pid_alive(child_pid)


def test_crash_looping_program_is_reported_whatever_its_state(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """A program that keeps exiting after it reached RUNNING is reported as crash-looping."""
    program = write_program(tmp_path, "crasher", CRASHER)
    stack = make_stack(
        f"""
        [runtime]
        crash_loop_restarts = 3

        [services.crasher]
        command = ["{PYTHON}", "{program}"]
        start_seconds = 1
        start_retries = 100
        """
    )
    stack.cli("up")

    def crash_looping() -> bool:
        code, report = health(stack)
        process = next(check for check in report["checks"] if check["name"] == "crasher:process")
        return code == 1 and "crash-looping" in str(process["detail"])

    wait_for(crash_looping, timeout_seconds=30, message="crash-looping to be reported")


def test_up_reports_what_did_not_come_up_with_its_log_and_skips_dependents(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """up exits 1 at its timeout, shows the failed service's log tail, and starts no dependent."""
    program = write_program(tmp_path, "never", NEVER_READY)
    port = free_port()
    stack = make_stack(
        f"""
        [services.license]
        command = ["{PYTHON}", "{program}"]
        port = {port}

        [services.web]
        command = "sleep 1000"
        depends_on = ["license"]
        """
    )
    begin = time.monotonic()
    result = stack.cli("up", "--timeout", "3")
    elapsed = time.monotonic() - begin

    assert result.exit_code == 1
    assert elapsed < 10
    assert "not ready within 3 s" in result.stdout
    assert "waiting for a license server that does not exist" in result.stdout
    rows = stack.status()
    assert rows["web"]["state"] == "STOPPED"


def test_redis_health_uses_configured_password_and_never_prints_it(make_stack: MakeStack) -> None:
    """The redis check authenticates with the password from .env, and the password is not shown."""
    secret = "s3cret-Redis-pass-0123456789"
    port = free_port()
    stack = make_stack(
        f"""
        [services.redis]
        command = [
            "redis-server", "--port", "{{port}}", "--bind", "127.0.0.1", "--save", "",
            "--requirepass", "${{REDIS_PASSWORD}}",
        ]
        port = {port}
        [[services.redis.health]]
        kind = "redis"
        password = "${{REDIS_PASSWORD}}"
        """,
        env=f"REDIS_PASSWORD={secret}\n",
    )
    up = stack.cli("up")
    assert up.exit_code == 0, up.output
    healthy = stack.cli("health")
    assert healthy.exit_code == 0, healthy.output
    assert secret not in healthy.output

    (stack.root / ".env").write_text("REDIS_PASSWORD=wrong-password-987654321\n")
    wrong = stack.cli("-v", "health", "redis")
    assert wrong.exit_code == 1
    assert "authentication" in wrong.stdout.lower() or "WRONGPASS" in wrong.stdout
    shown = stack.cli("config", "show", "--json").stdout + stack.cli("--debug", "status").output
    assert secret not in shown


def test_logs_shows_the_last_lines_of_a_service(make_stack: MakeStack, tmp_path: Path) -> None:
    """logs -n N prints the last N lines the program wrote."""
    stack = make_stack(
        """
        [services.talker]
        command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; exec sleep 1000"]
        """
    )
    assert stack.cli("up").exit_code == 0
    wait_for(
        lambda: "line 5" in stack.cli("logs", "talker").stdout, timeout_seconds=5, message="output"
    )
    assert stack.cli("logs", "talker", "-n", "2").stdout.splitlines() == ["line 4", "line 5"]
    unknown = stack.cli("logs", "nosuch")
    assert unknown.exit_code == 2
    assert "No service named 'nosuch'" in unknown.stderr


def test_health_command_check_is_killed_with_its_children_at_its_deadline(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """A hanging command check fails at its deadline and its process group is killed."""
    child_pid_file = tmp_path / "sleeper.pid"
    stack = make_stack(
        f"""
        [services.idle]
        command = "sleep 1000"
        [[services.idle.health]]
        kind = "command"
        argv = ["sh", "-c", "sleep 60 & echo $! > {child_pid_file}; wait"]
        timeout_seconds = 1
        """
    )
    stack.cli("up", "--timeout", "2")

    begin = time.monotonic()
    code, report = health(stack)
    elapsed = time.monotonic() - begin

    assert code == 1
    check = next(c for c in report["checks"] if c["kind"] == "command")
    assert check["status"] == "fail"
    assert "still running after 1 s" in check["detail"]
    assert elapsed < 5
    wait_for(
        lambda: not pid_alive(int(child_pid_file.read_text())),
        timeout_seconds=2,
        message="sleeper killed",
    )
