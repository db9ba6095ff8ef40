"""The metric catalog: valid, unique, conventional names; registry helpers; agreement with
the memory bank's samples and with the contract's list.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsctl.memory_bank import BankReport, bank_metrics
from opsctl.memory_bank._bank import FileReport
from opsctl.metrics import CATALOG, LABEL_BOUNDS, counter, gauge, new_registry, spec_for
from opsctl.metrics._catalog import _SPECS

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# The names (and labels) the shared contract promises to the monitor, backup, verify and GPU.
CONTRACT = {
    "opsctl_check_success": ("check", "service"),
    "opsctl_check_duration_seconds": ("check", "service"),
    "opsctl_service_up": ("service",),
    "opsctl_disk_free_bytes": ("path",),
    "opsctl_disk_size_bytes": ("path",),
    "opsctl_memory_available_bytes": (),
    "opsctl_memory_total_bytes": (),
    "opsctl_load1": (),
    "opsctl_cpu_count": (),
    "opsctl_redis_up": (),
    "opsctl_redis_used_memory_bytes": (),
    "opsctl_redis_maxmemory_bytes": (),
    "opsctl_redis_connected_clients": (),
    "opsctl_redis_last_save_timestamp_seconds": (),
    "opsctl_redis_last_bgsave_success": (),
    "opsctl_component_up": ("component",),
    "opsctl_component_last_heartbeat_timestamp_seconds": ("component",),
    "opsctl_component_gauge": ("component", "name"),
    "opsctl_alert_firing": ("alert", "severity"),
    "opsctl_notifications_queued": (),
    "opsctl_monitor_cycles_total": (),
    "opsctl_monitor_cycle_duration_seconds": (),
    "opsctl_monitor_last_cycle_timestamp_seconds": (),
    "opsctl_backup_age_seconds": (),
    "opsctl_backup_last_success_timestamp_seconds": (),
    "opsctl_backup_last_run_success": (),
    "opsctl_backup_duration_seconds": (),
    "opsctl_backup_size_bytes": (),
    "opsctl_backup_files": (),
    "opsctl_verify_last_run_timestamp_seconds": (),
    "opsctl_verify_success": (),
    "opsctl_verify_checks": ("status",),
    "opsctl_memory_bank_active": (),
    "opsctl_memory_bank_entries": ("file",),
    "opsctl_memory_bank_age_seconds": ("file",),
    "opsctl_memory_bank_stale": ("file",),
    "opsctl_gpu_process_memory_bytes": ("gpu", "service"),
}
DCGM = (
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
)


def test_names_are_unique() -> None:
    """No name is declared twice (the dict would silently keep the last)."""
    names = [spec.name for spec in _SPECS]
    assert len(names) == len(set(names))
    assert len(CATALOG) == len(_SPECS)


@pytest.mark.parametrize("name", list(CATALOG))
def test_names_and_labels_are_valid_prometheus_identifiers(name: str) -> None:
    """Every name and label name matches Prometheus's grammar; labels are documented bounds."""
    spec = CATALOG[name]
    assert METRIC_NAME.fullmatch(name)
    assert spec.help.strip() and "\n" not in spec.help
    for label in spec.labels:
        assert LABEL_NAME.fullmatch(label) and not label.startswith("__")
        assert label in LABEL_BOUNDS, f"{name}: label {label!r} has no documented bound"
    assert len(set(spec.labels)) == len(spec.labels)


@pytest.mark.parametrize("name", [n for n in CATALOG if n.startswith("opsctl_")])
def test_opsctl_names_follow_the_unit_conventions(name: str) -> None:
    """Counters end in _total; a unit is the name's suffix; Unix times are _timestamp_seconds."""
    spec = CATALOG[name]
    assert name.endswith("_total") == (spec.type == "counter")
    if spec.unit:
        assert spec.unit in {"seconds", "bytes"}
        assert name.endswith(f"_{spec.unit}")
    assert not re.search(r"_(milliseconds|ms|kb|mb|mib|percent|minutes|hours)($|_)", name)
    if "timestamp" in name:
        assert name.endswith("_timestamp_seconds")


def test_contract_names_and_labels_are_all_in_the_catalog() -> None:
    """Every name the shared contract lists exists with exactly its labels."""
    for name, labels in CONTRACT.items():
        assert CATALOG[name].labels == labels, name
    for name in DCGM:
        assert CATALOG[name].labels == ("gpu", "UUID", "device", "modelName", "Hostname")
        assert CATALOG[name].exporter == "gpu"


def test_unknown_name_raises_key_error_naming_it() -> None:
    """A typo is caught at the first use, not published under a wrong name."""
    with pytest.raises(KeyError, match="opsctl_servce_up"):
        gauge(new_registry(), "opsctl_servce_up")
    with pytest.raises(KeyError):
        spec_for("nope")


def test_wrong_type_is_refused() -> None:
    """gauge() of a counter and counter() of a gauge are errors naming the right call."""
    registry = new_registry()
    with pytest.raises(ValueError, match="is a counter"):
        gauge(registry, "opsctl_monitor_cycles_total")
    with pytest.raises(ValueError, match="is a gauge"):
        counter(registry, "opsctl_load1")


def test_asking_twice_returns_the_same_metric_per_registry() -> None:
    """The same registry gets the same object; another registry gets its own."""
    first, second = new_registry(), new_registry()
    assert gauge(first, "opsctl_load1") is gauge(first, "opsctl_load1")
    assert gauge(second, "opsctl_load1") is not gauge(first, "opsctl_load1")


def test_every_catalog_metric_is_exposed_under_its_name_with_its_help() -> None:
    """Created on a registry, each family scrapes under the catalog's name, type and help."""
    registry = new_registry()
    for name, spec in CATALOG.items():
        metric = gauge(registry, name) if spec.type == "gauge" else counter(registry, name)
        child = metric.labels(*["x"] * len(spec.labels)) if spec.labels else metric
        if spec.type == "gauge":
            child.set(2)  # type: ignore[union-attr]
        else:
            child.inc(2)

    families = {
        family.name: family
        for family in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, spec in CATALOG.items():
        family = families[name.removesuffix("_total") if spec.type == "counter" else name]
        assert family.type == spec.type
        assert family.documentation == spec.help
        (sample,) = [s for s in family.samples if s.name == name]
        assert sample.value == 2
        assert set(sample.labels) == set(spec.labels)


def test_new_registry_has_no_default_collectors() -> None:
    """A fresh registry exposes nothing until metrics are created on it."""
    assert generate_latest(new_registry()) == b""


def test_memory_bank_samples_agree_with_the_catalog() -> None:
    """opsctl.memory_bank's gauges use catalog names, help texts and labels verbatim."""
    now = datetime(2026, 12, 4, tzinfo=UTC)
    report = BankReport(
        folder=Path("/nonexistent"),
        profile="cline",
        active=True,
        files=[
            FileReport(name="activeContext.md", expected=True, present=True, entries=3),
            FileReport(
                name="progress.md",
                expected=True,
                present=True,
                entries=1,
                age_seconds=60.0,
                stale=True,
            ),
        ],
        checked_at=now,
    )

    samples = bank_metrics(report)

    assert {sample.name for sample in samples} == {
        "opsctl_memory_bank_active",
        "opsctl_memory_bank_entries",
        "opsctl_memory_bank_age_seconds",
        "opsctl_memory_bank_stale",
    }
    registry = new_registry()
    for sample in samples:
        spec = CATALOG[sample.name]
        assert sample.help == spec.help, sample.name
        assert tuple(sample.labels) == spec.labels, sample.name
        metric = gauge(registry, sample.name)
        (metric.labels(**sample.labels) if sample.labels else metric).set(sample.value)


def test_docs_list_every_metric_with_its_type_and_labels() -> None:
    """docs/metrics.md has a row per catalog name giving its type and its labels."""
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| `([A-Za-z_:0-9]+)` \|.*$", docs, re.MULTILINE)
    }
    for name, spec in CATALOG.items():
        assert name in rows, f"docs/metrics.md does not document {name}"
        cells = [cell.strip() for cell in rows[name].strip("|").split("|")]
        assert cells[1] == spec.type, name
        assert cells[3] == (", ".join(f"`{label}`" for label in spec.labels) or "—"), name
    for label in LABEL_BOUNDS:
        assert f"| `{label}` |" in docs
