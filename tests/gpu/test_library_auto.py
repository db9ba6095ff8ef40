"""``opsctl.gpu.auto_cleanup``: thresholds from arguments or the environment, a level acted
on when reached and again only after the cooldown, and the default NVML reader.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import opsctl.gpu
from opsctl.gpu._frameworks._auto import AutoCleanup, Thresholds, thresholds_from
from opsctl.gpu._frameworks._library import Cleaner, CleanupReport
from tests.support import wait_for

GIB = 1 << 30


@pytest.fixture(autouse=True)
def fresh_cleaner(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(opsctl.gpu, "_cleaner", Cleaner())
    yield


class Readings:
    """Device usage that the test moves by hand."""

    def __init__(self, percent: float) -> None:
        self.percent = percent

    def __call__(self) -> tuple[int, int]:
        return int(self.percent * GIB), 100 * GIB


def watcher(readings: Readings, clock: list[float], levels: list[str]) -> AutoCleanup:
    def clean(level: str) -> CleanupReport:
        levels.append(level)
        return CleanupReport("hard" if level == "hard" else "soft", ())

    return AutoCleanup(
        thresholds=Thresholds(80, 90, 97),
        usage=readings,
        clean=clean,
        interval_seconds=60,
        cooldown_seconds=30,
        clock=lambda: clock[0],
    )


def test_levels_are_acted_on_when_reached_and_after_the_cooldown() -> None:
    """Rising to soft cleans once; staying there waits for the cooldown; reaching hard acts
    at once; falling below every threshold resets.
    """
    readings, clock, levels = Readings(50), [0.0], []
    auto = watcher(readings, clock, levels)

    assert auto.check_once() is None
    readings.percent = 85
    assert auto.check_once() == "warn"
    readings.percent = 92
    assert auto.check_once() == "soft"
    clock[0] = 10
    assert auto.check_once() is None
    readings.percent = 98
    assert auto.check_once() == "hard"
    clock[0] = 20
    assert auto.check_once() is None
    clock[0] = 41
    assert auto.check_once() == "hard"
    readings.percent = 10
    assert auto.check_once() is None
    readings.percent = 91
    assert auto.check_once() == "soft"
    assert levels == ["soft", "hard", "hard", "soft"]


def test_thresholds_come_from_arguments_then_environment_then_defaults() -> None:
    """Arguments win over OPSCTL_GPU__POLICY__* variables, which win over 80/90/97."""
    environ = {
        "OPSCTL_GPU__POLICY__SOFT_PERCENT": "70",
        "OPSCTL_GPU__POLICY__HARD_PERCENT": "85",
    }
    assert thresholds_from(environ, warn_percent=50) == Thresholds(50, 70, 85)
    assert thresholds_from({}) == Thresholds(80, 90, 97)


def test_bad_thresholds_are_refused() -> None:
    """A variable that is not a number, or thresholds out of order, raise ValueError."""
    with pytest.raises(ValueError, match="OPSCTL_GPU__POLICY__WARN_PERCENT='lots'"):
        thresholds_from({"OPSCTL_GPU__POLICY__WARN_PERCENT": "lots"})
    with pytest.raises(ValueError, match="warn <= soft <= hard"):
        Thresholds(95, 90, 97)


def test_the_thread_cleans_up_when_the_threshold_is_crossed() -> None:
    """Started by auto_cleanup, the watcher thread runs a real soft cleanup on its own once
    usage passes soft, and reports it.
    """
    readings, reports = Readings(40), []
    steps: list[str] = []
    opsctl.gpu.register_cleanup("cache", lambda: steps.append("cache") or 3 * GIB)

    auto = opsctl.gpu.auto_cleanup(
        interval_seconds=0.02,
        usage=readings,
        on_cleanup=reports.append,
        warn_percent=50,
        soft_percent=60,
    )
    try:
        assert auto.running
        readings.percent = 75
        wait_for(lambda: bool(reports), timeout_seconds=10, message="automatic cleanup")
    finally:
        auto.stop()

    assert not auto.running
    assert reports[0].level == "soft"
    assert reports[0].freed_bytes == 3 * GIB
    assert steps[0] == "cache"


def test_a_failing_usage_reader_never_stops_the_watcher() -> None:
    """An exception while reading usage is logged; the thread keeps watching."""
    calls: list[int] = []

    def flaky() -> tuple[int, int]:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("NVML hiccup")
        return 99 * GIB, 100 * GIB

    reports: list[CleanupReport] = []
    auto = opsctl.gpu.auto_cleanup(interval_seconds=0.02, usage=flaky, on_cleanup=reports.append)
    try:
        wait_for(lambda: bool(reports), timeout_seconds=10, message="cleanup after errors")
    finally:
        auto.stop()
    assert reports[0].level == "hard"


def test_default_reader_watches_this_process_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a usage callable, the device listing this process as a holder is watched
    (here GPU 1 of a recorded two-GPU host).
    """
    devices = []
    for index, used in ((0, 10), (1, 95)):
        devices.append(
            {
                "index": index,
                "uuid": f"GPU-{index}",
                "name": "NVIDIA A100-SXM4-80GB",
                "memory_used_bytes": used * GIB,
                "memory_total_bytes": 100 * GIB,
                "processes": [{"pid": os.getpid(), "used_bytes": GIB}] if index == 1 else [],
            }
        )
    recording = tmp_path / "two.json"
    recording.write_text(
        json.dumps(
            {
                "format": "opsctl-gpu-snapshot",
                "version": 1,
                "cuda_driver_version": "12.4",
                "devices": devices,
            }
        )
    )
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))
    from opsctl.gpu._frameworks._auto import device_usage_reader

    assert device_usage_reader()() == (95 * GIB, 100 * GIB)


def test_without_a_gpu_auto_cleanup_warns_and_does_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a host without a GPU the application keeps running: a warning, no thread."""
    recording = tmp_path / "none.json"
    recording.write_text(
        json.dumps(
            {"format": "opsctl-gpu-snapshot", "version": 1, "nvml_error": "DRIVER_NOT_LOADED"}
        )
    )
    monkeypatch.setenv("OPSCTL_GPU_RECORDED", str(recording))

    with caplog.at_level(logging.WARNING):
        auto = opsctl.gpu.auto_cleanup()

    assert not auto.running
    assert "No automatic GPU cleanup" in caplog.text
