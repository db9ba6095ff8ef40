"""dcgm-exporter compatible GPU metrics, read back with Prometheus' own text parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.gpu._metrics import DEVICE_METRICS, fill_registry
from opsctl.gpu._recorded import load_snapshot
from opsctl.gpu._status import ProcessOwner
from opsctl.metrics import new_registry

RECORDED = Path(__file__).with_name("recorded")
MIB = 1 << 20


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(name, sorted labels): value}`` for every sample of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def exposition(name: str, owners: list[ProcessOwner] | None = None) -> str:
    registry = new_registry()
    fill_registry(registry, load_snapshot(RECORDED / name), owners)
    return generate_latest(registry).decode()


def h100_labels(gpu: str = "0") -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            {
                "gpu": gpu,
                "UUID": "GPU-5d6f1a2b-7c3e-4f90-8a1b-2c3d4e5f6a7b",
                "device": f"nvidia{gpu}",
                "modelName": "NVIDIA H100 80GB HBM3",
                "Hostname": "train-01",
            }.items()
        )
    )


def test_device_metrics_use_dcgm_names_labels_and_units() -> None:
    """Frame buffer in MiB, power in W, clocks in MHz, ECC totals, under dcgm's labels."""
    found = samples(exposition("mixed-cards.json"))

    labels = h100_labels()
    assert found[("DCGM_FI_DEV_FB_USED", labels)] == 64424509440 / MIB
    assert found[("DCGM_FI_DEV_FB_FREE", labels)] == (85520809984 - 64424509440) / MIB
    assert found[("DCGM_FI_DEV_GPU_UTIL", labels)] == 87.0
    assert found[("DCGM_FI_DEV_MEM_COPY_UTIL", labels)] == 41.0
    assert found[("DCGM_FI_DEV_GPU_TEMP", labels)] == 61.0
    assert found[("DCGM_FI_DEV_POWER_USAGE", labels)] == pytest.approx(512.3)
    assert found[("DCGM_FI_DEV_SM_CLOCK", labels)] == 1980.0
    assert found[("DCGM_FI_DEV_MEM_CLOCK", labels)] == 2619.0
    assert found[("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", labels)] == 0.0
    t4 = next(
        key for key in found if key[0] == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" and "Tesla T4" in str(key)
    )
    assert found[t4] == 2.0
    # One series per device for each metric.
    assert {name for name, _ in found} == set(DEVICE_METRICS)
    assert sum(1 for name, _ in found if name == "DCGM_FI_DEV_GPU_TEMP") == 4


def test_unknown_figures_have_no_series() -> None:
    """A figure NVML did not give is left out, never exported as 0."""
    found = samples(exposition("gh200-mig.json"))

    names = {name for name, _ in found}
    assert "DCGM_FI_DEV_GPU_UTIL" not in names
    assert "DCGM_FI_DEV_POWER_USAGE" not in names
    assert "DCGM_FI_DEV_FB_USED" in names
    assert samples(exposition("na-values.json")) == {}


def test_process_memory_per_service() -> None:
    """Bytes held are summed per GPU and service; orphans under service=""; N/A adds 0."""
    owners = [
        ProcessOwner(0, "GPU-a", 10, 40 * MIB, "python3", "worker"),
        ProcessOwner(0, "GPU-a", 11, 2 * MIB, "python3", "worker"),
        ProcessOwner(0, "GPU-a", 12, 5 * MIB, "python3", None),
        ProcessOwner(1, "GPU-b", 13, None, "python3", "api"),
    ]

    found = samples(exposition("mixed-cards.json", owners))

    memory = {
        labels: value
        for (name, labels), value in found.items()
        if name == "opsctl_gpu_process_memory_bytes"
    }
    assert memory == {
        (("gpu", "0"), ("service", "worker")): 42 * MIB,
        (("gpu", "0"), ("service", "")): 5 * MIB,
        (("gpu", "1"), ("service", "api")): 0.0,
        (("gpu", "1"), ("service", "")): 0.0,
        (("gpu", "2"), ("service", "")): 0.0,
        (("gpu", "3"), ("service", "")): 0.0,
    }


def test_without_owners_no_process_series() -> None:
    """Without a process mapping the per-service gauge is not filled."""
    found = samples(exposition("mixed-cards.json"))

    assert not any(name == "opsctl_gpu_process_memory_bytes" for name, _ in found)


def test_filling_twice_updates_the_same_series() -> None:
    """The monitor fills the same registry each cycle: values are replaced, not duplicated."""
    registry = new_registry()
    fill_registry(registry, load_snapshot(RECORDED / "h100-container.json"))
    fill_registry(registry, load_snapshot(RECORDED / "h100-container.json"))

    found = samples(generate_latest(registry).decode())

    assert sum(1 for name, _ in found if name == "DCGM_FI_DEV_GPU_TEMP") == 1


def test_refilling_drops_series_that_are_gone() -> None:
    """A figure that became unknown, or a service that left the GPU, loses its series."""
    registry = new_registry()
    owners = [ProcessOwner(0, "GPU-a", 10, 40 * MIB, "python3", "worker")]
    fill_registry(registry, load_snapshot(RECORDED / "mixed-cards.json"), owners)
    fill_registry(registry, load_snapshot(RECORDED / "na-values.json"), [])

    found = samples(generate_latest(registry).decode())

    assert found == {
        ("opsctl_gpu_process_memory_bytes", (("gpu", "0"), ("service", ""))): 0.0,
    }
