"""What opsctl gives programs so their agents find Redis, and `opsctl status` showing them."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsctl.agent import Agent
from opsctl.config import load_project
from opsctl.config._project import RedisTarget
from opsctl.runtime._render import program_spec
from opsctl.secrets import mask
from tests.agent.conftest import PASSWORD, PROJECT, GarbageServer
from tests.agent.programs import STACK_COMPONENT
from tests.runtime.conftest import StackProject
from tests.support import RedisServer, free_port, kill_supervisord, wait_for, write_project

SECRET = "stack-redis-secret-5150"
REPORT_FIELDS = {
    "component",
    "pid",
    "host",
    "status",
    "detail",
    "gauges",
    "last_seen",
    "age_seconds",
    "stale",
    "handles",
}

MakeStack = Callable[..., StackProject]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[MakeStack]:
    """Stack projects in temporary folders, taken down after the test."""
    made: list[StackProject] = []

    def make(toml: str, *, env: str | None = None) -> StackProject:
        root = tmp_path / "stack"
        project = StackProject(root=root, config=write_project(root, toml, env=env))
        made.append(project)
        return project

    yield make
    for project in made:
        project.cli("down")
        kill_supervisord(project.state_dir)


def stack_toml(redis_port: int) -> str:
    return f"""
        [project]
        name = "agentstack"

        [services.redis]
        command = [
            "redis-server", "--port", "{{port}}", "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--requirepass", "${{REDIS_PASSWORD}}",
        ]
        port = {redis_port}
        [[services.redis.health]]
        kind = "redis"
        password = "${{REDIS_PASSWORD}}"

        [services.embedder]
        command = ["{sys.executable}", "component.py"]
        depends_on = ["redis"]
        start_seconds = 1
    """


def status_json(stack: StackProject) -> dict[str, object]:
    result = stack.cli("status", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def test_status_shows_what_a_supervised_component_reported(make_stack: MakeStack) -> None:
    """A program configured only by the variables opsctl injected reports through its agent;
    status --json lists it with the documented fields, and the table shows it.
    """
    stack = make_stack(stack_toml(free_port()), env=f"REDIS_PASSWORD={SECRET}\n")
    (stack.root / "component.py").write_text(STACK_COMPONENT)
    up = stack.cli("up")
    assert up.exit_code == 0, up.output

    def reported() -> bool:
        components = status_json(stack)["components"]
        assert isinstance(components, list)
        return any(c["component"] == "embedder" and c["gauges"] for c in components)

    wait_for(reported, timeout_seconds=30, message="the embedder's report in status")
    document = status_json(stack)
    assert document["components_error"] is None
    [component] = document["components"]  # type: ignore[misc]
    assert set(component) == REPORT_FIELDS
    services = {row["name"]: row for row in document["services"]}  # type: ignore[attr-defined]
    assert component["pid"] == services["embedder"]["pid"]
    assert (component["status"], component["detail"]) == ("degraded", "warming up the model")
    assert component["gauges"] == {"batch_size": 32.0}
    assert component["stale"] is False
    assert component["last_seen"].endswith("+00:00")

    table = stack.cli("status")
    assert table.exit_code == 0, table.output
    line = next(line for line in table.stdout.splitlines() if line.startswith("embedder "))
    assert "RUNNING" in line  # the services table still comes first
    row = [line for line in table.stdout.splitlines() if line.startswith("embedder ")][-1]
    assert row.split()[1:2] == [str(component["pid"])]
    assert "degraded" in row
    assert "batch_size=32" in row
    assert "warming up the model" in row
    assert SECRET not in table.output


def test_status_says_in_one_line_when_redis_cannot_be_read(make_stack: MakeStack) -> None:
    """With the stack's Redis down, status still shows the services, exits 0, and says why
    no component is listed, once.
    """
    stack = make_stack(stack_toml(free_port()), env=f"REDIS_PASSWORD={SECRET}\n")

    document = status_json(stack)
    assert document["components"] == []
    error = document["components_error"]
    assert isinstance(error, str)
    assert error.startswith("Cannot read component reports: Redis at redis://127.0.0.1:")

    human = stack.cli("status")
    assert human.exit_code == 0, human.output
    assert "redis" in human.stdout
    assert "embedder" in human.stdout
    assert human.stderr.count("Cannot read component reports") == 1
    assert len(human.stderr.strip().splitlines()) == 1
    assert SECRET not in human.output


def redis_toml(url: str) -> str:
    return f"""
        [project]
        name = "{PROJECT}"

        [redis]
        url = "{url}"
        password = "${{REDIS_PASSWORD}}"

        [services.idle]
        command = "sleep 100"
    """


def test_status_skips_malformed_component_records_and_still_shows_everything(
    make_stack: MakeStack, redis_server: RedisServer, target: RedisTarget
) -> None:
    """A heartbeat stamped past year 9999 and a stray key of another type are skipped with
    one warning; the services and the good component are shown and status exits 0.
    """
    stack = make_stack(redis_toml(target.url), env=f"REDIS_PASSWORD={PASSWORD}\n")
    Agent("worker", url=target.url, password=PASSWORD, project=PROJECT).heartbeat()
    client = redis_server.client()
    client.hset(
        f"opsctl:{PROJECT}:component:bad:1@h",
        mapping={"pid": "1", "host": "h", "status": "ok", "last_seen": "99999999999999"},
    )
    client.set(f"opsctl:{PROJECT}:component:notahash", "x")

    document = status_json(stack)
    assert [row["name"] for row in document["services"]] == ["idle"]  # type: ignore[attr-defined]
    assert [c["component"] for c in document["components"]] == ["worker"]  # type: ignore[attr-defined]
    assert document["components_error"] is None

    human = stack.cli("status")
    assert human.exit_code == 0, human.output
    assert human.stdout.splitlines()[1].startswith("idle ")
    assert any(line.startswith("worker ") for line in human.stdout.splitlines())
    [warning] = human.stderr.strip().splitlines()
    assert warning.startswith("warning: Ignored 2 malformed component records")


def test_status_with_a_server_answering_nonsense_says_so_in_one_line(
    make_stack: MakeStack, garbage_server: Callable[[bytes], GarbageServer]
) -> None:
    """Something that is not Redis at the Redis address is reported like a Redis that is
    down: services shown, exit 0, one line on stderr, never a crash.
    """
    server = garbage_server(b"*1\r\n$1\r\nx\r\n")
    stack = make_stack(redis_toml(server.url), env=f"REDIS_PASSWORD={PASSWORD}\n")

    document = status_json(stack)
    assert document["components"] == []
    error = document["components_error"]
    assert isinstance(error, str)
    assert error.startswith(f"Cannot read component reports: Redis at {server.url} ")

    human = stack.cli("status")
    assert human.exit_code == 0, human.output
    assert "idle" in human.stdout
    [line] = human.stderr.strip().splitlines()
    assert line.startswith("warning: Cannot read component reports")


def test_status_masks_the_redis_password_in_what_a_component_reported(
    make_stack: MakeStack, target: RedisTarget
) -> None:
    """A component that puts the Redis password into its status detail does not get it
    printed: the table and --json show it masked.
    """
    stack = make_stack(redis_toml(target.url), env=f"REDIS_PASSWORD={PASSWORD}\n")
    agent = Agent("worker", url=target.url, password=PASSWORD, project=PROJECT)
    agent.set_status("degraded", f"reloading {PASSWORD} model")

    document = status_json(stack)
    [component] = document["components"]  # type: ignore[misc]
    assert component["detail"] == f"reloading {mask(PASSWORD)} model"
    human = stack.cli("status")
    assert human.exit_code == 0, human.output
    assert f"reloading {mask(PASSWORD)} model" in human.stdout
    assert PASSWORD not in human.output


def test_status_without_a_stack_redis_lists_no_components(tmp_path: Path) -> None:
    """A project with no Redis has nothing to read: no components, no error."""
    config = write_project(tmp_path / "p", '[services.idle]\ncommand = "sleep 100"\n')
    from tests.support import run_cli

    result = run_cli("-c", str(config), "status", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["components"], document["components_error"]) == ([], None)


def test_program_environment_carries_project_and_redis_without_overriding_the_service(
    tmp_path: Path,
) -> None:
    """Every program gets OPSCTL_PROJECT, OPSCTL_REDIS_URL and OPSCTL_REDIS_PASSWORD; what
    the service or .env sets itself wins.
    """
    config = write_project(
        tmp_path / "p",
        """
        [project]
        name = "envtest"
        [redis]
        url = "redis://127.0.0.1:7601/2"
        password = "${REDIS_PASSWORD}"
        [services.plain]
        command = "sleep 100"
        [services.custom]
        command = "sleep 100"
        environment = { OPSCTL_PROJECT = "chosen", OPSCTL_REDIS_URL = "redis://127.0.0.1:7602/0" }
        """,
        env=f"REDIS_PASSWORD={SECRET}\nOPSCTL_REDIS_PASSWORD=from-dotenv-pass\n",
    )
    project = load_project(config)

    plain = program_spec(project, "plain")["environment"]
    assert plain["OPSCTL_PROJECT"] == "envtest"
    assert plain["OPSCTL_REDIS_URL"] == "redis://127.0.0.1:7601/2"
    assert plain["OPSCTL_REDIS_PASSWORD"] == "from-dotenv-pass"
    custom = program_spec(project, "custom")["environment"]
    assert custom["OPSCTL_PROJECT"] == "chosen"
    assert custom["OPSCTL_REDIS_URL"] == "redis://127.0.0.1:7602/0"


def test_program_environment_without_redis_names_only_the_project(tmp_path: Path) -> None:
    """No Redis in the project: the agent's URL and password are not set at all."""
    config = write_project(tmp_path / "p", '[services.idle]\ncommand = "sleep 100"\n')
    environment = program_spec(load_project(config), "idle")["environment"]
    assert environment["OPSCTL_PROJECT"] == "p"
    assert "OPSCTL_REDIS_URL" not in environment
    assert "OPSCTL_REDIS_PASSWORD" not in environment


def test_redis_password_is_in_the_private_spec_file_never_in_supervisord_conf(
    tmp_path: Path,
) -> None:
    """The rendered state keeps the password in the 0600 launch spec only."""
    from opsctl.runtime import get_runtime
    from opsctl.runtime._stack import Stack

    config = write_project(
        tmp_path / "p", stack_toml(free_port()), env=f"REDIS_PASSWORD={SECRET}\n"
    )
    stack = Stack(get_runtime(load_project(config)))
    conf = stack.write_state()

    spec_file = stack.paths.spec_file("embedder")
    assert stat.S_IMODE(spec_file.stat().st_mode) == 0o600
    spec = json.loads(spec_file.read_text())
    assert spec["environment"]["OPSCTL_REDIS_PASSWORD"] == SECRET
    assert SECRET not in conf
    assert SECRET not in stack.paths.conf_file.read_text()
