"""Recorded device answers: read back through the same code as NVML's, validated strictly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsctl.errors import ConfigError
from opsctl.gpu._model import GpuDevice, GpuProcess, GpuSnapshot, NoGpuError
from opsctl.gpu._nvml import RECORDED_ENV, is_gh200, read_snapshot
from opsctl.gpu._recorded import load_snapshot, save_snapshot, snapshot_to_dict
from tests.support import run_cli

RECORDED = Path(__file__).with_name("recorded")


def use(monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    path = RECORDED / name
    monkeypatch.setenv(RECORDED_ENV, str(path))
    return path


def test_several_cards_are_read_with_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A four-card recording gives four devices with their figures and processes."""
    use(monkeypatch, "mixed-cards.json")

    snapshot = read_snapshot()

    assert [device.name for device in snapshot.devices] == [
        "NVIDIA H100 80GB HBM3",
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA L4",
        "Tesla T4",
    ]
    h100, a100, l4, t4 = snapshot.devices
    assert h100.compute_capability == (9, 0)
    assert h100.architecture == "Hopper"
    assert h100.memory_used_percent == pytest.approx(75.33, abs=0.01)
    assert h100.memory_free_bytes == 85520809984 - 64424509440
    assert h100.processes[1] == GpuProcess(pid=4191002, used_bytes=21474836480, name="tritonserver")
    assert a100.ecc_corrected == 12
    assert l4.processes == ()
    assert t4.ecc_uncorrected == 2
    assert snapshot.host == "train-01"
    assert snapshot.taken_at == datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    assert snapshot.cuda_driver_version == "12.4"


def test_gh200_with_mig_keeps_unknown_figures_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GH200 in MIG mode is recognised; figures NVML gives no answer for stay None."""
    use(monkeypatch, "gh200-mig.json")

    (device,) = read_snapshot().devices

    assert is_gh200(device)
    assert device.mig_mode is True
    assert device.utilization_percent is None
    assert device.power_watts is None
    assert device.power_limit_watts == 900.0
    assert [process.used_bytes for process in device.processes] == [None, None]


def test_is_gh200_only_for_grace_hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    """An H100 is not taken for a GH200."""
    use(monkeypatch, "mixed-cards.json")

    assert not any(is_gh200(device) for device in read_snapshot().devices)


def test_status_json_of_a_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """gpu status --json prints the full UUID, every figure, and the processes."""
    use(monkeypatch, "h100-container.json")

    result = run_cli("gpu", "status", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (gpu,) = document["gpus"]
    assert gpu["uuid"] == "GPU-2b4d6f80-1a3c-4e5f-9786-a5b4c3d2e1f0"
    assert gpu["memory_used_percent"] == pytest.approx(90.4, abs=0.1)
    assert gpu["compute_capability"] == [9, 0]
    assert gpu["gh200"] is False
    assert document["driver_version"] == "550.90.07"
    assert [(p["pid"], p["used_bytes"]) for p in document["processes"]] == [
        (4193001, 51539607552),
        (4193002, 25769803776),
    ]
    # Outside a project nobody can tell which processes are orphans.
    assert document["mapping"]["known"] is False
    assert {p["orphan"] for p in document["processes"]} == {False}


def test_status_table_of_a_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table shows a shortened UUID, memory with its share, power against the limit."""
    use(monkeypatch, "mixed-cards.json")

    result = run_cli("gpu", "status")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    h100 = next(line for line in lines if line.startswith("0 ") and "H100" in line)
    assert "GPU-5d6f1a2b…" in h100
    assert "GPU-5d6f1a2b-7c3e" not in result.stdout
    assert "60.0 / 79.6 GiB (75 %)" in h100
    assert "512 / 700 W" in h100
    assert "1980 / 2619 MHz" in h100
    assert "tritonserver" in result.stdout
    assert "driver 550.54.15, CUDA 12.4" in lines[0]


def test_gh200_table_says_grace_hopper_and_mig_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GH200 is labelled as such, MIG shows on, unknown figures show as '-'."""
    use(monkeypatch, "gh200-mig.json")

    result = run_cli("gpu", "status")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("0 "))
    assert "NVIDIA GH200 480GB (Grace Hopper)" in row
    assert row.rstrip().endswith("on")
    assert " - " in row
    assert "N/A" in result.stdout  # process memory NVML could not report


def test_na_values_render_without_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A device answering N/A for everything is listed, in the table and in JSON."""
    use(monkeypatch, "na-values.json")

    table = run_cli("gpu", "status")
    document = run_cli("gpu", "status", "--json")

    assert table.exit_code == 0, table.output
    assert "Quadro P2000" in table.stdout
    assert document.exit_code == 0, document.output
    (gpu,) = json.loads(document.stdout)["gpus"]
    assert gpu["memory_used_percent"] is None
    assert gpu["memory_total_bytes"] is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("driver-mismatch.json", "does not match the loaded NVIDIA kernel driver"),
        ("driver-not-loaded.json", "NVIDIA kernel driver is not loaded"),
    ],
)
def test_recorded_driver_failure_is_no_gpu_exit_4(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    """A recorded NVML start failure gives the live path's message, a hint and exit 4."""
    use(monkeypatch, name)

    result = run_cli("gpu", "status")
    as_json = run_cli("gpu", "status", "--json")

    assert result.exit_code == 4
    assert expected in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output
    assert as_json.exit_code == 4
    document = json.loads(as_json.stdout)
    assert document["gpus"] == []
    assert expected in document["error"]


def test_recording_without_devices_is_no_gpu(tmp_path: Path) -> None:
    """A recording of a host with no device raises NoGpuError."""
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"format": "opsctl-gpu-snapshot", "version": 1, "devices": []}))

    with pytest.raises(NoGpuError, match="holds no device"):
        load_snapshot(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "something-else", "version": 1}', "is not a recorded GPU snapshot"),
        ('{"format": "opsctl-gpu-snapshot", "version": 7}', "has format version 7"),
        (
            '{"format": "opsctl-gpu-snapshot", "version": 1, "devices": [{"index": 0,'
            ' "uuid": "GPU-x", "name": "X", "memory_used_bytes": "lots"}]}',
            "malformed at devices.0.memory_used_bytes",
        ),
        (
            '{"format": "opsctl-gpu-snapshot", "version": 1, "devices": [{"index": 0,'
            ' "uuid": "GPU-x", "name": "X", "temprature_celsius": 40}]}',
            "malformed at devices.0.temprature_celsius",
        ),
        (
            '{"format": "opsctl-gpu-snapshot", "version": 1, "devices": [{"index": 0,'
            ' "uuid": "GPU-x", "name": "X", "processes": [{"pid": -3}]}]}',
            "malformed at devices.0.processes.0.pid",
        ),
    ],
)
def test_malformed_recording_exits_2_naming_file_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    """A broken recording is a usage error naming the file and what is wrong, no traceback."""
    path = tmp_path / "broken.json"
    path.write_text(content)
    monkeypatch.setenv(RECORDED_ENV, str(path))

    result = run_cli("gpu", "status")

    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_missing_recording_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recording that does not exist is named in the error."""
    monkeypatch.setenv(RECORDED_ENV, str(tmp_path / "nowhere.json"))

    result = run_cli("gpu", "status", "--json")

    assert result.exit_code == 2
    assert "nowhere.json" in result.stderr


def test_save_then_load_gives_the_same_snapshot(tmp_path: Path) -> None:
    """A saved snapshot reads back equal, N/A figures and a MIG flag included."""
    device = GpuDevice(
        index=0,
        uuid="GPU-abc",
        name="NVIDIA GH200 480GB",
        memory_used_bytes=1,
        memory_total_bytes=2,
        utilization_percent=None,
        memory_utilization_percent=None,
        temperature_celsius=40.0,
        power_watts=None,
        power_limit_watts=900.0,
        sm_clock_mhz=1980,
        memory_clock_mhz=None,
        ecc_corrected=0,
        ecc_uncorrected=None,
        mig_mode=True,
        compute_capability=(9, 0),
        architecture="Hopper",
        processes=(GpuProcess(pid=7, used_bytes=None, name="python3"),),
    )
    snapshot = GpuSnapshot(
        driver_version="560.35.03",
        cuda_driver_version="12.6",
        nvml_version=None,
        devices=(device,),
        host="gh200-07",
        taken_at=datetime(2026, 12, 1, 14, 2, 11, tzinfo=UTC),
    )
    path = tmp_path / "snap.json"

    save_snapshot(snapshot, path)

    assert load_snapshot(path) == snapshot
    assert json.loads(path.read_text())["version"] == 1


def test_every_shipped_recording_is_valid() -> None:
    """Each recording under tests/gpu/recorded loads (or is a recorded failure)."""
    for path in sorted(RECORDED.glob("*.json")):
        try:
            snapshot = load_snapshot(path)
        except NoGpuError:
            assert json.loads(path.read_text())["nvml_error"]
            continue
        assert snapshot_to_dict(snapshot)["devices"], path


def test_recorded_error_names_file_in_config_error(tmp_path: Path) -> None:
    """load_snapshot raises ConfigError (exit 2) for a file that is not JSON."""
    path = tmp_path / "x.json"
    path.write_text("[]")

    with pytest.raises(ConfigError, match=r"x\.json is not a recorded GPU snapshot"):
        load_snapshot(path)


def one_device_recording(path: Path, device: dict[str, object], **top: object) -> Path:
    """A recording of one H100 whose fields are overridden by ``device``."""
    base: dict[str, object] = {
        "index": 0,
        "uuid": "GPU-1",
        "name": "NVIDIA H100 80GB HBM3",
        "memory_used_bytes": 1 << 30,
        "memory_total_bytes": 80 << 30,
    }
    document = {
        "format": "opsctl-gpu-snapshot",
        "version": 1,
        "devices": [{**base, **device}],
        **top,
    }
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("temperature_celsius", "NaN"),
        ("power_watts", "Infinity"),
        ("power_limit_watts", "-Infinity"),
        ("utilization_percent", "NaN"),
        ("temperature_celsius", "1e999"),
    ],
)
def test_non_finite_numbers_in_a_recording_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, token: str
) -> None:
    """NaN and infinities are refused (exit 2) naming the file and the field, in both outputs."""
    path = one_device_recording(tmp_path / "odd.json", {field: 0.5})
    path.write_text(path.read_text().replace(f'"{field}": 0.5', f'"{field}": {token}'))
    monkeypatch.setenv(RECORDED_ENV, str(path))

    for args in (("gpu", "status"), ("gpu", "status", "--json")):
        result = run_cli(*args)

        assert result.exit_code == 2, result.output
        assert str(path) in result.stderr
        assert f"devices.0.{field}" in result.stderr
        assert "nan" not in result.stdout.lower()
        assert "inf" not in result.stdout.lower()


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        (
            [{"memory_used_bytes": 81 << 30, "memory_total_bytes": 80 << 30}],
            "memory_used_bytes",
        ),
        ([{"processes": [{"pid": 0}]}], "devices.0.processes.0.pid"),
        ([{"processes": [{"pid": 4194305}]}], "devices.0.processes.0.pid"),
        ([{"compute_capability": [9, 100]}], "devices.0.compute_capability.1"),
        ([{"compute_capability": [-1, 0]}], "devices.0.compute_capability.0"),
        ([{"index": 0, "uuid": "GPU-a"}, {"index": 0, "uuid": "GPU-b"}], "index 0"),
        ([{"index": 0, "uuid": "GPU-a"}, {"index": 1, "uuid": "GPU-a"}], "'GPU-a'"),
    ],
)
def test_impossible_recordings_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    devices: list[dict[str, object]],
    expected: str,
) -> None:
    """Memory used above total, pids outside 1..2^22, duplicate devices and compute
    capabilities outside 0..99 are refused, naming the file and what is wrong.
    """
    path = one_device_recording(tmp_path / "odd.json", devices[0])
    document = json.loads(path.read_text())
    base = document["devices"][0]
    document["devices"] = [{**base, **device} for device in devices]
    path.write_text(json.dumps(document))
    monkeypatch.setenv(RECORDED_ENV, str(path))

    result = run_cli("gpu", "status", "--json")

    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_largest_pid_and_devices_without_uuid_are_accepted(tmp_path: Path) -> None:
    """Pid 2^22 is a possible pid; devices NVML could not open (no UUID) may be several."""
    path = one_device_recording(tmp_path / "edge.json", {"processes": [{"pid": 4194304}]})
    document = json.loads(path.read_text())
    document["devices"] += [
        {"index": 1, "uuid": "", "name": "unreachable"},
        {"index": 2, "uuid": "", "name": "unreachable"},
    ]
    path.write_text(json.dumps(document))

    snapshot = load_snapshot(path)

    assert snapshot.devices[0].processes[0].pid == 4194304
    assert [device.uuid for device in snapshot.devices] == ["GPU-1", "", ""]


def test_status_json_has_no_non_finite_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """A figure that is not finite (a live reading gone wrong) is printed as null."""
    from opsctl.commands._common import print_json
    from opsctl.commands._gpu_observe import status_document
    from opsctl.gpu._status import StackPids

    device = GpuDevice(
        index=0,
        uuid="GPU-1",
        name="X",
        memory_used_bytes=1,
        memory_total_bytes=2,
        utilization_percent=float("nan"),
        memory_utilization_percent=None,
        temperature_celsius=float("inf"),
        power_watts=float("-inf"),
        power_limit_watts=None,
        sm_clock_mhz=None,
        memory_clock_mhz=None,
        ecc_corrected=None,
        ecc_uncorrected=None,
        mig_mode=None,
        compute_capability=None,
        architecture=None,
        processes=(),
    )
    snapshot = GpuSnapshot(None, None, None, (device,), "h", datetime(2026, 1, 1, tzinfo=UTC))

    print_json(status_document(snapshot, [], StackPids()))

    def refuse(token: str) -> None:
        raise AssertionError(f"non-finite token {token} in the JSON output")

    (gpu,) = json.loads(capsys.readouterr().out, parse_constant=refuse)["gpus"]
    assert gpu["utilization_percent"] is None
    assert gpu["temperature_celsius"] is None
    assert gpu["power_watts"] is None


def test_control_characters_in_names_add_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newline or escape sequence in a device or process name is shown escaped, on its row."""
    path = one_device_recording(
        tmp_path / "names.json",
        {
            "name": "H100\n9    FAKE GPU\x1b[2J\r\u2028",
            "ecc_uncorrected": 2,
            "processes": [{"pid": 4190001, "used_bytes": 1 << 30, "name": "py\nthon\t3"}],
        },
    )
    monkeypatch.setenv(RECORDED_ENV, str(path))

    table = run_cli("gpu", "status")
    problems = run_cli("-q", "gpu", "status")

    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    row = next(line for line in lines if line.startswith("0 "))
    assert "H100\\n9    FAKE GPU\\x1b[2J\\r\\u2028" in row
    assert sum("FAKE GPU" in line for line in lines) == 1
    assert "py\\nthon\\t3" in table.stdout
    assert "\x1b" not in table.stdout
    assert "\r" not in table.stdout
    assert problems.exit_code == 0, problems.output
    assert "GPU 0 (H100\\n9    FAKE GPU\\x1b[2J\\r\\u2028): 2 uncorrected" in problems.stdout
    assert len(problems.stdout.splitlines()) == 1


def test_status_table_shows_non_finite_figures_as_unknown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A figure that is not finite shows as "-" in the table, never as nan or inf."""
    from opsctl.commands._gpu_observe import _render
    from opsctl.gpu._status import StackPids

    device = GpuDevice(
        0, "GPU-1", "X", 1, 2, float("nan"), None, float("inf"), float("nan"), 700.0,
        None, None, None, None, None, None, None, (),
    )  # fmt: skip
    snapshot = GpuSnapshot(None, None, None, (device,), "h", datetime(2026, 1, 1, tzinfo=UTC))

    _render(snapshot, [], StackPids(), problems_only=False)

    out = capsys.readouterr().out.lower()
    assert "nan" not in out
    assert "inf" not in out


def test_live_readings_that_are_not_finite_become_none() -> None:
    """A NaN or infinite reading from NVML is kept as no answer."""
    from opsctl.gpu._nvml import _as_float

    assert _as_float(float("nan")) is None
    assert _as_float(float("inf")) is None
    assert _as_float(41) == 41.0
