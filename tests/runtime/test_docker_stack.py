"""The docker runtime against a real Docker Engine, with an image built here.

The engine is started (and the images built) by scripts/docker-engine.sh and
scripts/docker-test-images.sh; where no engine can be had, these tests skip and say why.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.runtime import get_runtime
from opsctl.runtime.docker import required_stop_seconds
from tests.runtime.conftest import StackProject
from tests.support import free_port, run_cli, wait_for, write_project

ROOT = Path(__file__).resolve().parents[2]
MakeStack = Callable[..., StackProject]


@pytest.fixture(scope="session")
def image() -> str:
    """The project's image, built on a local base; skips when no engine can be had."""
    engine = subprocess.run(
        [ROOT / "scripts" / "docker-engine.sh"], capture_output=True, text=True, check=False
    )
    if engine.returncode != 0:
        pytest.skip(f"no Docker Engine could be started here: {engine.stderr.strip()[-300:]}")
    built = subprocess.run(
        [ROOT / "scripts" / "docker-test-images.sh"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if built.returncode != 0:
        pytest.fail(f"the test images did not build:\n{built.stderr[-2000:]}")
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture
def docker_stack(make_stack: MakeStack, image: str) -> Iterator[Callable[..., StackProject]]:
    """Projects on the docker runtime; their containers are removed after the test."""
    made: list[StackProject] = []

    def make(services: str, *, container: str = "", name: str = "stack") -> StackProject:
        toml = (
            f'[runtime]\nkind = "docker"\n[container]\nimage = "{image}"\n{container}\n{services}'
        )
        project = make_stack(toml, name=name)
        made.append(project)
        return project

    yield make
    for project in made:
        project.cli("down")
        subprocess.run(
            ["docker", "rm", "-f", f"opsctl-{project.root.name}"], capture_output=True, check=False
        )


def redis_service(port: int, *, stop_timeout: int = 10) -> str:
    return f"""
        [services.redis]
        command = "redis-server --port {{port}} --bind 127.0.0.1 --save '' --appendonly no"
        port = {port}
        start_seconds = 2
        stop_timeout_seconds = {stop_timeout}
        [[services.redis.health]]
        kind = "redis"
    """


def inspect(name: str) -> dict[str, object]:
    result = subprocess.run(
        ["docker", "inspect", name], capture_output=True, text=True, check=False
    )
    return json.loads(result.stdout)[0] if result.returncode == 0 else {}


def test_up_status_health_and_down_in_the_container(
    docker_stack: Callable[..., StackProject],
) -> None:
    """up creates a labelled host-network container, health passes, down removes it."""
    stack = docker_stack(redis_service(free_port()))
    up = stack.cli("up")
    assert up.exit_code == 0, up.output
    container = inspect("opsctl-stack")
    assert container["State"]["Running"] is True  # type: ignore[index]
    assert container["HostConfig"]["NetworkMode"] == "host"  # type: ignore[index]
    assert container["Config"]["Labels"]["org.opsctl.project"] == "stack"  # type: ignore[index]
    assert stack.status()["redis"]["state"] in {"STARTING", "RUNNING"}
    health = stack.cli("health", "--json")
    assert health.exit_code == 0, health.stdout

    begin = time.monotonic()
    assert stack.cli("down").exit_code == 0
    assert time.monotonic() - begin < required_stop_seconds(load_project(stack.config)) + 10
    assert inspect("opsctl-stack") == {}


def test_killed_program_is_restarted_inside_and_health_recovers(
    docker_stack: Callable[..., StackProject],
) -> None:
    """A program killed inside the container comes back; health fails, then passes."""
    stack = docker_stack(redis_service(free_port()))
    assert stack.cli("up").exit_code == 0
    pid = stack.pid("redis")
    subprocess.run(["docker", "exec", "opsctl-stack", "kill", "-9", str(pid)], check=True)
    assert stack.cli("health").exit_code == 1
    wait_for(lambda: stack.cli("health").exit_code == 0, timeout_seconds=20, message="recovery")
    assert stack.pid("redis") != pid


def test_unchanged_config_keeps_the_container_and_a_change_recreates_it(
    docker_stack: Callable[..., StackProject],
) -> None:
    """A second up leaves the container alone; a changed container setting replaces it."""
    stack = docker_stack(redis_service(free_port()))
    assert stack.cli("up").exit_code == 0
    first = inspect("opsctl-stack")["Id"]
    assert stack.cli("up").exit_code == 0
    assert inspect("opsctl-stack")["Id"] == first

    stack.config.write_text(
        stack.config.read_text().replace("[container]", '[container]\nlabels = { team = "ml" }')
    )
    assert stack.cli("up").exit_code == 0
    replaced = inspect("opsctl-stack")
    assert replaced["Id"] != first
    assert replaced["Config"]["Labels"]["team"] == "ml"  # type: ignore[index]


def test_exec_passes_the_exit_code_and_files_copy_out_and_in(
    docker_stack: Callable[..., StackProject], tmp_path: Path
) -> None:
    """exec returns the command's exit code; a file copied out and back is the same."""
    port = free_port()
    stack = docker_stack(redis_service(port))
    assert stack.cli("up").exit_code == 0
    assert stack.cli("exec", "redis", "--", "sh", "-c", "exit 7").exit_code == 7

    runtime = get_runtime(load_project(stack.config))
    runtime.exec(
        "redis", ["sh", "-c", "mkdir -p /srv/data && printf 'hello\\n' > /srv/data/greeting.txt"]
    )
    runtime.copy_out("/srv/data/greeting.txt", tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    (tmp_path / "out.txt").write_text("changed\n")
    runtime.copy_in(tmp_path / "out.txt", "/srv/data/back.txt")
    runtime.copy_out("/srv/data/back.txt", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "changed\n"


IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)"


def test_program_ignoring_sigterm_is_killed_and_the_container_still_stops(
    docker_stack: Callable[..., StackProject],
) -> None:
    """A program that ignores SIGTERM is killed after its stop timeout; down completes."""
    stack = docker_stack(
        f"""
        [services.stubborn]
        command = ["python3", "-c", "{IGNORE_TERM}"]
        stop_timeout_seconds = 2
        """
    )
    assert stack.cli("up").exit_code == 0
    begin = time.monotonic()
    down = stack.cli("down", "--json")
    elapsed = time.monotonic() - begin
    assert down.exit_code == 0, down.output
    assert "killed after its stop timeout" in json.loads(down.stdout)["services"][0]["detail"]
    assert 2 <= elapsed < 20
    assert inspect("opsctl-stack") == {}


def test_container_stop_timeout_covers_supervisords_shutdown(
    docker_stack: Callable[..., StackProject],
) -> None:
    """The container's StopTimeout is at least the sum over priority groups."""
    stack = docker_stack(
        redis_service(free_port(), stop_timeout=7)
        + '\n[services.worker]\ncommand = "sleep 1000"\ndepends_on = ["redis"]\n'
        + "stop_timeout_seconds = 4\n"
    )
    assert stack.cli("up").exit_code == 0
    needed = required_stop_seconds(load_project(stack.config))
    assert needed == 11
    assert inspect("opsctl-stack")["Config"]["StopTimeout"] >= needed  # type: ignore[index,operator]


def test_configured_stop_timeout_too_short_is_a_config_error(tmp_path: Path) -> None:
    """container.stop_timeout_seconds below supervisord's need is rejected at load."""
    config = write_project(
        tmp_path,
        "[container]\nstop_timeout_seconds = 5\n"
        '[services.a]\ncommand = "sleep 1"\nstop_timeout_seconds = 9\n',
    )
    result = run_cli("-c", str(config), "config", "validate")
    assert result.exit_code == 2
    assert "container.stop_timeout_seconds" in result.stderr


def test_unreachable_engine_exits_4_naming_the_socket(tmp_path: Path) -> None:
    """An engine that does not answer gives exit 4 and names the address tried."""
    config = write_project(
        tmp_path,
        '[runtime]\nkind = "docker"\nhost = "unix:///nonexistent/docker.sock"\n'
        '[services.a]\ncommand = "sleep 1"\n',
    )
    result = run_cli("-c", str(config), "up", "--skip-verify")
    assert result.exit_code == 4
    assert "unix:///nonexistent/docker.sock" in result.stderr
    assert "Traceback" not in result.output


def test_missing_image_exits_4_with_the_build_command(
    docker_stack: Callable[..., StackProject],
) -> None:
    """A missing image gives exit 4 and the command that builds it."""
    stack = docker_stack('[services.a]\ncommand = "sleep 1000"\n')
    stack.config.write_text(
        stack.config.read_text().replace('image = "', 'image = "opsctl-missing-')
    )
    result = stack.cli("up")
    assert result.exit_code == 4
    assert "scripts/build-image.sh" in result.stderr


def test_container_not_made_by_opsctl_is_left_alone(
    docker_stack: Callable[..., StackProject], image: str
) -> None:
    """A container with the configured name that opsctl did not create is refused and kept."""
    subprocess.run(
        ["docker", "create", "--name", "opsctl-stack", "--network", "none", image, "sleep", "1"],
        capture_output=True,
        check=True,
    )
    stack = docker_stack('[services.a]\ncommand = "sleep 1000"\n')
    result = stack.cli("up")
    assert result.exit_code == 1
    assert "opsctl did not create it" in result.stderr
    assert inspect("opsctl-stack")["Config"]["Labels"] in ({}, None)  # type: ignore[index]
    subprocess.run(["docker", "rm", "-f", "opsctl-stack"], capture_output=True, check=False)


def test_image_that_exits_at_once_reports_its_last_log_lines(
    docker_stack: Callable[..., StackProject],
) -> None:
    """A container whose supervisord cannot start is reported with the lines it printed."""
    from opsctl.errors import OperationFailedError
    from opsctl.runtime import Stack

    stack = docker_stack('[services.a]\ncommand = "sleep 1000"\n')
    runtime = get_runtime(load_project(stack.config))
    Stack(runtime).write_state()
    # A conf that supervisord cannot read makes it print why and exit.
    runtime.paths.conf_file.write_text("[supervisord]\nnot a valid line\n")
    with pytest.raises(OperationFailedError) as raised:
        runtime.start_supervisor()
    assert "exited at once" in raised.value.message
    assert "Error" in (raised.value.hint or "")
    assert inspect("opsctl-stack") == {}


def test_gpu_request_without_nvidia_runtime_warns_or_exits_4(
    docker_stack: Callable[..., StackProject],
) -> None:
    """Without the NVIDIA runtime, gpus = "all" starts without GPUs and warns; with
    gpu.require it exits 4 and leaves no container.
    """
    stack = docker_stack('[services.a]\ncommand = "sleep 1000"\n', container='gpus = "all"')
    result = stack.cli("-v", "up")
    assert result.exit_code == 0, result.output
    assert "starting without them" in result.stderr
    assert stack.cli("down").exit_code == 0

    stack.config.write_text(stack.config.read_text() + "\n[gpu]\nrequire = true\n")
    required = stack.cli("up", "--skip-verify")
    assert required.exit_code == 4
    assert inspect("opsctl-stack") == {}


def write_wheel(folder: Path, name: str, version: str) -> Path:
    """Write a pure-Python wheel of a one-module package; pip installs it without a network."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    path = folder / f"{name}-{version}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(text)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def test_service_environment_is_built_into_the_image_and_used(
    docker_stack: Callable[..., StackProject], image: str
) -> None:
    """A service's own environment is built with the image and its program runs in it."""
    stack = docker_stack(
        "[services.app]\n"
        'command = ["python", "-c", "import hello_img, os, time; '
        "print('version', hello_img.VERSION, os.environ['VIRTUAL_ENV'], flush=True); "
        'time.sleep(1000)"]\n'
        'python = { requirements = "requirements.txt" }\n'
    )
    wheel = write_wheel(stack.root, "hello_img", "1.5")
    (stack.root / "requirements.txt").write_text(f"--no-index\n./{wheel.name}\n")
    bases = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "opsctl-test-base"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tag = "opsctl-unified:test-venvs"
    built = subprocess.run(
        [ROOT / "scripts" / "build-image.sh", tag],
        env={**os.environ, "OPSCTL_CONFIG": str(stack.config), "BASE_IMAGE": bases[0]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    try:
        stack.config.write_text(stack.config.read_text().replace(image, tag))
        assert stack.cli("up").exit_code == 0
        wait_for(
            lambda: "version" in stack.cli("logs", "app").stdout, timeout_seconds=10, message="log"
        )
        assert stack.cli("logs", "app").stdout.strip() == "version 1.5 /opt/venvs/app"
    finally:
        stack.cli("down")
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_redis_in_the_container_is_backed_up_and_restored_through_file_copy(
    docker_stack: Callable[..., StackProject], tmp_path: Path
) -> None:
    """With the docker runtime, the snapshot is copied out of the container, and a restore
    copies it back in, restarts the program and finds the keys again.
    """
    import redis

    port = free_port()
    destination = tmp_path / "backups"
    stack = docker_stack(
        redis_service(port) + f'\n[backup]\nredis = "redis"\ndestination = "{destination}"\n'
    )
    assert stack.cli("up").exit_code == 0
    client = redis.Redis(port=port, socket_timeout=5)
    client.mset({"alpha": "1", "beta": "2"})

    run = stack.cli("backup", "run", "--json")
    assert run.exit_code == 0, run.output
    (source,) = json.loads(run.stdout)["sources"]
    assert (source["name"], source["metadata"]["method"]) == ("redis", "container")
    assert source["metadata"]["keys"] == 2

    client.flushall()
    restore = stack.cli("backup", "restore", "latest", "--source", "redis", "--yes")
    assert restore.exit_code == 0, restore.output
    client = redis.Redis(port=port, socket_timeout=5)
    wait_for(lambda: client.get("alpha") == b"1", timeout_seconds=30, message="restored keys")
    assert client.get("beta") == b"2"
