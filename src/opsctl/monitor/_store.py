"""The monitor's memory: alert states, silences, check results and transitions, in one
SQLite file under the state folder (WAL, so ``health --history`` and ``monitor silence``
read and write while the monitor runs).

Check results are kept as counts per check and five-minute bucket, not one row per run:
uptime over days stays a cheap query and the file stays small at any interval.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsctl.errors import OperationFailedError
from opsctl.monitor._alerts import AlertState, Transition
from opsctl.monitor._silences import Silence
from opsctl.monitor._store_file import DamagedStoreError, is_damage, move_aside, prepare_file
from opsctl.monitor._text import one_line

logger = logging.getLogger(__name__)

FILE_NAME = "monitor.sqlite"
BUCKET_SECONDS = 300
_SCHEMA_VERSION = 2  # 2: transitions.queued
_BUSY_TIMEOUT_SECONDS = 10.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at REAL);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, reason TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, created_by TEXT NOT NULL,
    removed_at REAL);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, key TEXT NOT NULL,
    event TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    severity TEXT NOT NULL, service TEXT, value TEXT, detail TEXT,
    notified INTEGER NOT NULL DEFAULT 0, silenced INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
CREATE TABLE IF NOT EXISTS check_buckets (
    name TEXT NOT NULL, bucket REAL NOT NULL, service TEXT,
    pass INTEGER NOT NULL DEFAULT 0, warn INTEGER NOT NULL DEFAULT 0,
    fail INTEGER NOT NULL DEFAULT 0, skip INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, bucket));
CREATE TABLE IF NOT EXISTS check_latest (
    name TEXT PRIMARY KEY, status TEXT NOT NULL, at REAL NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_INSERT_TRANSITION = (
    "INSERT INTO transitions (at, key, event, from_state, to_state, severity, service, value,"
    " detail, notified, silenced, queued) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class CheckSample:
    """One check result as the history keeps it."""

    name: str
    status: str
    duration_ms: int
    detail: str
    service: str | None = None


@dataclass(frozen=True)
class Uptime:
    """How a check fared over a period: runs per status and the share it was up."""

    name: str
    service: str | None
    passed: int
    warned: int
    failed: int
    skipped: int
    mean_duration_ms: float

    @property
    def uptime_percent(self) -> float | None:
        """Share of runs that passed or only warned; ``None`` without a judged run."""
        judged = self.passed + self.warned + self.failed
        return 100.0 * (self.passed + self.warned) / judged if judged else None


class MonitorStore:
    """An open history database; one per thread, closed with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        """Open the database at ``path``, a regular file already made by
        :func:`~opsctl.monitor._store_file.prepare_file`. Raises :class:`sqlite3.Error`
        when SQLite cannot use it and :class:`DamagedStoreError` when its check fails.
        """
        self.path = path
        self._connection = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            self._prepare()
        except BaseException:
            self._connection.close()
            raise

    def _prepare(self) -> None:
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        # A file cut short or overwritten can still open; its pages then fail one by one,
        # mid-cycle, so they are checked once here.
        verdict = self._connection.execute("PRAGMA quick_check(1)").fetchone()
        if verdict is None or verdict[0] != "ok":
            raise DamagedStoreError(str(verdict[0] if verdict else "no answer"))
        if self._connection.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as db:
            # Read again under the write lock: another process may have migrated meanwhile.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < 1:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
            elif version < 2:  # noqa: PLR2004 (schema versions)
                db.execute("ALTER TABLE transitions ADD COLUMN queued INTEGER NOT NULL DEFAULT 0")
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database."""
        self._connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    # Alerts

    def load_alerts(self) -> dict[str, AlertState]:
        """Every remembered alert state, by key; an unreadable row is logged and skipped."""
        states: dict[str, AlertState] = {}
        for key, text in self._connection.execute("SELECT key, state FROM alerts"):
            try:
                states[key] = AlertState.from_dict(json.loads(text))
            except (ValueError, TypeError) as error:
                logger.warning(
                    "Ignoring the unreadable state of alert %s: %s", one_line(key), one_line(error)
                )
        return states

    def save_alerts(self, states: Iterable[AlertState], transitions: Sequence[Transition]) -> None:
        """Write changed alert states and new transitions in one transaction."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO alerts (key, state, updated_at) VALUES (?, ?, ?)",
                [(s.key, json.dumps(s.to_dict()), now) for s in states],
            )
            db.executemany(
                _INSERT_TRANSITION,
                [_transition_row(t) for t in transitions],
            )

    def mark_notified(self, delivered: Iterable[tuple[str, float]]) -> int:
        """Record that Slack confirmed the notification of alert ``key`` at ``at`` (Unix
        seconds), for each pair in ``delivered``: its queued transitions become notified.
        Return how many transitions changed.
        """
        # The time went through the notifier's queue in microseconds; allow for rounding.
        with self._transaction() as db:
            cursor = db.executemany(
                "UPDATE transitions SET notified = 1, queued = 0"
                " WHERE key = ? AND queued = 1 AND at BETWEEN ? AND ?",
                [(key, at - 0.001, at + 0.001) for key, at in delivered],
            )
        return cursor.rowcount

    def forget_alerts(self, keys: Iterable[str]) -> None:
        """Drop the states of alerts nobody observes any more."""
        with self._transaction() as db:
            db.executemany("DELETE FROM alerts WHERE key = ?", [(key,) for key in keys])

    # Silences

    def add_silence(self, target: str, duration: timedelta, reason: str) -> Silence:
        """Silence ``target`` from now for ``duration``; return the new silence."""
        created = datetime.now(UTC)
        expires = created + duration
        by = f"{_user()}@{socket.gethostname()}"
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (target, reason, created_at, expires_at, created_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (target, reason, created.timestamp(), expires.timestamp(), by),
            )
        return Silence(int(cursor.lastrowid or 0), target, reason, created, expires, by)

    def silences(self, *, include_expired: bool = False) -> list[Silence]:
        """Silences not removed (and, unless ``include_expired``, not expired), oldest first."""
        query = "SELECT id, target, reason, created_at, expires_at, created_by FROM silences"
        query += " WHERE removed_at IS NULL"
        parameters: tuple[float, ...] = ()
        if not include_expired:
            query += " AND expires_at > ?"
            parameters = (time.time(),)
        rows = self._connection.execute(query + " ORDER BY id", parameters).fetchall()
        return [
            Silence(
                id=row[0],
                target=row[1],
                reason=row[2],
                created_at=datetime.fromtimestamp(row[3], UTC),
                expires_at=datetime.fromtimestamp(row[4], UTC),
                created_by=row[5],
            )
            for row in rows
        ]

    def remove_silences(self, ids: Sequence[int]) -> int:
        """Remove the silences ``ids``; return how many were active and are now removed."""
        with self._transaction() as db:
            cursor = db.executemany(
                "UPDATE silences SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                [(time.time(), silence_id) for silence_id in ids],
            )
        return cursor.rowcount

    # Check results

    def record_results(self, samples: Sequence[CheckSample], *, at: float) -> list[Transition]:
        """Add one run of each check to its bucket; return (and store) a transition for each
        check whose status differs from its previous run.
        """
        bucket = at - at % BUCKET_SECONDS
        previous = dict(self._connection.execute("SELECT name, status FROM check_latest"))
        changes = [
            Transition(
                key=f"check:{s.name}",
                at=at,
                event="check",
                from_state=previous[s.name],
                to_state=s.status,
                severity=s.status,
                service=s.service,
                detail=s.detail,
            )
            for s in samples
            if s.name in previous and previous[s.name] != s.status
        ]
        with self._transaction() as db:
            for status in ("pass", "warn", "fail", "skip"):
                rows = [
                    (s.name, bucket, s.service, s.duration_ms)
                    for s in samples
                    if s.status == status
                ]
                db.executemany(
                    f"INSERT INTO check_buckets (name, bucket, service, {status}, duration_ms)"  # noqa: S608 (a fixed column name)
                    " VALUES (?, ?, ?, 1, ?) ON CONFLICT (name, bucket) DO UPDATE SET"
                    f" {status} = {status} + 1, duration_ms = duration_ms + excluded.duration_ms",
                    rows,
                )
            db.executemany(
                "INSERT OR REPLACE INTO check_latest (name, status, at, detail)"
                " VALUES (?, ?, ?, ?)",
                [(s.name, s.status, at, s.detail) for s in samples],
            )
            db.executemany(
                _INSERT_TRANSITION,
                [_transition_row(t) for t in changes],
            )
        return changes

    # History

    def transitions(self, *, since: float, limit: int = 1000) -> list[Transition]:
        """Transitions at or after ``since``, newest last (at most ``limit``, the newest)."""
        rows = self._connection.execute(
            "SELECT key, at, event, from_state, to_state, severity, service, value, detail,"
            " notified, silenced, queued FROM transitions WHERE at >= ? ORDER BY id DESC LIMIT ?",
            (since, limit),
        ).fetchall()
        return [
            Transition(
                key=row[0],
                at=row[1],
                event=row[2],
                from_state=row[3],
                to_state=row[4],
                severity=row[5],
                service=row[6],
                value=row[7],
                detail=row[8],
                notified=bool(row[9]),
                silenced=bool(row[10]),
                queued=bool(row[11]),
            )
            for row in reversed(rows)
        ]

    def uptime(self, *, since: float) -> list[Uptime]:
        """Per check, the runs in buckets from the one holding ``since`` on, by name."""
        rows = self._connection.execute(
            "SELECT name, MAX(service), SUM(pass), SUM(warn), SUM(fail), SUM(skip),"
            " SUM(duration_ms) FROM check_buckets WHERE bucket >= ? GROUP BY name ORDER BY name",
            (since - since % BUCKET_SECONDS,),
        ).fetchall()
        result = []
        for name, service, passed, warned, failed, skipped, duration_ms in rows:
            runs = passed + warned + failed + skipped
            mean = duration_ms / runs if runs else 0.0
            result.append(Uptime(name, service, passed, warned, failed, skipped, mean))
        return result

    # Components

    def components_seen(self) -> dict[str, float]:
        """When each component was last seen reporting (Unix seconds), by name."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = 'components'").fetchone()
        if row is None:
            return {}
        try:
            data = json.loads(row[0])
            return {str(name): float(seen) for name, seen in data.items()}
        except (ValueError, TypeError, AttributeError):
            return {}

    def save_components_seen(self, seen: dict[str, float]) -> None:
        """Remember when each component was last seen."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('components', ?)",
                (json.dumps(seen, sort_keys=True),),
            )

    # Retention

    def prune(self, *, older_than: float) -> int:
        """Delete results and transitions older than ``older_than``; return rows deleted."""
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM transitions WHERE at < ?", (older_than,)).rowcount
            deleted += db.execute(
                "DELETE FROM check_buckets WHERE bucket < ?", (older_than,)
            ).rowcount
            deleted += db.execute(
                "DELETE FROM silences WHERE expires_at < ? OR removed_at < ?",
                (older_than, older_than),
            ).rowcount
        return deleted


def store_exists(state_dir: Path) -> bool:
    """Tell whether ``state_dir`` has a monitor database (or a link in its place)."""
    return os.path.lexists(state_dir / FILE_NAME)


def open_store(state_dir: Path) -> MonitorStore:
    """Open (creating if needed) the monitor database in ``state_dir``.

    A damaged file is moved aside as ``monitor.sqlite.damaged-<UTC time>`` (a warning
    names it) and a fresh one is started. Raises :class:`~opsctl.errors.ConfigError`
    (exit 2) when the file or a companion of it is a symbolic link or not a regular file,
    and :class:`~opsctl.errors.OperationFailedError` when SQLite cannot open it otherwise.
    """
    path = state_dir / FILE_NAME
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for attempt in (1, 2):
        inode = prepare_file(path)
        try:
            return MonitorStore(path)
        except DamagedStoreError as error:
            reason = f"integrity check: {error}"
        except sqlite3.DatabaseError as error:
            if not is_damage(error) or attempt == 2:  # noqa: PLR2004 (the retry)
                raise _cannot_open(path, error) from None
            reason = str(error)
        moved = move_aside(path, inode=inode)
        if moved is not None:
            logger.warning(
                "The monitor's history %s is damaged (%s); moved it to %s and started a fresh one.",
                path,
                one_line(reason),
                moved,
            )
    message = f"The monitor's history {path} is damaged again right after being replaced."
    raise OperationFailedError(message, hint="Check the disk holding the state folder.")


def _cannot_open(path: Path, error: sqlite3.Error) -> OperationFailedError:
    message = f"Cannot open the monitor's history {path}: {one_line(error)}."
    return OperationFailedError(message, hint="Check the state folder's owner and free space.")


def _transition_row(t: Transition) -> tuple[object, ...]:
    return (
        t.at,
        t.key,
        t.event,
        t.from_state,
        t.to_state,
        t.severity,
        t.service,
        t.value,
        t.detail,
        int(t.notified),
        int(t.silenced),
        int(t.queued),
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
