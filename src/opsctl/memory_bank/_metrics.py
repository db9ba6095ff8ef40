"""Figures the monitor exports for the memory bank: entries and staleness per file."""

from __future__ import annotations

from dataclasses import dataclass

from opsctl.memory_bank._bank import BankReport


@dataclass(frozen=True)
class Gauge:
    """One Prometheus gauge sample."""

    name: str
    help: str
    labels: dict[str, str]
    value: float


def bank_metrics(report: BankReport) -> list[Gauge]:
    """Return the bank's gauges: whether it is active, and per present file its entries,
    its age in seconds and whether it is stale.
    """
    gauges = [
        Gauge(
            "opsctl_memory_bank_active",
            "1 when every expected file is present.",
            {},
            float(report.active),
        )
    ]
    for file in report.files:
        if not file.present:
            continue
        labels = {"file": file.name}
        gauges.append(
            Gauge(
                "opsctl_memory_bank_entries",
                "Timestamped entries in the file.",
                labels,
                file.entries,
            )
        )
        if file.age_seconds is not None:
            gauges.append(
                Gauge(
                    "opsctl_memory_bank_age_seconds",
                    "Seconds since the file's newest entry (or last change when it has none).",
                    labels,
                    file.age_seconds,
                )
            )
        gauges.append(
            Gauge(
                "opsctl_memory_bank_stale",
                "1 when the file is older than stale_after_days.",
                labels,
                float(file.stale),
            )
        )
    return gauges
