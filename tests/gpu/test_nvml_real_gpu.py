"""On a host with an NVIDIA GPU and driver: the real thing, no stand-in and no recording.

Skipped with "no NVIDIA driver" elsewhere; run them alone with ``pytest -m gpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.gpu._metrics import fill_registry
from opsctl.gpu._nvml import read_snapshot
from opsctl.gpu._recorded import load_snapshot
from opsctl.metrics import new_registry


def _driver_answers() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001  # any failure means: no usable driver here
        return False
    return True


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _driver_answers(), reason="no NVIDIA driver"),
]


def opsctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "opsctl", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_real_snapshot_has_devices_with_identity_and_memory() -> None:
    """Every device has a UUID, a name, a total memory and a compute capability."""
    snapshot = read_snapshot()

    assert snapshot.driver_version
    assert snapshot.devices
    for device in snapshot.devices:
        assert device.uuid.startswith(("GPU-", "MIG-"))
        assert device.name
        assert device.memory_total_bytes and device.memory_total_bytes > 0
        assert device.compute_capability is not None
        assert device.architecture is not None


def test_real_status_json_and_record_round_trip(tmp_path: Path) -> None:
    """gpu status --json works on the real devices, and --record replays the same devices."""
    recording = tmp_path / "real.json"

    result = opsctl("gpu", "status", "--json", "--record", str(recording), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [gpu["uuid"] for gpu in document["gpus"]] == [
        device.uuid for device in load_snapshot(recording).devices
    ]


def test_real_status_table(tmp_path: Path) -> None:
    """The table prints each device's name."""
    result = opsctl("gpu", "status", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for device in read_snapshot().devices:
        assert device.name in result.stdout


def test_real_metrics_parse() -> None:
    """The exposition of the real devices parses, with a frame buffer figure per device."""
    snapshot = read_snapshot()
    registry = new_registry()
    fill_registry(registry, snapshot)

    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }

    assert len(families["DCGM_FI_DEV_FB_USED"].samples) == len(snapshot.devices)
