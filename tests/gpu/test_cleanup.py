"""``gpu cleanup``: plans from snapshots and thresholds, and applying them for real: a
component answering through a real Redis, a real supervised service restarted, a real
process killed as an orphan. The GPU side is a recorded snapshot naming those real pids.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsctl.config._model import GpuPolicySection
from opsctl.gpu._cleanup import kill_process, plan_cleanup
from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot
from tests.runtime.conftest import StackProject, make_stack  # noqa: F401  (fixture)
from tests.support import free_port, pid_alive, run_cli, start_redis, wait_for, write_project

GIB = 1 << 30
POLICY = GpuPolicySection(warn_percent=80, soft_percent=90, hard_percent=97)

# An application process: a stand-in CuPy already imported, with 512 MiB cached in its
# pool, and an agent serving gpu.free_caches through opsctl.gpu.
COMPONENT = """
import sys, time, types
pool = types.SimpleNamespace(cached=512 << 20)
cupy = types.ModuleType("cupy")
cupy.get_default_memory_pool = lambda: types.SimpleNamespace(
    total_bytes=lambda: pool.cached, used_bytes=lambda: 0,
    free_all_blocks=lambda: setattr(pool, "cached", 0))
cupy.get_default_pinned_memory_pool = lambda: types.SimpleNamespace(
    n_free_blocks=lambda: 0, free_all_blocks=lambda: None)
sys.modules["cupy"] = cupy

import opsctl.gpu
from opsctl.agent import Agent

agent = Agent("worker")
opsctl.gpu.serve_requests(agent)
agent.start(interval_seconds=0.5)
print("serving", flush=True)
while True:
    time.sleep(1)
"""


def device(
    index: int, used_gib: float, processes: list[tuple[int, float]], *, total_gib: float = 80
) -> GpuDevice:
    return GpuDevice(
        index=index,
        uuid=f"GPU-{index}",
        name="NVIDIA H100 80GB HBM3",
        memory_used_bytes=int(used_gib * GIB),
        memory_total_bytes=int(total_gib * GIB),
        utilization_percent=None,
        memory_utilization_percent=None,
        temperature_celsius=None,
        power_watts=None,
        power_limit_watts=None,
        sm_clock_mhz=None,
        memory_clock_mhz=None,
        ecc_corrected=None,
        ecc_uncorrected=None,
        mig_mode=False,
        compute_capability=(9, 0),
        architecture="Hopper",
        processes=tuple(GpuProcess(pid, int(gib * GIB), "python3") for pid, gib in processes),
    )


def snapshot(*devices: GpuDevice) -> GpuSnapshot:
    return GpuSnapshot("550.90.07", "12.4", "12.550", devices, "gpu-host", datetime.now(UTC))


SERVICES = {1001: "api", 1002: "worker", 1003: "worker"}


def test_below_every_threshold_there_is_nothing_to_do() -> None:
    """Under warn nothing is planned; orphans are still reported, not killed."""
    plan = plan_cleanup(snapshot(device(0, 40, [(1001, 30), (5000, 5)])), POLICY, SERVICES.get)

    assert (plan.level, plan.free_caches, plan.restart, plan.destructive) == (
        "none",
        False,
        None,
        False,
    )
    assert [orphan.pid for orphan in plan.orphans] == [5000]
    assert plan.steps() == [
        "report (kill with --kill-orphans) pid 5000 (python3) holding 5.0 GiB on GPU 0, "
        "no service's process"
    ]


def test_soft_threshold_asks_components_only() -> None:
    """At 92 %: free caches, restart nothing; not destructive, so no confirmation needed."""
    plan = plan_cleanup(snapshot(device(0, 73.6, [(1001, 40)])), POLICY, SERVICES.get)

    assert plan.level == "soft"
    assert plan.free_caches
    assert plan.restart is None
    assert not plan.destructive
    assert plan.devices[0].used_percent == 92.0


def test_hard_threshold_restarts_the_service_holding_most_on_the_hot_devices() -> None:
    """The service with the most memory summed over its processes on the devices past hard
    is restarted; memory on a cool device does not count.
    """
    hot = device(0, 78, [(1001, 30), (1002, 25), (1003, 20)])
    cool = device(1, 10, [(1001, 9)], total_gib=80)

    plan = plan_cleanup(snapshot(hot, cool), POLICY, SERVICES.get)

    assert plan.level == "hard"
    assert plan.restart == "worker"
    assert plan.restart_bytes == 45 * GIB
    assert plan.destructive
    assert plan.steps()[:2] == [
        "ask the stack's components to free GPU caches (gpu.free_caches, soft)",
        "restart service 'worker' (45.0 GiB of GPU memory)",
    ]


def test_a_forced_level_applies_whatever_the_usage() -> None:
    """--level hard on a quiet device still restarts the biggest holder on any device."""
    plan = plan_cleanup(
        snapshot(device(0, 8, [(1001, 5)]), device(1, 8, [(1002, 6)])),
        POLICY,
        SERVICES.get,
        level="hard",
    )
    assert (plan.level, plan.forced, plan.restart) == ("hard", True, "worker")
    assert plan.request_level == "hard"
    with pytest.raises(ValueError, match="unknown cleanup level 'max'"):
        plan_cleanup(snapshot(), POLICY, SERVICES.get, level="max")


def test_no_service_holding_memory_means_nothing_to_restart() -> None:
    """Past hard with only orphans on the device: the plan says there is nothing to restart."""
    plan = plan_cleanup(snapshot(device(0, 79, [(7000, 70)])), POLICY, SERVICES.get)

    assert plan.restart is None
    assert "no service of the stack holds GPU memory" in plan.notes[0]


def test_opsctl_itself_and_init_are_never_orphans() -> None:
    """Our own pid and pid 1 are listed in notes as never killed, not as orphans."""
    me = os.getpid()
    plan = plan_cleanup(
        snapshot(device(0, 50, [(me, 1), (1, 1), (7000, 2)])),
        POLICY,
        SERVICES.get,
        kill_orphans=True,
    )
    assert [orphan.pid for orphan in plan.orphans] == [7000]
    assert f"pid {me} is opsctl itself: it is never killed" in plan.notes
    assert "pid 1 is init: it is never killed" in plan.notes


def test_unknown_mapping_makes_no_orphans() -> None:
    """When the stack's processes cannot be read, nothing is called an orphan."""
    plan = plan_cleanup(
        snapshot(device(0, 50, [(7000, 2)])),
        POLICY,
        lambda _pid: None,
        kill_orphans=True,
        unmapped="the stack could not be reached",
    )
    assert plan.orphans == ()
    assert not plan.destructive
    assert "is unknown (the stack could not be reached)" in plan.notes[-1]


def test_kill_process_refuses_ourselves_and_escalates_to_sigkill() -> None:
    """Our own pid is refused; a process ignoring SIGTERM gets SIGKILL after the grace."""
    assert kill_process(os.getpid()).status == "skipped"
    assert kill_process(1).status == "skipped"
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\ntime.sleep(300)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert stubborn.stdout is not None
        stubborn.stdout.readline()
        outcome = kill_process(stubborn.pid, grace_seconds=0.5)
        assert outcome.status == "done"
        assert "SIGKILL" in outcome.detail
        assert stubborn.wait(timeout=10) == -signal.SIGKILL
    finally:
        stubborn.kill()


# Through the command, with real processes.


def record(path: Path, used_gib: float, holders: list[tuple[int, float]]) -> Path:
    """A recorded snapshot of one 80 GiB GPU at ``used_gib`` with these (pid, GiB) holders."""
    document = {
        "format": "opsctl-gpu-snapshot",
        "version": 1,
        "host": "gpu-host",
        "driver_version": "550.90.07",
        "cuda_driver_version": "12.4",
        "devices": [
            {
                "index": 0,
                "uuid": "GPU-aaaa",
                "name": "NVIDIA H100 80GB HBM3",
                "memory_used_bytes": int(used_gib * GIB),
                "memory_total_bytes": 80 * GIB,
                "compute_capability": [9, 0],
                "processes": [
                    {"pid": pid, "used_bytes": int(gib * GIB), "name": "python3"}
                    for pid, gib in holders
                ],
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process for a recorded snapshot to list as holding GPU memory."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    write_project(root, "[gpu.policy]\nwarn_percent = 80\nsoft_percent = 90\nhard_percent = 97\n")
    monkeypatch.chdir(root)
    return root


def test_dry_run_shows_the_plan_and_changes_nothing(
    project: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run --kill-orphans prints the kill and the orphan survives."""
    recording = record(project / "gpu.json", 50, [(sleeper.pid, 4)])
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    result = run_cli("gpu", "cleanup", "--dry-run", "--kill-orphans")

    assert result.exit_code == 0, result.output
    assert f"1. kill pid {sleeper.pid} (python3) holding 4.0 GiB on GPU 0" in result.stdout
    assert "dry run: nothing was changed." in result.stdout
    assert sleeper.poll() is None

    document = json.loads(run_cli("gpu", "cleanup", "--dry-run", "--json").stdout)
    assert document["dry_run"] is True
    assert document["plan"]["orphans"][0]["pid"] == sleeper.pid
    assert document["plan"]["kill_orphans"] is False


def test_killing_needs_yes_off_a_terminal(
    project: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a terminal and without --yes, nothing is killed and the exit code is 2."""
    recording = record(project / "gpu.json", 50, [(sleeper.pid, 4)])
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    result = run_cli("gpu", "cleanup", "--kill-orphans")

    assert result.exit_code == 2
    assert "standard input is not a terminal" in result.stderr
    assert "--yes" in result.stderr
    assert sleeper.poll() is None


def test_orphan_is_killed_with_yes(
    project: Path, sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--kill-orphans --yes ends a process holding GPU memory that no service started, and
    leaves opsctl itself alone though the snapshot lists it too.
    """
    recording = record(project / "gpu.json", 50, [(sleeper.pid, 4), (os.getpid(), 1)])
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    result = run_cli("gpu", "cleanup", "--kill-orphans", "--yes", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [(s["action"], s["target"], s["status"]) for s in document["steps"]] == [
        ("kill", str(sleeper.pid), "done")
    ]
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert pid_alive(os.getpid())


def test_below_thresholds_nothing_happens(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 50 % with no orphans to kill, cleanup says so and exits 0."""
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(record(project / "gpu.json", 40, [])))

    result = run_cli("gpu", "cleanup")

    assert result.exit_code == 0
    assert "Below every threshold: nothing to clean up." in result.stdout


def test_no_gpu_exits_4(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a usable GPU cleanup exits 4 with the reason, no traceback."""
    path = project / "none.json"
    path.write_text(
        json.dumps(
            {"format": "opsctl-gpu-snapshot", "version": 1, "nvml_error": "DRIVER_NOT_LOADED"}
        )
    )
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))

    result = run_cli("gpu", "cleanup", "--yes")

    assert result.exit_code == 4
    assert result.stderr.startswith("error: No GPU")
    assert "Traceback" not in result.output


def test_soft_cleanup_asks_components_through_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above soft, a real component process serving gpu.free_caches through a real Redis
    frees its CuPy pool and its reply, with the bytes freed, is in the report.
    """
    server = start_redis(tmp_path / "redis")
    component: subprocess.Popen[str] | None = None
    try:
        root = tmp_path / "project"
        write_project(root, f'[project]\nname = "shop"\n[redis]\nurl = "{server.url}"\n')
        monkeypatch.chdir(root)
        env = {**os.environ, "OPSCTL_REDIS_URL": server.url, "OPSCTL_PROJECT": "shop"}
        component = subprocess.Popen(
            [sys.executable, "-c", COMPONENT], env=env, stdout=subprocess.PIPE, text=True
        )
        assert component.stdout is not None
        assert component.stdout.readline().strip() == "serving"
        wait_for(lambda: _registered(server.url, "shop"), timeout_seconds=15, message="agent")
        recording = record(root / "gpu.json", 73.6, [(component.pid, 20)])
        monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

        result = run_cli("gpu", "cleanup", "--json")

        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert document["plan"]["level"] == "soft"
        step = document["steps"][0]
        assert (step["action"], step["status"]) == ("free_caches", "done")
        assert step["freed_bytes"] == 512 << 20
        reply = step["replies"][0]
        assert (reply["component"], reply["pid"], reply["ok"]) == ("worker", component.pid, True)
        assert reply["frameworks"]["cupy"]["freed_bytes"] == 512 << 20
        assert document["freed_bytes"] == 512 << 20
        # The component is no service of this (stopped) stack: reported, never killed.
        assert document["plan"]["orphans"][0]["pid"] == component.pid
        assert component.poll() is None

        # An operator's --level hard asks the components for their hard cleanup.
        forced = json.loads(run_cli("gpu", "cleanup", "--level", "hard", "--json").stdout)
        assert forced["plan"]["restart"] is None
        assert forced["steps"][0]["replies"][0]["level"] == "hard"
        assert forced["steps"][0]["freed_bytes"] == 0
    finally:
        if component is not None:
            component.kill()
            component.wait()
        server.stop()


def _registered(url: str, project: str) -> bool:
    from opsctl.agent import read_components
    from opsctl.config._project import RedisTarget

    reports = read_components(RedisTarget(url, None), project, stale_after_seconds=30)
    return any(report.component == "worker" for report in reports)


def test_hard_cleanup_frees_caches_then_restarts_the_biggest_service(
    make_stack: Callable[..., StackProject],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past hard, with --yes: the worker of a real supervised stack is asked to free its
    caches, then restarted through the runtime (a new pid); the other service is untouched.
    """
    program = tmp_path / "component.py"
    program.write_text(COMPONENT)
    redis_port = free_port()
    stack = make_stack(
        f"""
        [project]
        name = "shop"
        [services.redis]
        command = "redis-server --port {{port}} --bind 127.0.0.1 --save '' --appendonly no"
        port = {redis_port}
        [[services.redis.health]]
        kind = "redis"
        [services.worker]
        command = ["{sys.executable}", "{program}"]
        depends_on = ["redis"]
        [services.idle]
        command = ["sleep", "1000"]
        """
    )
    up = stack.cli("up")
    assert up.exit_code == 0, up.output
    worker, idle = stack.pid("worker"), stack.pid("idle")
    wait_for(
        lambda: _registered(f"redis://127.0.0.1:{redis_port}/0", "shop"),
        timeout_seconds=20,
        message="worker's agent",
    )
    recording = record(tmp_path / "gpu.json", 79, [(worker, 60), (idle, 10)])
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    refused = stack.cli("gpu", "cleanup")
    assert refused.exit_code == 2
    assert "restart service 'worker'" in refused.stderr
    assert stack.pid("worker") == worker

    result = stack.cli("gpu", "cleanup", "--yes", "--json")

    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    steps = {step["action"]: step for step in document["steps"]}
    assert steps["free_caches"]["freed_bytes"] == 512 << 20
    # Past the threshold the restart is the hard step: components are asked to clean softly.
    assert steps["free_caches"]["replies"][0]["level"] == "soft"
    assert (steps["restart"]["target"], steps["restart"]["status"]) == ("worker", "done")
    assert stack.pid("worker") != worker
    assert stack.pid("idle") == idle
    assert not pid_alive(worker)


def test_component_program_is_valid_python() -> None:
    """The component program the tests run compiles (a typo would hide as a timeout)."""
    compile(textwrap.dedent(COMPONENT), "component", "exec")


def test_thresholds_out_of_order_are_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A soft threshold under the warn one is refused with exit 2, naming gpu.policy."""
    write_project(tmp_path / "bad", "[gpu.policy]\nwarn_percent = 95\n")
    monkeypatch.chdir(tmp_path / "bad")

    result = run_cli("gpu", "cleanup", "--dry-run")

    assert result.exit_code == 2
    assert "gpu.policy" in result.stderr
    assert "thresholds must rise" in result.stderr


def test_automatic_cleanup_acts_from_the_thresholds_only(
    project: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """The monitor's entry point: nothing below soft; at soft the caches step runs (skipped
    here: the project has no Redis); orphans are reported, never killed.
    """
    from opsctl.config import load_project
    from opsctl.gpu._cleanup import automatic_cleanup

    loaded = load_project(project / "opsctl.toml")
    quiet = automatic_cleanup(loaded, snapshot(device(0, 40, [(sleeper.pid, 4)])))
    assert quiet.steps == ()
    assert quiet.plan.level == "none"

    busy = automatic_cleanup(loaded, snapshot(device(0, 78, [(sleeper.pid, 70)])))
    assert busy.plan.level == "hard"
    assert busy.plan.restart is None
    assert [(step.action, step.status) for step in busy.steps] == [("free_caches", "skipped")]
    assert "no Redis" in busy.steps[0].detail
    assert busy.plan.orphans[0].pid == sleeper.pid
    assert sleeper.poll() is None
