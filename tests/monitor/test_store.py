"""The monitor's SQLite memory: alerts, silences, results, transitions, retention."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsctl.errors import UsageError
from opsctl.monitor import AlertPolicy, AlertState, Observation, observe, parse_duration
from opsctl.monitor._store import BUCKET_SECONDS, CheckSample, open_store


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("45s", 45), ("2w", 1209600)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    """Durations are a number and a unit, possibly several."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "m", "1x", "-5m", "0m", "1h 30m", "5 minutes"])
def test_bad_durations_are_usage_errors_naming_the_text(text: str) -> None:
    """Anything else is refused with the text and the expected form."""
    with pytest.raises(UsageError, match="for example 30m"):
        parse_duration(text)


def test_alert_states_survive_reopening(tmp_path: Path) -> None:
    """States written by one monitor are what the next one starts from."""
    store = open_store(tmp_path)
    policy = AlertPolicy()
    state = AlertState("disk_free:/srv")
    for index in range(3):
        step = observe(
            state, Observation(state.key, "critical", "Disk"), now=float(index), policy=policy
        )
        state = step.state
        store.save_alerts([state], step.transitions)
    store.close()

    reopened = open_store(tmp_path)
    assert reopened.load_alerts() == {"disk_free:/srv": state}
    assert [t.event for t in reopened.transitions(since=0)] == ["firing"]
    reopened.close()


def test_database_is_wal_and_private(tmp_path: Path) -> None:
    """WAL lets readers in while the monitor writes; nobody else may read it."""
    open_store(tmp_path).close()
    path = tmp_path / "monitor.sqlite"
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert path.stat().st_mode & 0o077 == 0


def test_silences_expire_by_themselves_and_can_be_removed(tmp_path: Path) -> None:
    """A silence is listed until it expires or is removed; expired ones only with --all."""
    store = open_store(tmp_path)
    short = store.add_silence("redis_up", timedelta(seconds=0.3), "restart")
    long = store.add_silence("api", timedelta(hours=2), "deploy")

    assert [s.id for s in store.silences()] == [short.id, long.id]
    time.sleep(0.4)
    assert [s.id for s in store.silences()] == [long.id]
    assert [s.id for s in store.silences(include_expired=True)] == [short.id, long.id]

    assert store.remove_silences([long.id]) == 1
    assert store.remove_silences([long.id]) == 0
    assert store.silences() == []
    store.close()


def test_silence_matches_key_family_glob_and_service(tmp_path: Path) -> None:
    """A target names an alert, its family, a glob over keys, or a service."""
    store = open_store(tmp_path)
    family = store.add_silence("disk_free", timedelta(hours=1), "")
    glob = store.add_silence("gpu_*:0", timedelta(hours=1), "")
    service = store.add_silence("api", timedelta(hours=1), "")
    store.close()

    assert family.matches("disk_free:/srv", None)
    assert not family.matches("disk_freeze", None)
    assert glob.matches("gpu_memory:0", None)
    assert not glob.matches("gpu_memory:1", None)
    assert service.matches("check:api:process", "api")
    assert not service.matches("check:worker:process", "worker")
    assert not family.active(datetime.now(UTC) + timedelta(hours=2))


def test_results_make_uptime_and_check_transitions(tmp_path: Path) -> None:
    """Runs are counted per bucket; a status change of a check is a transition."""
    store = open_store(tmp_path)
    at = 1_700_000_000.0 - 1_700_000_000.0 % BUCKET_SECONDS
    statuses = ["pass", "pass", "fail", "fail", "pass", "warn", "pass", "pass"]
    changes = []
    for index, status in enumerate(statuses):
        sample = CheckSample("api:http", status, 10 + index, f"run {index}", "api")
        changes += store.record_results([sample], at=at + index)

    assert [(c.from_state, c.to_state) for c in changes] == [
        ("pass", "fail"),
        ("fail", "pass"),
        ("pass", "warn"),
        ("warn", "pass"),
    ]
    [uptime] = store.uptime(since=at)
    assert (uptime.passed, uptime.warned, uptime.failed) == (5, 1, 2)
    assert uptime.uptime_percent == pytest.approx(75.0)
    assert uptime.service == "api"
    store.close()


def test_prune_drops_what_is_older_than_retention(tmp_path: Path) -> None:
    """Results and transitions older than the cut are deleted, newer ones kept."""
    store = open_store(tmp_path)
    old, new = 1_000_000.0, 2_000_000.0
    for at in (old, new):
        store.record_results([CheckSample("c", "pass", 1, "")], at=at)
        store.record_results([CheckSample("c", "fail", 1, "")], at=at + 1)

    store.prune(older_than=1_500_000.0)

    assert [t.at for t in store.transitions(since=0)] == [new, new + 1]
    assert [u.passed + u.failed for u in store.uptime(since=0)] == [2]
    store.close()
