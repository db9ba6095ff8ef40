"""``gpu check``: each framework probed in a subprocess of the environment it is checked in.

The frameworks here are small stand-in packages put on PYTHONPATH or into a real virtual
environment: one that segfaults on import, one that hangs, ones that report CUDA releases
newer or older than the recorded driver's. The driver comes from a recorded snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from opsctl.gpu._check import DriverInfo, judge
from opsctl.gpu._frameworks._probing import compare_cuda
from tests.support import pid_alive, run_cli, wait_for, write_project

GIB = 1 << 30


def write_recording(
    path: Path,
    *,
    cuda: str | None = "12.4",
    devices: int = 1,
    nvml_error: str | None = None,
) -> Path:
    """A recorded snapshot in opsctl's format: H100s on driver 550 with CUDA ``cuda``."""
    document: dict[str, Any] = {
        "format": "opsctl-gpu-snapshot",
        "version": 1,
        "host": "gpu-host",
        "nvml_error": nvml_error,
        "driver_version": None if nvml_error else "550.90.07",
        "cuda_driver_version": None if nvml_error else cuda,
        "devices": []
        if nvml_error
        else [
            {
                "index": index,
                "uuid": f"GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd",
                "name": "NVIDIA H100 80GB HBM3",
                "memory_used_bytes": 10 * GIB,
                "memory_total_bytes": 80 * GIB,
                "compute_capability": [9, 0],
                "architecture": "Hopper",
                "processes": [],
            }
            for index in range(devices)
        ],
    }
    path.write_text(json.dumps(document))
    return path


def fake_package(root: Path, name: str, body: str) -> Path:
    """Write a package ``name`` whose ``__init__`` is ``body`` under ``root``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(body).lstrip())
    return root


def fake_cupy(root: Path, *, runtime: int, devices: int = 1, version: str = "13.3.0") -> Path:
    """A CuPy stand-in: its version, a linked CUDA runtime and a device count."""
    return fake_package(
        root,
        "cupy",
        f"""
        import types
        __version__ = "{version}"
        cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
            runtimeGetVersion=lambda: {runtime},
            getDeviceCount=lambda: {devices},
        ))
        """,
    )


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recorded one-GPU host with CUDA 12.4, read instead of NVML."""
    path = write_recording(tmp_path / "snapshot.json")
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))
    return path


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of stand-in frameworks on the PYTHONPATH the probes inherit."""
    folder = tmp_path / "fakes"
    folder.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


def gpu_check(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("gpu", "check", "--json", *args)
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def finding(
    document: dict[str, Any], framework: str, environment: str = "opsctl"
) -> dict[str, Any]:
    for item in document["frameworks"]:
        if item["framework"] == framework and item["environment"] == environment:
            return item
    raise AssertionError(f"no {framework} finding in {environment}: {document['frameworks']}")


def test_segfaulting_import_is_reported_and_opsctl_survives(recorded: Path, fakes: Path) -> None:
    """A framework whose import segfaults fails its check as a crash with signal 11."""
    fake_package(fakes, "cupy", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")

    code, document = gpu_check("--timeout", "30", "--framework", "cupy")

    cupy = finding(document, "cupy")
    assert code == 1
    assert cupy["status"] == "fail"
    assert "crashed with signal 11 (SIGSEGV)" in cupy["detail"]
    assert cupy["failure"].startswith("crashed with signal 11")
    assert document["status"] == "fail"


def test_hanging_import_is_reported_as_hung_and_killed(
    recorded: Path, fakes: Path, tmp_path: Path
) -> None:
    """A framework whose import never returns is reported hung, and its process is ended."""
    pid_file = tmp_path / "hung.pid"
    fake_package(
        fakes,
        "tensorflow",
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n",
    )

    code, document = gpu_check("--timeout", "3", "--framework", "tensorflow")

    tensorflow = finding(document, "tensorflow")
    assert code == 1
    assert tensorflow["status"] == "fail"
    assert "hung: no answer within 3 s" in tensorflow["detail"]
    pid = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(pid), timeout_seconds=10, message="hung probe ended")


def test_runtime_newer_major_than_driver_is_incompatible(recorded: Path, fakes: Path) -> None:
    """CuPy built for CUDA 13.0 on a driver supporting 12.4 fails as incompatible."""
    fake_cupy(fakes, runtime=13000)

    code, document = gpu_check("--framework", "cupy")

    cupy = finding(document, "cupy")
    assert code == 1
    assert cupy["status"] == "fail"
    assert cupy["compatible"] is False
    assert cupy["cuda_runtime"] == "13.0"
    assert "newer than the driver's CUDA 12.4" in cupy["detail"]


def test_runtime_newer_minor_than_driver_warns(recorded: Path, fakes: Path) -> None:
    """CUDA 12.8 on a 12.4 driver runs through minor version compatibility: a warning."""
    fake_cupy(fakes, runtime=12080)

    code, document = gpu_check("--framework", "cupy")

    cupy = finding(document, "cupy")
    assert code == 0
    assert cupy["status"] == "warn"
    assert cupy["compatible"] is True
    assert "minor version compatibility" in cupy["detail"]


def test_compatible_framework_seeing_the_gpu_passes(recorded: Path, fakes: Path) -> None:
    """CuPy 13.3 built for CUDA 12.2, seeing one GPU, on a 12.4 driver passes with details."""
    fake_cupy(fakes, runtime=12020)

    code, document = gpu_check("--framework", "cupy")

    cupy = finding(document, "cupy")
    assert code == 0
    assert cupy["status"] == "pass"
    assert cupy["version"] == "13.3.0"
    assert cupy["sees_gpu"] is True
    assert cupy["device_count"] == 1
    assert cupy["detail"] == (
        "CuPy 13.3.0, built for CUDA 12.2, driver supports CUDA 12.4; sees 1 GPU(s)"
    )
    check = next(c for c in document["checks"] if c["name"] == "CuPy (opsctl)")
    assert set(check) >= {"name", "kind", "target", "status", "severity", "duration_ms", "detail"}
    assert check["target"] == sys.executable
    assert [c["name"] for c in document["checks"]] == ["GPU present", "CuPy (opsctl)"]


def test_framework_blind_to_the_gpu_fails_on_a_gpu_host(recorded: Path, fakes: Path) -> None:
    """PyTorch built with CUDA that sees no device, on a host with a GPU, fails."""
    fake_package(
        fakes,
        "torch",
        """
        import types
        __version__ = "2.5.1"
        version = types.SimpleNamespace(cuda="12.1")
        cuda = types.SimpleNamespace(is_available=lambda: False, device_count=lambda: 0)
        """,
    )

    code, document = gpu_check("--framework", "torch")

    torch = finding(document, "torch")
    assert code == 1
    assert torch["status"] == "fail"
    assert torch["sees_gpu"] is False
    assert "does not see the GPU" in torch["detail"]


def test_cpu_only_build_warns(recorded: Path, fakes: Path) -> None:
    """A TensorFlow built without CUDA is a warning: it cannot use the GPU."""
    fake_package(
        fakes,
        "tensorflow",
        """
        import types
        __version__ = "2.18.0"
        sysconfig = types.SimpleNamespace(get_build_info=lambda: {"is_cuda_build": False})
        config = types.SimpleNamespace(list_physical_devices=lambda kind: [])
        """,
    )

    code, document = gpu_check("--framework", "tensorflow")

    tensorflow = finding(document, "tensorflow")
    assert code == 0
    assert tensorflow["status"] == "warn"
    assert "CPU-only build" in tensorflow["detail"]


def test_failing_import_is_reported(recorded: Path, fakes: Path) -> None:
    """An import that raises is a failure carrying the error."""
    fake_package(fakes, "tensorrt", "raise ImportError('libnvinfer.so.10: cannot open')\n")

    code, document = gpu_check("--framework", "tensorrt")

    tensorrt = finding(document, "tensorrt")
    assert code == 1
    assert tensorrt["status"] == "fail"
    assert "ImportError: libnvinfer.so.10: cannot open" in tensorrt["detail"]


def service_venv(root: Path, service: str = "worker") -> Path:
    """A project whose service has its own (real, empty) virtual environment; return the
    environment's site-packages.
    """
    write_project(
        root,
        f"""
        [services.{service}]
        command = ["sleep", "100"]
        python = {{ requirements = "requirements.txt" }}
        """,
    )
    (root / "requirements.txt").write_text("")
    built = root / ".opsctl" / "venvs" / f"{service}-0123456789abcdef"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(built)], check=True)
    (root / ".opsctl" / "venvs" / service).symlink_to(built)
    return next(built.glob("lib/python3*/site-packages"))


def test_missing_frameworks_are_skipped(
    recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In an environment without any framework, each is listed as skipped (not installed)."""
    root = tmp_path / "project"
    service_venv(root)
    monkeypatch.chdir(root)

    _, document = gpu_check()

    assert {
        item["framework"]: (item["status"], item["installed"])
        for item in document["frameworks"]
        if item["environment"] == "worker"
    } == {
        "cupy": ("skip", False),
        "tensorflow": ("skip", False),
        "tensorrt": ("skip", False),
        "torch": ("skip", False),
    }
    assert document["driver"]["cuda_driver_version"] == "12.4"
    present = next(c for c in document["checks"] if c["name"] == "GPU present")
    assert present["status"] == "pass"
    assert present["detail"] == "driver 550.90.07, CUDA 12.4, 1 GPU(s): NVIDIA H100 80GB HBM3"


def test_each_service_environment_is_probed(
    recorded: Path, fakes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crashing CuPy inside a service's own virtual environment fails that environment's
    check only; opsctl's environment, without CuPy, skips it.
    """
    root = tmp_path / "project"
    site = service_venv(root)
    fake_package(site, "cupy", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.chdir(root)

    code, document = gpu_check("--framework", "cupy")

    worker = finding(document, "cupy", "worker")
    assert code == 1
    assert worker["status"] == "fail"
    assert "crashed with signal 11" in worker["detail"]
    assert worker["python"] == str(site.parents[2].resolve() / "bin" / "python")
    assert finding(document, "cupy")["status"] == "skip"


def test_no_gpu_is_a_warning_unless_required(
    tmp_path: Path, fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a driver, the GPU check is a warning (exit 0); with gpu.require it exits 4."""
    path = write_recording(tmp_path / "none.json", nvml_error="DRIVER_NOT_LOADED")
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))

    code, document = gpu_check("--framework", "cupy")
    assert code == 0
    present = next(c for c in document["checks"] if c["name"] == "GPU present")
    assert (present["status"], present["severity"]) == ("fail", "warning")
    assert document["driver"]["problem"]

    root = tmp_path / "required"
    write_project(root, "[gpu]\nrequire = true\n")
    monkeypatch.chdir(root)
    result = run_cli("gpu", "check", "--json", "--framework", "cupy")
    assert result.exit_code == 4
    assert result.stderr.startswith("error: No GPU")
    assert json.loads(result.stdout)["driver"]["problem"]


def test_verify_uses_the_framework_checks(recorded: Path, fakes: Path, tmp_path: Path) -> None:
    """verify with gpu.require lists the driver and the installed frameworks only, and a
    crashing framework fails it.
    """
    fake_package(fakes, "cupy", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    config = write_project(tmp_path / "verify", "[gpu]\nrequire = true\n")

    result = run_cli("-c", str(config), "verify", "--json", "--only", "gpu")

    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert {"GPU present", "CuPy (opsctl)"} <= set(checks)
    assert "TensorRT (opsctl)" not in checks  # not installed: not listed
    assert checks["GPU present"]["status"] == "pass"
    assert "crashed with signal 11" in checks["CuPy (opsctl)"]["detail"]


@pytest.mark.parametrize(
    ("runtime", "driver", "status", "compatible"),
    [
        ("12.4", "12.4", "pass", True),
        ("11.8", "12.4", "pass", True),
        ("12", "12.4", "pass", True),
        ("12.6", "12.4", "warn", True),
        ("13.0", "12.9", "fail", False),
        ("13", "12.9", "fail", False),
        ("12.1", "12040", "pass", True),
        (None, "12.4", "pass", None),
        ("12.1", None, "pass", None),
        ("garbage", "12.4", "pass", None),
    ],
)
def test_compare_cuda(
    runtime: str | None, driver: str | None, status: str, compatible: bool | None
) -> None:
    """The framework's CUDA release must not be newer than the driver's: a newer major
    fails, a newer minor warns.
    """
    assert compare_cuda(runtime, driver)[0::2] == (status, compatible)


def test_judge_without_gpu_on_the_host_warns() -> None:
    """A framework that sees no GPU on a host without one is a warning, not a failure."""
    driver = DriverInfo(None, None, 0, problem="no driver")
    answer = {"framework": "cupy", "installed": True, "version": "13.3.0", "device_count": 0}
    status, detail, _ = judge(answer, driver=driver)
    assert status == "warn"
    assert "this host has none" in detail


def test_probe_runs_with_a_python_lacking_opsctl(tmp_path: Path, fakes: Path) -> None:
    """The probe needs nothing but the standard library: it runs in a bare venv."""
    from opsctl.gpu._frameworks._probing import run_probe

    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    fake_cupy(fakes, runtime=12020)
    environ = {**os.environ, "PYTHONPATH": str(fakes)}

    answer = run_probe(str(venv / "bin" / "python"), "cupy", timeout_seconds=30, environ=environ)

    assert answer["installed"] is True
    assert answer["cuda_runtime"] == "12.2"
    assert answer["device_count"] == 1


def test_docker_service_environments_are_skipped_with_the_way_to_probe_them(
    recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the docker runtime a service's environment is inside the image: its checks are
    skipped with the command that probes it there, not failed.
    """
    root = tmp_path / "docker"
    write_project(
        root,
        """
        [runtime]
        kind = "docker"
        [services.worker]
        command = ["sleep", "100"]
        python = { requirements = "requirements.txt" }
        """,
    )
    (root / "requirements.txt").write_text("")
    monkeypatch.chdir(root)

    code, document = gpu_check("--framework", "cupy")

    worker = finding(document, "cupy", "worker")
    assert worker["status"] == "skip"
    assert "opsctl exec worker -- opsctl gpu check" in worker["detail"]
    assert code == 0


def test_json_reports_no_gpu_as_one_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cleanup and optimize with --json print the reason as JSON, and exit 4."""
    path = write_recording(tmp_path / "none.json", nvml_error="DRIVER_NOT_LOADED")
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))
    write_project(tmp_path / "p", "")
    monkeypatch.chdir(tmp_path / "p")

    for command in ("cleanup", "optimize"):
        result = run_cli("gpu", command, "--json")
        assert result.exit_code == 4
        assert json.loads(result.stdout)["error"].startswith("No GPU")


@pytest.mark.parametrize("value", ["inf", "1e308", "nan", "0", "-1", "3601"])
def test_timeout_outside_its_range_exits_2(recorded: Path, value: str) -> None:
    """--timeout must be a finite number of seconds above 0 and at most 3600."""
    result = run_cli("gpu", "check", "--timeout", value, "--framework", "cupy")

    assert result.exit_code == 2, result.output
    assert "--timeout" in result.stderr
    assert "Traceback" not in result.output


def test_probe_group_is_ended_when_waiting_for_it_fails(
    fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong while a probe runs, its process group is killed and reaped."""
    from opsctl.gpu._frameworks import _probing

    fake_package(fakes, "cupy", "import time\ntime.sleep(600)\n")
    started: list[subprocess.Popen[bytes]] = []

    class Recorded(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(_probing.subprocess, "Popen", Recorded)

    try:
        with pytest.raises(OverflowError):
            _probing.run_probe(
                sys.executable, "cupy", timeout_seconds=float("inf"), environ=dict(os.environ)
            )

        (process,) = started
        assert process.returncode is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)
    finally:
        for leftover in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(leftover.pid, signal.SIGKILL)
            leftover.wait()
