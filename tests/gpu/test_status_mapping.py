"""GPU processes mapped to the stack's services: real process trees, a real pid namespace,
a real supervised stack, and the unified container on a real Docker Engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot
from opsctl.gpu._nvml import RECORDED_ENV
from opsctl.gpu._status import (
    StackPids,
    innermost_pid,
    map_processes,
    namespace_pids,
    parent_pid,
    pid_namespace,
    service_of,
)
from tests.gpu.standin.library import Standin, nvml_standin, standin_library
from tests.runtime.conftest import PYTHON, StackProject, make_stack
from tests.runtime.test_docker_stack import docker_stack, image
from tests.support import run_cli, wait_for

# Fixtures used below.
__all__ = ["docker_stack", "image", "make_stack", "nvml_standin", "standin_library"]

MakeStack = Callable[..., StackProject]
GIB = 1 << 30

# A program that starts a child and then waits: the child holds "GPU memory" too.
PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def device(processes: Sequence[tuple[int, int | None]], *, index: int = 0) -> GpuDevice:
    return GpuDevice(
        index=index,
        uuid=f"GPU-{index:08d}",
        name="NVIDIA H100 80GB HBM3",
        memory_used_bytes=sum(used or 0 for _, used in processes),
        memory_total_bytes=80 * GIB,
        utilization_percent=50.0,
        memory_utilization_percent=20.0,
        temperature_celsius=50.0,
        power_watts=300.0,
        power_limit_watts=700.0,
        sm_clock_mhz=1980,
        memory_clock_mhz=2619,
        ecc_corrected=0,
        ecc_uncorrected=0,
        mig_mode=False,
        compute_capability=(9, 0),
        architecture="Hopper",
        processes=tuple(GpuProcess(pid=pid, used_bytes=used) for pid, used in processes),
    )


def snapshot(*devices: GpuDevice) -> GpuSnapshot:
    return GpuSnapshot(
        driver_version="550.54.15",
        cuda_driver_version="12.4",
        nvml_version="12.550.54.15",
        devices=devices,
        host="test-host",
        taken_at=datetime.now(UTC),
    )


def write_recording(path: Path, processes: Sequence[tuple[int, int | None]]) -> Path:
    """A recording of one H100 whose processes are ``processes`` (pid, bytes)."""
    document = {
        "format": "opsctl-gpu-snapshot",
        "version": 1,
        "host": "test-host",
        "driver_version": "550.54.15",
        "devices": [
            {
                "index": 0,
                "uuid": "GPU-5d6f1a2b-7c3e-4f90-8a1b-2c3d4e5f6a7b",
                "name": "NVIDIA H100 80GB HBM3",
                "memory_used_bytes": sum(used or 0 for _, used in processes),
                "memory_total_bytes": 80 * GIB,
                "processes": [{"pid": pid, "used_bytes": used} for pid, used in processes],
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start processes for a test; each is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str]) -> subprocess.Popen[str]:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def test_child_of_a_program_belongs_to_its_service(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    """A process started by a program's process maps to the program's service."""
    parent = spawn([sys.executable, "-c", PARENT_WITH_CHILD])
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(600)"])

    assert parent_pid(child_pid) == parent.pid
    assert service_of(child_pid, {parent.pid: "worker"}) == "worker"
    assert service_of(parent.pid, {parent.pid: "worker"}) == "worker"
    assert service_of(stranger.pid, {parent.pid: "worker"}) is None
    assert service_of(2**22 + 1, {parent.pid: "worker"}) is None  # beyond any pid_max


def test_mapping_marks_orphans_only_when_the_stack_is_known(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    """With known programs an unheld process is an orphan; with an unknown stack it is not."""
    worker = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    snap = snapshot(device([(worker.pid, 2 * GIB)]), device([(stranger.pid, GIB)], index=1))

    known = map_processes(snap, StackPids(programs={worker.pid: "worker"}))
    unknown = map_processes(snap, StackPids(note="no project", known=False))

    assert [(o.gpu_index, o.service, o.orphan) for o in known] == [
        (0, "worker", False),
        (1, None, True),
    ]
    assert [o.orphan for o in unknown] == [False, False]
    assert known[0].used_bytes == 2 * GIB
    assert known[0].gpu_uuid == "GPU-00000000"


@pytest.mark.skipif(os.geteuid() != 0, reason="a new pid namespace needs root")
def test_pid_namespace_translation_with_a_real_namespace(
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    """Processes in another pid namespace are found by it and translated to host pids."""
    unshare = shutil.which("unshare")
    assert unshare is not None
    holder = spawn(
        [unshare, "--pid", "--fork", "--kill-child", sys.executable, "-c", PARENT_WITH_CHILD]
    )
    assert holder.stdout is not None
    inner_child = int(holder.stdout.readline())  # its pid inside the namespace

    def first_in_namespace() -> int | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and parent_pid(int(entry.name)) == holder.pid:
                return int(entry.name)
        return None

    wait_for(lambda: first_in_namespace() is not None, timeout_seconds=10, message="namespace")
    init = first_in_namespace()
    assert init is not None
    namespace = pid_namespace(init)
    assert namespace is not None
    assert namespace != pid_namespace(os.getpid())
    assert innermost_pid(init) == 1

    inside_to_host = namespace_pids(namespace)
    host_child = inside_to_host[inner_child]
    assert inside_to_host[1] == init
    assert parent_pid(host_child) == init

    # As for the unified container: supervisord's pid 1 program holds the child.
    stack = StackPids(programs={init: "worker"}, container_namespace=namespace)
    outsider = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    owners = map_processes(snapshot(device([(host_child, GIB), (outsider.pid, GIB)])), stack)
    assert [(o.pid, o.service, o.in_container, o.orphan) for o in owners] == [
        (host_child, "worker", True, False),
        (outsider.pid, None, False, True),
    ]


def worker_stack(make_stack: MakeStack, tmp_path: Path) -> StackProject:
    script = tmp_path / "worker.py"
    script.write_text(PARENT_WITH_CHILD)
    return make_stack(
        f"""
        [services.worker]
        command = "{PYTHON} {script}"
        start_seconds = 1
        stop_timeout_seconds = 5
        """
    )


def children_of(pid: int) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid
    ]


def test_status_maps_a_supervised_program_and_its_child(
    make_stack: MakeStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    """With a real supervisord: the program and its child belong to 'worker', a stranger
    is an orphan; the metrics count the memory per service.
    """
    stack = worker_stack(make_stack, tmp_path)
    assert stack.cli("up").exit_code == 0
    program = stack.pid("worker")
    wait_for(lambda: bool(children_of(program)), timeout_seconds=20, message="worker's child")
    (child,) = children_of(program)
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    recording = write_recording(
        tmp_path / "answers.json", [(program, 2 * GIB), (child, GIB), (stranger.pid, 3 * GIB)]
    )
    monkeypatch.setenv(RECORDED_ENV, str(recording))

    result = stack.cli("gpu", "status", "--json")
    table = stack.cli("gpu", "status")
    problems = stack.cli("-q", "gpu", "status")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["mapping"] == {"known": True, "note": None}
    assert [(p["pid"], p["service"], p["orphan"]) for p in document["processes"]] == sorted(
        [(program, "worker", False), (child, "worker", False), (stranger.pid, None, True)]
    )
    assert table.exit_code == 0, table.output
    stranger_row = next(line for line in table.stdout.splitlines() if f" {stranger.pid} " in line)
    assert "orphan" in stranger_row
    assert "3.0 GiB" in stranger_row
    # A recording gives no process names ("?"): they belong to the host it was taken on.
    assert problems.stdout.strip() == (
        f"GPU 0: pid {stranger.pid} (?) holds 3.0 GiB and belongs to no service"
    )


def test_status_with_the_stack_down_calls_every_process_an_orphan(
    make_stack: MakeStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    """A stack that is not running holds nothing: the mapping is known, and says why."""
    stack = worker_stack(make_stack, tmp_path)
    stranger = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    monkeypatch.setenv(
        RECORDED_ENV, str(write_recording(tmp_path / "a.json", [(stranger.pid, GIB)]))
    )

    result = stack.cli("gpu", "status", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["mapping"] == {"known": True, "note": "the stack is not running"}
    assert document["processes"][0]["orphan"] is True


def test_standin_lists_the_supervised_program(
    make_stack: MakeStack, tmp_path: Path, nvml_standin: Standin
) -> None:
    """End to end through pynvml and the stand-in: the program's pid maps to its service."""
    stack = worker_stack(make_stack, tmp_path)
    assert stack.cli("up").exit_code == 0
    program = stack.pid("worker")
    nvml_standin.answer(
        [{"name": "NVIDIA GH200 480GB", "uuid": "GPU-gh", "process": [(program, 5 * GIB)]}]
    )

    result = nvml_standin.run_cli("-c", str(stack.config), "gpu", "status", "--json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    (process,) = json.loads(result.stdout)["processes"]
    assert (process["pid"], process["service"], process["used_bytes"]) == (
        program,
        "worker",
        5 * GIB,
    )


@pytest.mark.slow
def test_status_maps_processes_in_the_unified_container(
    docker_stack: Callable[..., StackProject], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Docker runtime: supervisord's pids are the container's; the program's child maps to
    its service, a process exec'd into the container is an orphan marked in the container.
    """
    stack = docker_stack(
        """
        [services.worker]
        command = "python3 worker.py"
        start_seconds = 1
        stop_timeout_seconds = 5
        """
    )
    (stack.root / "worker.py").write_text(PARENT_WITH_CHILD.replace("sys.executable", "'python3'"))
    assert stack.cli("up").exit_code == 0
    inside = stack.pid("worker")
    subprocess.run(["docker", "exec", "-d", "opsctl-stack", "sleep", "601"], check=True)

    def host_pids() -> dict[str, list[int]]:
        top = subprocess.run(
            ["docker", "top", "opsctl-stack", "-eo", "pid,args"],
            capture_output=True,
            text=True,
            check=True,
        )
        found: dict[str, list[int]] = {}
        for line in top.stdout.splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            found.setdefault(args.strip(), []).append(int(pid))
        return found

    wait_for(
        lambda: (
            "sleep 601" in host_pids() and any("time.sleep(600)" in args for args in host_pids())
        ),
        timeout_seconds=30,
        message="the worker's child and the exec'd process",
    )
    pids = host_pids()
    program = pids["python3 worker.py"][0]
    child = next(pid for args, found in pids.items() if "time.sleep(600)" in args for pid in found)
    stray = pids["sleep 601"][0]
    assert program != inside  # the host sees other pids than supervisord reports
    recording = write_recording(
        tmp_path / "answers.json", [(program, GIB), (child, 2 * GIB), (stray, 3 * GIB)]
    )
    monkeypatch.setenv(RECORDED_ENV, str(recording))

    result = stack.cli("gpu", "status", "--json")

    assert result.exit_code == 0, result.output
    rows = {p["pid"]: p for p in json.loads(result.stdout)["processes"]}
    assert (rows[program]["service"], rows[program]["in_container"]) == ("worker", True)
    assert (rows[child]["service"], rows[child]["in_container"]) == ("worker", True)
    assert (rows[stray]["service"], rows[stray]["orphan"], rows[stray]["in_container"]) == (
        None,
        True,
        True,
    )


def test_broken_project_config_is_an_error_not_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a project gpu status still works; a project whose config is broken exits 2."""
    monkeypatch.setenv(RECORDED_ENV, str(write_recording(tmp_path / "a.json", [(4191001, GIB)])))
    outside = run_cli("gpu", "status", "--json")
    (tmp_path / "opsctl.toml").write_text("[services.worker\n")

    broken = run_cli("gpu", "status", "--json")

    assert outside.exit_code == 0, outside.output
    assert json.loads(outside.stdout)["mapping"]["known"] is False
    assert broken.exit_code == 2
    assert "opsctl.toml" in broken.stderr
