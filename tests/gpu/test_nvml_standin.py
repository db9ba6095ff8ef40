"""`opsctl gpu status` end to end through the real nvidia-ml-py, loading a stand-in
libnvidia-ml.so.1 compiled by gcc, and the real no-driver path.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl.gpu._recorded import load_snapshot
from tests.gpu.standin.library import Standin, nvml_standin, standin_library

__all__ = ["nvml_standin", "standin_library"]  # fixtures used by the tests below

GIB = 1 << 30
H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-5d6f1a2b-7c3e-4f90-8a1b-2c3d4e5f6a7b",
    "memory_total": 80 * GIB,
    "memory_used": 60 * GIB,
    "memory_reserved": GIB // 2,
    "util_gpu": 87,
    "util_mem": 41,
    "temperature": 61,
    "power_mw": 512300,
    "power_limit_mw": 700000,
    "clock_sm": 1980,
    "clock_mem": 2619,
    "ecc_corrected": 0,
    "ecc_uncorrected": 1,
    "mig": 0,
    "cc": "9.0",
    "arch": 9,
    "process": [(4191001, 40 * GIB), (4191002, 20 * GIB)],
}
GH200_MIG = {
    "name": "NVIDIA GH200 480GB",
    "uuid": "GPU-e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7",
    "memory_total": 96 * GIB,
    "memory_used": 32 * GIB,
    "util_gpu": "!NOT_SUPPORTED",
    "temperature": 44,
    "power_mw": "!NOT_SUPPORTED",
    "power_limit_mw": 900000,
    "clock_sm": 1980,
    "clock_mem": 2619,
    "mig": 1,
    "cc": "9.0",
    "arch": 9,
    # One process in two MIG instances, memory not reported; and one graphics process.
    "process": [(4192001, None, 1, 0), (4192001, None, 2, 0), (4192002, 3 * GIB, 1, 0)],
    "graphics_process": [(4192002, 3 * GIB, 1, 0), (4192003, GIB)],
}


def status_json(standin: Standin, tmp_path: Path) -> dict[str, object]:
    result = standin.run_cli("gpu", "status", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_status_json_through_real_bindings(nvml_standin: Standin, tmp_path: Path) -> None:
    """Every field of an H100 and a GH200 in MIG mode arrives through pynvml intact."""
    nvml_standin.answer([H100, GH200_MIG])

    document = status_json(nvml_standin, tmp_path)

    assert document["driver_version"] == "550.54.15"
    assert document["cuda_driver_version"] == "12.4"
    assert document["nvml_version"] == "12.550.54.15"
    h100, gh200 = document["gpus"]  # type: ignore[misc]
    assert h100 == {
        "index": 0,
        "uuid": H100["uuid"],
        "name": "NVIDIA H100 80GB HBM3",
        # Memory info version 2: the driver's reserved memory is not counted as used.
        "memory_used_bytes": 60 * GIB,
        "memory_total_bytes": 80 * GIB,
        "utilization_percent": 87.0,
        "memory_utilization_percent": 41.0,
        "temperature_celsius": 61.0,
        "power_watts": 512.3,
        "power_limit_watts": 700.0,
        "sm_clock_mhz": 1980,
        "memory_clock_mhz": 2619,
        "ecc_corrected": 0,
        "ecc_uncorrected": 1,
        "mig_mode": False,
        "compute_capability": [9, 0],
        "architecture": "Hopper",
        "processes": [
            {"pid": 4191001, "used_bytes": 40 * GIB, "name": None},
            {"pid": 4191002, "used_bytes": 20 * GIB, "name": None},
        ],
        "memory_used_percent": 75.0,
        "gh200": False,
    }
    assert gh200["gh200"] is True
    assert gh200["mig_mode"] is True
    assert gh200["utilization_percent"] is None
    assert gh200["memory_utilization_percent"] is None
    assert gh200["power_watts"] is None
    assert gh200["power_limit_watts"] == 900.0
    assert gh200["ecc_corrected"] is None  # not in the answers: NOT_SUPPORTED
    # Per pid: N/A memory stays unknown, MIG instances merge, compute+graphics count once.
    assert gh200["processes"] == [
        {"pid": 4192001, "used_bytes": None, "name": None},
        {"pid": 4192002, "used_bytes": 3 * GIB, "name": None},
        {"pid": 4192003, "used_bytes": GIB, "name": None},
    ]


def test_process_name_comes_from_proc(nvml_standin: Standin, tmp_path: Path) -> None:
    """A GPU process visible on this host is named from /proc."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as holder:
        try:
            nvml_standin.answer([{**H100, "process": [(holder.pid, GIB)]}])
            document = status_json(nvml_standin, tmp_path)
        finally:
            holder.kill()

    (process,) = document["processes"]  # type: ignore[misc]
    assert process["pid"] == holder.pid
    assert process["name"].startswith("python")


def test_unsupported_fields_are_null_not_a_crash(nvml_standin: Standin, tmp_path: Path) -> None:
    """A device that answers NOT_SUPPORTED to every figure is listed with nulls."""
    nvml_standin.answer([{"name": "Quadro P2000", "uuid": "GPU-0"}], cuda=None, nvml=None)

    document = status_json(nvml_standin, tmp_path)

    (gpu,) = document["gpus"]  # type: ignore[misc]
    figures = {key: value for key, value in gpu.items() if key not in {"index", "uuid", "name"}}
    assert figures == dict.fromkeys(figures) | {"processes": [], "gh200": False}
    assert document["cuda_driver_version"] is None


def test_lost_gpu_is_shown_and_others_still_read(nvml_standin: Standin, tmp_path: Path) -> None:
    """A device NVML cannot open is listed as unreachable; the next one is read."""
    nvml_standin.answer([{"handle": "!GPU_IS_LOST"}, H100])

    document = status_json(nvml_standin, tmp_path)

    lost, h100 = document["gpus"]  # type: ignore[misc]
    assert lost["name"].startswith("unreachable")
    assert lost["memory_total_bytes"] is None
    assert h100["name"] == "NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("DRIVER_NOT_LOADED", "the NVIDIA kernel driver is not loaded"),
        ("LIB_RM_VERSION_MISMATCH", "driver/library version mismatch"),
        ("NO_PERMISSION", "refused access to the NVIDIA devices"),
        ("UNKNOWN", "NVML could not start (Unknown Error)"),
    ],
)
def test_nvml_init_failure_exits_4_with_reason(
    nvml_standin: Standin, tmp_path: Path, error: str, expected: str
) -> None:
    """nvmlInit failing gives one clear line, a hint, exit 4 and no traceback."""
    nvml_standin.answer([H100], init_error=error)

    result = nvml_standin.run_cli("gpu", "status", cwd=tmp_path)
    as_json = nvml_standin.run_cli("gpu", "status", "--json", cwd=tmp_path)

    assert result.returncode == 4
    assert result.stderr.startswith("error: No GPU: ")
    assert expected in result.stderr
    assert "\nhint: " in result.stderr
    assert "Traceback" not in result.stderr
    assert as_json.returncode == 4
    assert json.loads(as_json.stdout)["gpus"] == []


def test_driver_without_devices_exits_4(nvml_standin: Standin, tmp_path: Path) -> None:
    """NVML starting but counting no device is 'no GPU' too."""
    nvml_standin.answer([])

    result = nvml_standin.run_cli("gpu", "status", cwd=tmp_path)

    assert result.returncode == 4
    assert "reports no device" in result.stderr


def test_device_count_failing_exits_4(nvml_standin: Standin, tmp_path: Path) -> None:
    """NVML starting but failing to count its devices is reported, not a traceback."""
    nvml_standin.answer([H100], count="!GPU_IS_LOST")

    result = nvml_standin.run_cli("gpu", "status", cwd=tmp_path)

    assert result.returncode == 4
    assert "GPU fell off the bus" in result.stderr
    assert "Traceback" not in result.stderr


def test_record_on_a_host_then_replay(nvml_standin: Standin, tmp_path: Path) -> None:
    """--record writes the answers; OPSCTL_GPU_RECORDED replays them identically."""
    nvml_standin.answer([H100, GH200_MIG])
    recording = tmp_path / "gh200-host.json"

    live = nvml_standin.run_cli("gpu", "status", "--json", "--record", str(recording), cwd=tmp_path)
    replay = subprocess.run(
        [sys.executable, "-m", "opsctl", "gpu", "status", "--json"],
        cwd=tmp_path,
        env={**nvml_standin.environment(), "OPSCTL_GPU_RECORDED": str(recording)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert live.returncode == 0, live.stderr
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout) == json.loads(live.stdout)
    assert len(load_snapshot(recording).devices) == 2


def test_human_table_through_real_bindings(nvml_standin: Standin, tmp_path: Path) -> None:
    """The table lists both cards; a GH200 is labelled as Grace Hopper."""
    nvml_standin.answer([H100, GH200_MIG])

    result = nvml_standin.run_cli("gpu", "status", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "NVIDIA GH200 480GB (Grace Hopper)" in result.stdout
    assert "60.0 / 80.0 GiB (75 %)" in result.stdout
    assert "[" not in result.stdout.splitlines()[0]  # markup rendered, not printed


def _driver_installed() -> bool:
    return ctypes.util.find_library("nvidia-ml") is not None or any(
        Path(folder, "libnvidia-ml.so.1").exists()
        for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
    )


@pytest.mark.skipif(_driver_installed(), reason="an NVIDIA driver is installed on this host")
def test_real_no_driver_path_exits_4_without_traceback(tmp_path: Path) -> None:
    """With no driver and no stand-in, the real pynvml fails to load NVML: exit 4, one line."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
    environment.pop("LD_LIBRARY_PATH", None)

    result = subprocess.run(
        [sys.executable, "-m", "opsctl", "gpu", "status"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 4
    assert result.stderr.splitlines()[0] == (
        "error: No GPU: the NVIDIA driver's NVML library (libnvidia-ml.so.1) was not found."
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
