"""On a real NVIDIA GPU: the probes, the library's cleanup of real CuPy and PyTorch memory,
and the settings recommended for the card. Marked ``gpu``; they need a driver, and a
machine without one has nothing for them to run against.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support import run_cli

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not Path("/dev/nvidiactl").exists(), reason="needs an NVIDIA GPU and its driver"
    ),
]


def run_script(source: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_gpu_check_sees_the_driver() -> None:
    """The driver check passes with a driver and CUDA version from NVML."""
    result = run_cli("gpu", "check", "--json", "--timeout", "300")

    document = json.loads(result.stdout)
    assert document["driver"]["problem"] is None
    assert document["driver"]["cuda_driver_version"]
    present = next(c for c in document["checks"] if c["name"] == "GPU present")
    assert present["status"] == "pass"
    assert result.exit_code in {0, 1}, result.output


@pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="CuPy is not installed")
def test_cupy_pool_memory_goes_back_to_the_driver() -> None:
    """256 MiB freed by CuPy stays in its pool until cleanup hands it back: the pool's total
    drops by that much and the report counts it.
    """
    answer = run_script(
        """
        import json
        import cupy
        import opsctl.gpu

        array = cupy.zeros(256 << 20, dtype=cupy.uint8)
        del array
        pool = cupy.get_default_memory_pool()
        before = pool.total_bytes()
        report = opsctl.gpu.cleanup("soft").to_dict()
        print(json.dumps({"before": before, "after": pool.total_bytes(), "report": report}))
        """
    )
    assert answer["before"] >= 256 << 20
    assert answer["after"] == 0
    assert answer["report"]["frameworks"]["cupy"]["freed_bytes"] == answer["before"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_torch_cache_goes_back_to_the_driver() -> None:
    """A freed CUDA tensor's memory stays reserved until cleanup empties PyTorch's cache."""
    answer = run_script(
        """
        import json
        import torch
        import opsctl.gpu

        if not torch.cuda.is_available():
            print(json.dumps({"cuda": False}))
            raise SystemExit
        tensor = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
        del tensor
        before = torch.cuda.memory_reserved()
        report = opsctl.gpu.cleanup("soft").to_dict()
        print(json.dumps({"cuda": True, "before": before, "after": torch.cuda.memory_reserved(),
                          "report": report}))
        """
    )
    assert answer["cuda"], "this PyTorch build has no CUDA"
    assert answer["before"] >= 256 << 20
    assert answer["after"] < answer["before"]
    assert (
        answer["report"]["frameworks"]["torch"]["freed_bytes"] == answer["before"] - answer["after"]
    )


def test_optimize_recommends_for_the_real_card() -> None:
    """The real card gets a precision and the allocator settings."""
    result = run_cli("gpu", "optimize", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["hardware"]["compute_capability"]
    assert "TF_GPU_ALLOCATOR" in document["variables"]
