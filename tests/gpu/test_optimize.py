"""``gpu optimize``: recommendations from the hardware found, and writing them to a .env."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsctl.gpu._model import GpuDevice, GpuSnapshot
from opsctl.gpu._optimize import recommend
from tests.support import run_cli, write_project

GIB = 1 << 30


def device(
    name: str,
    capability: tuple[int, int] | None,
    *,
    memory_gib: int = 80,
    architecture: str | None = None,
    mig: bool | None = False,
    index: int = 0,
) -> GpuDevice:
    return GpuDevice(
        index=index,
        uuid=f"GPU-{index}",
        name=name,
        memory_used_bytes=0,
        memory_total_bytes=memory_gib * GIB,
        utilization_percent=None,
        memory_utilization_percent=None,
        temperature_celsius=None,
        power_watts=None,
        power_limit_watts=None,
        sm_clock_mhz=None,
        memory_clock_mhz=None,
        ecc_corrected=None,
        ecc_uncorrected=None,
        mig_mode=mig,
        compute_capability=capability,
        architecture=architecture,
        processes=(),
    )


def snapshot(*devices: GpuDevice) -> GpuSnapshot:
    return GpuSnapshot("560.35.03", "12.6", None, devices, "host", datetime.now(UTC))


def by_key(report: Any) -> dict[str, Any]:
    return {item.key: item for item in report.recommendations}


@pytest.mark.parametrize(
    ("capability", "precision", "tf32"),
    [
        ((9, 0), "bf16", True),
        ((8, 0), "bf16", True),
        ((8, 6), "bf16", True),
        ((7, 5), "fp16", False),
        ((7, 0), "fp16", False),
        ((6, 1), "fp32", False),
    ],
)
def test_precision_and_tf32_follow_the_compute_capability(
    capability: tuple[int, int], precision: str, tf32: bool
) -> None:
    """bf16 from 8.0, fp16 on 7.x, fp32 below; TF32 only from Ampere (8.0)."""
    items = by_key(recommend(snapshot(device("card", capability))))

    assert items["mixed_precision"].value == precision
    assert items["mixed_precision"].variables == {"OPSCTL_GPU_MIXED_PRECISION": precision}
    assert items["mixed_precision"].why
    assert ("tf32" in items) is tf32


def test_allocator_settings_are_always_recommended_with_reasons() -> None:
    """TensorFlow's allocator and growth, CuPy's pool limit (from the warn threshold) and
    PyTorch's expandable segments, each with its reason.
    """
    report = recommend(
        snapshot(device("NVIDIA A100-SXM4-40GB", (8, 0), memory_gib=40)), cupy_limit_percent=75
    )

    assert report.variables == {
        "OPSCTL_GPU_MIXED_PRECISION": "bf16",
        "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "1",
        "TF_GPU_ALLOCATOR": "cuda_malloc_async",
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "CUPY_GPU_MEMORY_LIMIT": "75%",
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    items = by_key(report)
    assert "about 30 GiB of 40 GiB" in items["cupy_pool_limit"].why
    assert all(item.why for item in report.recommendations)
    assert "gh200_unified_memory" not in items


def test_gh200_gets_unified_memory_advice() -> None:
    """A GH200 is recognised and told what its unified memory and NUMA layout change."""
    report = recommend(snapshot(device("NVIDIA GH200 480GB", (9, 0), memory_gib=96)))

    items = by_key(report)
    assert report.hardware.gh200
    assert "NVLink-C2C" in items["gh200_unified_memory"].why
    assert "malloc_managed" in (items["gh200_unified_memory"].code or "")
    assert "NUMA" in items["gh200_numa"].why
    assert "aarch64" in items["gh200_arm64"].why


def test_mixed_cards_follow_the_least_capable() -> None:
    """With an H100 and a T4, what is recommended must run on the T4: fp16, no TF32."""
    report = recommend(
        snapshot(device("NVIDIA H100", (9, 0)), device("Tesla T4", (7, 5), memory_gib=16, index=1))
    )
    assert report.hardware.name == "Tesla T4"
    assert report.hardware.mixed
    assert by_key(report)["mixed_precision"].value == "fp16"
    assert "tf32" not in by_key(report)


def test_mig_and_unknown_capability() -> None:
    """MIG mode adds per-instance advice; an unknown capability recommends no precision."""
    items = by_key(recommend(snapshot(device("NVIDIA A100", None, mig=True))))
    assert "MIG UUIDs" in items["mig"].why
    assert items["mixed_precision"].value == "unknown"
    assert items["mixed_precision"].variables == {}


def write_recording(path: Path, name: str, capability: list[int]) -> Path:
    document = {
        "format": "opsctl-gpu-snapshot",
        "version": 1,
        "cuda_driver_version": "12.6",
        "devices": [
            {
                "index": 0,
                "uuid": "GPU-1",
                "name": name,
                "memory_total_bytes": 96 * GIB,
                "memory_used_bytes": GIB,
                "compute_capability": capability,
            }
        ],
    }
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def gh200(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    write_project(root, "[gpu.policy]\nwarn_percent = 70\n", env="KEEP='me'\n# a comment\n")
    monkeypatch.chdir(root)
    path = write_recording(tmp_path / "gh200.json", "NVIDIA GH200 480GB", [9, 0])
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))
    return root


def test_json_lists_recommendations_and_variables(gh200: Path) -> None:
    """--json prints one document: hardware, recommendations with reasons, variables."""
    result = run_cli("gpu", "optimize", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["hardware"]["gh200"] is True
    assert document["hardware"]["compute_capability"] == "9.0"
    assert document["variables"]["CUPY_GPU_MEMORY_LIMIT"] == "70%"
    assert document["env_file"] is None
    assert {"key", "why", "variables", "code"} <= set(document["recommendations"][0])


def test_env_file_is_written_safely(gh200: Path, tmp_path: Path) -> None:
    """--env-file writes every variable into that file at mode 0600; --write into the
    project's .env keeps its other lines.
    """
    target = tmp_path / "gpu.env"
    result = run_cli("gpu", "optimize", "--env-file", str(target))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "TF_GPU_ALLOCATOR='cuda_malloc_async'" in target.read_text()
    assert "wrote 6 variables" in result.stderr

    again = run_cli("gpu", "optimize", "--write")
    assert again.exit_code == 0, again.output
    text = (gh200 / ".env").read_text()
    assert text.startswith("KEEP='me'\n# a comment\n")
    assert "PYTORCH_CUDA_ALLOC_CONF='expandable_segments:True'" in text
    assert stat.S_IMODE((gh200 / ".env").stat().st_mode) == 0o600


def test_dry_run_writes_nothing(gh200: Path) -> None:
    """--dry-run with --write says what it would write and leaves the file as it was."""
    before = (gh200 / ".env").read_bytes()

    result = run_cli("gpu", "optimize", "--write", "--dry-run")

    assert result.exit_code == 0
    assert "dry run: would set 6 variables" in result.stderr
    assert (gh200 / ".env").read_bytes() == before


def test_no_gpu_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU there is nothing to recommend for: exit 4 with the reason."""
    path = tmp_path / "none.json"
    path.write_text(
        json.dumps(
            {"format": "opsctl-gpu-snapshot", "version": 1, "nvml_error": "DRIVER_NOT_LOADED"}
        )
    )
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(path))

    result = run_cli("gpu", "optimize")

    assert result.exit_code == 4
    assert "No GPU" in result.stderr


def test_env_file_that_is_a_dangling_symlink_exits_2(gh200: Path, tmp_path: Path) -> None:
    """A --env-file link to a file in a folder that does not exist is refused; nothing is
    created at the link's target.
    """
    missing = tmp_path / "missing" / "x.env"
    link = tmp_path / "dangling.env"
    link.symlink_to(missing)

    result = run_cli("gpu", "optimize", "--json", "--env-file", str(link))

    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert str(link) in result.stderr
    assert "does not exist" in result.stderr
    assert not missing.parent.exists()
    assert link.is_symlink()


def test_env_file_in_a_missing_folder_exits_2(gh200: Path, tmp_path: Path) -> None:
    """--env-file never creates the folders above the file."""
    target = tmp_path / "no" / "such" / "gpu.env"

    result = run_cli("gpu", "optimize", "--env-file", str(target))

    assert result.exit_code == 2, result.output
    assert str(target.parent) in result.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("in_project", [True, False])
def test_env_file_with_bytes_that_are_not_utf8_exits_2(
    gh200: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_project: bool
) -> None:
    """A .env that is not UTF-8 is named in a usage error and left as it was, in a project
    or outside one.
    """
    target = tmp_path / "latin1.env"
    target.write_bytes(b"NAME=caf\xe9\n")
    if not in_project:
        monkeypatch.chdir(tmp_path)

    result = run_cli("gpu", "optimize", "--env-file", str(target))

    assert result.exit_code == 2, result.output
    assert str(target) in result.stderr
    assert "UTF-8" in result.stderr
    assert "unexpected" not in result.stderr
    assert target.read_bytes() == b"NAME=caf\xe9\n"


def test_env_file_with_crlf_lines_gets_crlf_lines(gh200: Path, tmp_path: Path) -> None:
    """Lines added to a CRLF .env end in CRLF too, and python-dotenv reads every value."""
    from dotenv import dotenv_values

    target = tmp_path / "windows.env"
    target.write_bytes(b"KEEP=me\r\nTF_GPU_ALLOCATOR=bfc\r\n# end")

    result = run_cli("gpu", "optimize", "--env-file", str(target))

    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert data.startswith(b"KEEP=me\r\nTF_GPU_ALLOCATOR='cuda_malloc_async'\r\n# end\r\n")
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    values = dotenv_values(target)
    assert values["KEEP"] == "me"
    assert values["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
