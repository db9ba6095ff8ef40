"""One state machine per alert: fire after N bad observations, resolve after M good ones,
detect flapping, repeat while firing, and notify only what on-call has not been told yet.

Everything here is pure: a state and an observation in, a new state, the transitions to
record and the notices to send out. The clock is a parameter, so tests drive it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Level = Literal["ok", "warning", "critical"]
_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertPolicy:
    """How many observations it takes to fire, resolve and flap, and how often to repeat."""

    fire_after: int = 2
    resolve_after: int = 2
    repeat_interval_seconds: float = 3600.0
    flap_window: int = 20
    flap_changes: int = 6

    @property
    def settle_below(self) -> int:
        """Flapping ends once the window holds fewer changes than this: half the trigger,
        so an alert hovering at the trigger does not announce flapping again and again.
        """
        return (self.flap_changes + 1) // 2


@dataclass(frozen=True)
class Observation:
    """What one cycle saw for one alert: its level and how to describe it."""

    key: str
    level: Level
    title: str
    service: str | None = None
    value: str | None = None
    threshold: str | None = None
    hint: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class AlertState:
    """Everything remembered about one alert between cycles (and across restarts).

    ``announced`` is what on-call was last told: ``ok``, a severity, or ``flapping``;
    notifications are the difference between it and the current state.
    """

    key: str
    state: Literal["ok", "firing"] = "ok"
    severity: Level = "ok"
    bad_streak: int = 0
    good_streak: int = 0
    critical_streak: int = 0
    calm_streak: int = 0
    recent: tuple[bool, ...] = ()
    flapping: bool = False
    announced: str = "ok"
    since: float = 0.0
    last_sent_at: float | None = None
    last_observed_at: float = 0.0
    last: Observation | None = None

    @property
    def display_state(self) -> str:
        """``ok``, ``pending`` (bad, not yet for long enough), ``firing`` or ``flapping``."""
        if self.flapping:
            return "flapping"
        if self.state == "ok" and self.bad_streak:
            return "pending"
        return self.state

    @property
    def changes(self) -> int:
        """Changes between good and bad within the recent observations."""
        return sum(1 for a, b in zip(self.recent, self.recent[1:], strict=False) if a != b)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, read back by :meth:`from_dict`."""
        data = asdict(self)
        data["recent"] = "".join("1" if bad else "0" for bad in self.recent)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertState:
        """Rebuild a state written by :meth:`to_dict`."""
        values = dict(data)
        values["recent"] = tuple(char == "1" for char in str(values.get("recent", "")))
        last = values.get("last")
        values["last"] = Observation(**last) if isinstance(last, dict) else None
        return cls(**values)


@dataclass(frozen=True)
class Notice:
    """A notification to send: ``event`` is firing, resolved, repeat or flapping."""

    key: str
    event: str
    severity: str
    title: str
    service: str | None = None
    value: str | None = None
    threshold: str | None = None
    hint: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Transition:
    """A change worth keeping in the history: fired, resolved, escalated, de-escalated,
    flapping, settled; whether it was held back by a silence; and what became of its
    notification: ``queued`` once handed to the notifier, ``notified`` (and no longer
    queued) once Slack confirmed delivery.
    """

    key: str
    at: float
    event: str
    from_state: str
    to_state: str
    severity: str
    service: str | None = None
    value: str | None = None
    detail: str | None = None
    notified: bool = False
    silenced: bool = False
    queued: bool = False


@dataclass(frozen=True)
class Step:
    """The outcome of one observation."""

    state: AlertState
    transitions: tuple[Transition, ...] = ()
    notices: tuple[Notice, ...] = field(default_factory=tuple)


def observe(
    previous: AlertState,
    observation: Observation,
    *,
    now: float,
    policy: AlertPolicy,
    silenced: bool = False,
) -> Step:
    """Feed one observation to an alert's state machine and return what follows from it.

    A silenced alert still changes state and records transitions, but sends nothing; once
    the silence ends, the next observation tells on-call whatever changed meanwhile.
    """
    counted = _count(previous, observation, policy=policy, now=now)
    moved, events = _move(counted, observation, policy=policy, now=now)
    notices = () if silenced else _notices(moved, observation, policy=policy, now=now)
    announced = moved.announced
    last_sent_at = moved.last_sent_at
    for notice in notices:
        announced = _announced_after(notice, moved, announced)
        last_sent_at = now
    final = replace(moved, announced=announced, last_sent_at=last_sent_at)
    # Only queued here: whether Slack took it is known later, from the notifier.
    transitions = tuple(replace(event, queued=bool(notices), silenced=silenced) for event in events)
    return Step(final, transitions, notices)


def _count(
    state: AlertState, observation: Observation, *, policy: AlertPolicy, now: float
) -> AlertState:
    bad = observation.level != "ok"
    critical = observation.level == "critical"
    return replace(
        state,
        bad_streak=state.bad_streak + 1 if bad else 0,
        good_streak=0 if bad else state.good_streak + 1,
        critical_streak=state.critical_streak + 1 if critical else 0,
        calm_streak=0 if critical else state.calm_streak + 1,
        recent=(*state.recent, bad)[-policy.flap_window :],
        last_observed_at=now,
        last=observation,
    )


def _move(
    state: AlertState, observation: Observation, *, policy: AlertPolicy, now: float
) -> tuple[AlertState, list[Transition]]:
    events: list[Transition] = []

    def record(event: str, before: str, after: AlertState) -> AlertState:
        events.append(
            Transition(
                key=state.key,
                at=now,
                event=event,
                from_state=before,
                to_state=after.display_state,
                severity=after.severity if after.state == "firing" else observation.level,
                service=observation.service,
                value=observation.value,
                detail=observation.detail,
            )
        )
        return after

    before = state.display_state
    if state.state == "ok" and state.bad_streak >= policy.fire_after:
        critical = state.critical_streak >= policy.fire_after
        severity: Level = "critical" if critical else "warning"
        state = record(
            "firing", before, replace(state, state="firing", severity=severity, since=now)
        )
    elif state.state == "firing" and state.good_streak >= policy.resolve_after:
        state = record("resolved", before, replace(state, state="ok", severity="ok", since=now))
    elif state.state == "firing" and state.severity == "warning":
        if state.critical_streak >= policy.fire_after:
            state = record("escalated", before, replace(state, severity="critical"))
    elif state.state == "firing" and state.calm_streak >= policy.resolve_after:
        state = record("deescalated", before, replace(state, severity="warning"))

    before = state.display_state
    changes = state.changes
    if not state.flapping and changes >= policy.flap_changes:
        state = record("flapping", before, replace(state, flapping=True))
    elif state.flapping and changes < policy.settle_below:
        state = record("settled", before, replace(state, flapping=False))
    return state, events


def _notices(
    state: AlertState, observation: Observation, *, policy: AlertPolicy, now: float
) -> tuple[Notice, ...]:
    def notice(event: str, severity: str, title: str) -> Notice:
        return Notice(
            key=state.key,
            event=event,
            severity=severity,
            title=title,
            service=observation.service,
            value=observation.value,
            threshold=observation.threshold,
            hint=observation.hint,
            detail=observation.detail,
        )

    announced = state.announced
    if state.flapping:
        if announced == "flapping":
            return ()
        title = (
            f"{observation.title}: flapping, {state.changes} changes "
            f"in the last {len(state.recent)} checks"
        )
        return (notice("flapping", "warning", title),)

    after_flapping = " (stopped flapping)" if announced == "flapping" else ""
    if state.state == "ok":
        if announced == "ok":
            return ()
        # The severity it had: "Severity (was)" in the message.
        was = announced if announced in {"warning", "critical"} else "warning"
        return (notice("resolved", was, f"{observation.title}{after_flapping}"),)

    if announced in {"ok", "flapping"} or _RANK[state.severity] > _RANK.get(announced, 0):
        return (notice("firing", state.severity, f"{observation.title}{after_flapping}"),)
    repeat = policy.repeat_interval_seconds
    if repeat > 0 and state.last_sent_at is not None and now - state.last_sent_at >= repeat:
        return (notice("repeat", state.severity, observation.title),)
    return ()


def _announced_after(notice: Notice, state: AlertState, announced: str) -> str:
    if notice.event == "flapping":
        return "flapping"
    if notice.event == "resolved":
        return "ok"
    if notice.event == "repeat":
        return announced
    return state.severity
