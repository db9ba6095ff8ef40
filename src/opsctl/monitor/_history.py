"""Reading the monitor's memory for people: history with uptime, alert states, silences."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsctl.errors import UsageError
from opsctl.monitor._alerts import AlertState, Transition
from opsctl.monitor._silences import (
    LONGEST_DURATION,
    LONGEST_SILENCE,
    LONGEST_TARGET_CHARACTERS,
    Silence,
    describe,
    iso_utc,
    parse_duration,
    shorten,
)
from opsctl.monitor._store import Uptime, open_store, store_exists

if TYPE_CHECKING:
    from opsctl.config import Project

# Far beyond any retention worth keeping; a bound, so that the start is a real date.
LONGEST_SINCE = LONGEST_DURATION


@dataclass(frozen=True)
class History:
    """What the monitor recorded since ``since``: transitions (oldest first), uptime per
    check, and the alerts firing now.
    """

    since: datetime
    transitions: list[Transition]
    uptime: list[Uptime]
    firing: list[AlertState]
    recorded: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``opsctl health --history --json`` prints."""
        return {
            "since": iso_utc(self.since),
            "recorded": self.recorded,
            "uptime": [
                {
                    "check": u.name,
                    "service": u.service,
                    "uptime_percent": None
                    if u.uptime_percent is None
                    else round(u.uptime_percent, 3),
                    "pass": u.passed,
                    "warn": u.warned,
                    "fail": u.failed,
                    "skip": u.skipped,
                    "mean_duration_ms": round(u.mean_duration_ms, 1),
                }
                for u in self.uptime
            ],
            "transitions": [transition_dict(t) for t in self.transitions],
            "firing": [alert_dict(a) for a in self.firing],
        }


def read_history(project: Project, *, since: timedelta) -> History:
    """Read what the monitor recorded over the last ``since``; an empty history (with
    ``recorded`` false) when the monitor never ran for this project.
    """
    start = datetime.now(UTC) - since
    if not store_exists(project.state_dir):
        return History(start, [], [], [], recorded=False)
    store = open_store(project.state_dir)
    try:
        transitions = store.transitions(since=start.timestamp())
        uptime = store.uptime(since=start.timestamp())
        firing = [a for a in store.load_alerts().values() if a.state == "firing"]
    finally:
        store.close()
    return History(start, transitions, uptime, sorted(firing, key=lambda a: a.key), recorded=True)


def parse_since(text: str) -> timedelta:
    """Parse ``--since`` (``24h``, ``7d``, ``30m``; at most :data:`LONGEST_SINCE`).

    Raises :class:`UsageError` for anything else.
    """
    return parse_duration(text, what="--since duration", longest=LONGEST_SINCE)


def alert_states(project: Project) -> list[AlertState]:
    """Every alert the monitor knows, by key."""
    if not store_exists(project.state_dir):
        return []
    store = open_store(project.state_dir)
    try:
        return sorted(store.load_alerts().values(), key=lambda state: state.key)
    finally:
        store.close()


def add_silence(
    project: Project, target: str, duration: timedelta, *, reason: str, everything: bool = False
) -> Silence:
    """Silence ``target`` (an alert key, glob, alert family or service) for ``duration``.

    A target of wildcards only (``*``) silences every alert, so it takes ``everything``.
    Raises :class:`UsageError` for an empty target, one over
    :data:`LONGEST_TARGET_CHARACTERS`, a wildcard-only one without ``everything``, or a
    duration over :data:`LONGEST_SILENCE`.
    """
    target = check_target(target, everything=everything)
    if duration > LONGEST_SILENCE:
        message = f"A silence lasts at most {describe(LONGEST_SILENCE)}; fix the cause instead."
        raise UsageError(message)
    store = open_store(project.state_dir)
    try:
        return store.add_silence(target, duration, reason)
    finally:
        store.close()


def check_target(target: str, *, everything: bool) -> str:
    """``target`` stripped, once it is one a silence can hold; raises :class:`UsageError`
    as :func:`add_silence` says.
    """
    target = target.strip()
    if not target:
        message = "Name an alert or a service to silence (see: opsctl monitor alerts)."
        raise UsageError(message)
    if len(target) > LONGEST_TARGET_CHARACTERS or not target.isprintable():
        message = (
            f"'{shorten(target)}' is not a silence target: it must be printable and at "
            f"most {LONGEST_TARGET_CHARACTERS} characters ({len(target)} given)."
        )
        raise UsageError(message, hint="Name an alert, a family, a glob or a service.")
    if set(target) <= set("*?") and not everything:
        message = f"'{target}' silences every alert of the project."
        raise UsageError(message, hint="Add --all if that is what you mean.")
    return target


def list_silences(project: Project, *, include_expired: bool = False) -> list[Silence]:
    """The silences in force (and, with ``include_expired``, the expired ones kept)."""
    if not store_exists(project.state_dir):
        return []
    store = open_store(project.state_dir)
    try:
        return store.silences(include_expired=include_expired)
    finally:
        store.close()


def remove_silences(project: Project, which: str) -> list[Silence]:
    """End the silence with id ``which``, or every silence in force whose target is
    ``which``; return those ended. Raises :class:`UsageError` when none matches.
    """
    active = list_silences(project)
    chosen = [s for s in active if str(s.id) == which.strip() or s.target == which.strip()]
    if not chosen:
        known = ", ".join(f"{s.id} ({shorten(s.target, 40)})" for s in active[:10]) or "none"
        if len(active) > 10:  # noqa: PLR2004 (enough to recognise one)
            known += f" and {len(active) - 10} more"
        message = (
            f"No silence in force has the id or target '{shorten(which.strip())}' "
            f"(in force: {known})."
        )
        raise UsageError(message, hint="List them with: opsctl monitor silences")
    store = open_store(project.state_dir)
    try:
        store.remove_silences([s.id for s in chosen])
    finally:
        store.close()
    return chosen


def known_targets(project: Project) -> set[str]:
    """Alert keys, their families and services the monitor has seen: what a silence can
    name without surprise.
    """
    targets: set[str] = set(project.services)
    for state in alert_states(project):
        targets.add(state.key)
        targets.add(state.key.split(":", 1)[0])
        if state.last is not None and state.last.service:
            targets.add(state.last.service)
    return targets


def transition_dict(t: Transition) -> dict[str, Any]:
    """A transition as JSON, its time in UTC ISO 8601."""
    data = asdict(t)
    data["at"] = iso_utc(datetime.fromtimestamp(t.at, UTC))
    return data


def alert_dict(state: AlertState) -> dict[str, Any]:
    """An alert's state as ``opsctl monitor alerts --json`` shows it."""
    last = state.last
    return {
        "alert": state.key,
        "state": state.display_state,
        "severity": state.severity if state.state == "firing" else None,
        "since": iso_utc(datetime.fromtimestamp(state.since, UTC)) if state.since else None,
        "last_observed_at": iso_utc(datetime.fromtimestamp(state.last_observed_at, UTC))
        if state.last_observed_at
        else None,
        "announced": state.announced,
        "title": last.title if last else None,
        "service": last.service if last else None,
        "value": last.value if last else None,
        "threshold": last.threshold if last else None,
        "detail": last.detail if last else None,
    }
