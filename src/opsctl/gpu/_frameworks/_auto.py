"""Automatic cleanup inside the application: a daemon thread that watches the device's
memory and cleans up as usage crosses the warn, soft and hard thresholds.

A level is acted on when usage first reaches it, and again only after a cooldown while
usage stays there, so a process that cannot get under a threshold (TensorFlow's, say) is
not cleaned in a tight loop. Nothing here ever raises into the application's threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from opsctl.gpu._frameworks._library import CleanupReport

logger = logging.getLogger(__name__)

WARN_PERCENT_VARIABLE = "OPSCTL_GPU__POLICY__WARN_PERCENT"
SOFT_PERCENT_VARIABLE = "OPSCTL_GPU__POLICY__SOFT_PERCENT"
HARD_PERCENT_VARIABLE = "OPSCTL_GPU__POLICY__HARD_PERCENT"
"""The same variables override ``[gpu.policy]`` for opsctl itself, so one setting in
``.env`` drives both the monitor's cleanups and the application's own."""

Usage = Callable[[], "tuple[int, int] | None"]
"""Returns ``(used_bytes, total_bytes)`` of the device, or ``None`` when unknown now."""
Reached = Literal["warn", "soft", "hard"]
_RANK: dict[str | None, int] = {None: 0, "warn": 1, "soft": 2, "hard": 3}
_DEFAULTS = {"warn": 80.0, "soft": 90.0, "hard": 97.0}


@dataclass(frozen=True)
class Thresholds:
    """Percentages of device memory in use at which to warn, clean softly, clean hard."""

    warn_percent: float
    soft_percent: float
    hard_percent: float

    def __post_init__(self) -> None:
        values = (self.warn_percent, self.soft_percent, self.hard_percent)
        if not all(0 < value <= 100 for value in values) or sorted(values) != list(values):  # noqa: PLR2004
            message = (
                "GPU thresholds must satisfy 0 < warn <= soft <= hard <= 100, "
                f"got warn {values[0]:g}, soft {values[1]:g}, hard {values[2]:g}"
            )
            raise ValueError(message)

    def reached(self, used_percent: float) -> Reached | None:
        """The highest level ``used_percent`` is at or above, or ``None``."""
        if used_percent >= self.hard_percent:
            return "hard"
        if used_percent >= self.soft_percent:
            return "soft"
        if used_percent >= self.warn_percent:
            return "warn"
        return None


def thresholds_from(
    environ: Mapping[str, str],
    *,
    warn_percent: float | None = None,
    soft_percent: float | None = None,
    hard_percent: float | None = None,
) -> Thresholds:
    """Thresholds from the arguments, else the ``OPSCTL_GPU__POLICY__*_PERCENT`` variables,
    else 80, 90 and 97. Raises ``ValueError`` naming a variable that is not a number.
    """
    given = {"warn": warn_percent, "soft": soft_percent, "hard": hard_percent}
    variables = {
        "warn": WARN_PERCENT_VARIABLE,
        "soft": SOFT_PERCENT_VARIABLE,
        "hard": HARD_PERCENT_VARIABLE,
    }
    chosen: dict[str, float] = {}
    for key, value in given.items():
        if value is not None:
            chosen[key] = float(value)
            continue
        text = environ.get(variables[key], "").strip()
        try:
            chosen[key] = float(text) if text else _DEFAULTS[key]
        except ValueError:
            message = f"{variables[key]}={text!r} is not a percentage"
            raise ValueError(message) from None
    return Thresholds(chosen["warn"], chosen["soft"], chosen["hard"])


class AutoCleanup:
    """The watcher :func:`opsctl.gpu.auto_cleanup` starts; ``stop()`` ends it."""

    def __init__(
        self,
        *,
        thresholds: Thresholds,
        usage: Usage,
        clean: Callable[[str], CleanupReport],
        interval_seconds: float,
        cooldown_seconds: float,
        on_cleanup: Callable[[CleanupReport], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.thresholds = thresholds
        self.interval_seconds = interval_seconds
        self.cooldown_seconds = cooldown_seconds
        self.last_report: CleanupReport | None = None
        self._usage = usage
        self._clean = clean
        self._on_cleanup = on_cleanup
        self._clock = clock
        self._level: Reached | None = None
        self._acted_at: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the watching thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AutoCleanup:
        """Start watching in a daemon thread; return self."""
        if not self.running:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._watch, name="opsctl-gpu-auto-cleanup", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Stop watching and wait up to ``timeout_seconds`` for the thread to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)

    def check_once(self) -> Reached | None:
        """Read usage once and act on it; return the level acted on (``warn`` is only
        logged), or ``None`` when nothing was due.
        """
        reading = self._usage()
        if reading is None or reading[1] <= 0:
            return None
        used_bytes, total_bytes = reading
        percent = 100.0 * used_bytes / total_bytes
        level = self.thresholds.reached(percent)
        now = self._clock()
        rising = _RANK[level] > _RANK[self._level]
        cooled = self._acted_at is None or now - self._acted_at >= self.cooldown_seconds
        self._level = level
        if level is None or not (rising or cooled):
            return None

        self._acted_at = now
        if level == "warn":
            logger.warning(
                "GPU memory at %.1f %% (warn at %g %%)", percent, self.thresholds.warn_percent
            )
            return level
        logger.warning("GPU memory at %.1f %%: %s cleanup", percent, level)
        report = self._clean(level)
        self.last_report = report
        if self._on_cleanup is not None:
            self._on_cleanup(report)
        return level

    def _watch(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            try:
                self.check_once()
            except Exception:  # the application must never see the watcher fail
                logger.warning("Automatic GPU cleanup failed", exc_info=True)


def device_usage_reader() -> Usage:
    """Usage of the device this process uses, read through :func:`read_snapshot` (NVML, or
    recorded answers): the device listing this process among its holders, else the first of
    ``CUDA_VISIBLE_DEVICES`` (index or UUID), else device 0. Raises
    :class:`~opsctl.gpu._model.NoGpuError` when there is no GPU to watch.
    """
    from opsctl.gpu._nvml import read_snapshot

    read_snapshot()

    def usage() -> tuple[int, int] | None:
        snapshot = read_snapshot()
        pid = os.getpid()
        devices = list(snapshot.devices)
        mine = [d for d in devices if any(p.pid == pid for p in d.processes)]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
        chosen = mine or [d for d in devices if visible in {str(d.index), d.uuid}] or devices[:1]
        if not chosen:
            return None
        device = chosen[0]
        if device.memory_used_bytes is None or not device.memory_total_bytes:
            return None
        return device.memory_used_bytes, device.memory_total_bytes

    return usage
