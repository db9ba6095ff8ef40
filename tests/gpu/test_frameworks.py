"""Real framework code paths that run on the CPU: TensorFlow's clear_session (with
tensorflow-cpu) and PyTorch's cleanup (with the CPU build), through ``opsctl.gpu``, and
``gpu check`` probing the real packages.

Optional: deselected by default; run with ``pytest -m frameworks`` once
``pip install tensorflow-cpu torch`` is done. Each case runs in a subprocess so that a
framework is never imported into the test process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.support import run_cli

pytestmark = pytest.mark.frameworks


def run_script(source: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        check=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def test_tensorflow_hard_cleanup_really_clears_the_keras_session() -> None:
    """After opsctl.gpu.cleanup("hard") Keras names layers from scratch again, which only a
    cleared session does; soft cleanup left the session alone. The report says TensorFlow
    frees nothing for the driver and needs a restart.
    """
    answer = run_script(
        """
        import json
        import tensorflow as tf
        import keras
        import opsctl.gpu

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
        model(tf.zeros((2, 4)))
        soft = opsctl.gpu.cleanup("soft").to_dict()
        after_soft = keras.layers.Dense(1).name
        hard = opsctl.gpu.cleanup("hard").to_dict()
        after_hard = keras.layers.Dense(1).name
        print(json.dumps({"soft": soft, "hard": hard, "after_soft": after_soft,
                          "after_hard": after_hard}))
        """
    )

    assert answer["after_soft"] != "dense"
    assert answer["after_hard"] == "dense"
    tensorflow = answer["hard"]["frameworks"]["tensorflow"]
    assert tensorflow["actions"] == ["keras.backend.clear_session", "gc.collect"]
    assert tensorflow["freed_bytes"] == 0
    assert tensorflow["held_bytes"] is None  # tensorflow-cpu: no GPU to hold memory on
    assert "restart the service" in tensorflow["notes"][-1]
    assert tensorflow["error"] is None


def test_torch_cpu_build_cleanup_touches_no_cuda() -> None:
    """With PyTorch's CPU build loaded, cleanup creates no CUDA context and says why."""
    answer = run_script(
        """
        import json
        import torch
        import opsctl.gpu

        torch.ones(1000, 1000) @ torch.ones(1000, 1000)
        report = opsctl.gpu.cleanup("hard").to_dict()
        print(json.dumps({"report": report, "initialized": torch.cuda.is_initialized()}))
        """
    )

    torch_entry = answer["report"]["frameworks"]["torch"]
    assert torch_entry["freed_bytes"] == 0
    assert torch_entry["notes"] == ["CUDA is not initialised by PyTorch in this process"]
    assert answer["initialized"] is False


def test_gpu_check_probes_the_real_packages(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real TensorFlow and PyTorch CPU builds are found, versioned and reported as
    CPU-only builds (warnings), each imported in its own subprocess.
    """
    import json as json_module

    recording = tmp_path / "gpu.json"
    recording.write_text(
        json_module.dumps(
            {
                "format": "opsctl-gpu-snapshot",
                "version": 1,
                "cuda_driver_version": "12.4",
                "devices": [{"index": 0, "uuid": "GPU-1", "name": "NVIDIA L4"}],
            }
        )
    )
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    result = run_cli("gpu", "check", "--json", "--timeout", "240")

    document = json.loads(result.stdout)
    found = {f["framework"]: f for f in document["frameworks"] if f["environment"] == "opsctl"}
    for name in ("tensorflow", "torch"):
        assert found[name]["installed"] is True
        assert found[name]["version"]
        assert found[name]["status"] == "warn"
        assert "CPU-only build" in found[name]["detail"]
