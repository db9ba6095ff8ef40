"""Which backups a retention policy keeps: the semantics of restic's ``forget`` (0.16 and later).

A plan is a pure function of the snapshots, the policy and the current time, so ``backup
prune --dry-run`` shows exactly what ``backup prune`` would do, and both backends (archives
and restic) prune by the same rules. ``docs/retention.md`` states the rules with an example.

Deliberate differences from restic: a negative count is a configuration error instead of
meaning "unlimited" (restic's ``unlimited``; a count at least as large as the number of
backups has the same effect), a duration naming one unit twice is an error instead of the
last one winning, and an empty policy is refused by :meth:`Policy.from_section` before any
plan is made. Tags, ``--group-by`` and the ``keep-within-<unit>`` rules are not offered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from opsctl.config._durations import Duration, parse_duration
from opsctl.errors import ConfigError

if TYPE_CHECKING:
    from opsctl.config._model import RetentionSection

SECTION = "backup.retention"
COUNT_FIELDS = ("keep_last", "hourly", "daily", "weekly", "monthly", "yearly")
EMPTY_POLICY_REASON = "policy is empty"
NEWEST_REASON = "newest backup"
_MONTHS_PER_YEAR = 12


@dataclass(frozen=True)
class Policy:
    """Which backups to keep; a backup is kept when any rule keeps it.

    Counts of ``None`` or 0 are off. ``within`` is a restic duration relative to the newest
    backup's time. Raises :class:`ConfigError` for a negative count or a malformed duration.
    """

    keep_last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: str | None = None
    _within: Duration = field(init=False, repr=False, compare=False, default=Duration())

    def __post_init__(self) -> None:
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                message = f"{SECTION}.{name} must be a whole number, not {value!r}."
                raise ConfigError(message)
            if value is not None and value < 0:
                message = f"{SECTION}.{name} is {value}; a retention count must be 0 or more."
                raise ConfigError(message, hint="Set a larger count to keep more backups.")
        if self.within is not None:
            try:
                duration = parse_duration(self.within)
            except ValueError as error:
                message = f"{SECTION}.within: {error}."
                raise ConfigError(message) from None
            object.__setattr__(self, "_within", duration)

    @classmethod
    def from_section(cls, section: RetentionSection) -> Policy:
        """Build the policy ``backup prune`` applies from the validated config section.

        Raises :class:`ConfigError` (exit 2) naming ``backup.retention`` when no rule is set,
        so that a forgotten section never prunes by accident, or when a value is malformed.
        """
        policy = cls(
            keep_last=section.keep_last,
            hourly=section.hourly,
            daily=section.daily,
            weekly=section.weekly,
            monthly=section.monthly,
            yearly=section.yearly,
            within=section.within,
        )
        if policy.is_empty:
            message = f"{SECTION} sets no rule, so there is nothing to prune by."
            hint = (
                "Set at least one of keep_last, hourly, daily, weekly, monthly, yearly (above 0) "
                f"or within (e.g. '30d') in [{SECTION}]."
            )
            raise ConfigError(message, hint=hint)
        return policy

    @property
    def within_duration(self) -> Duration:
        """The parsed ``within``; zero when it is not set."""
        return self._within

    @property
    def is_empty(self) -> bool:
        """True when no rule would keep anything: every count off and no duration."""
        return not any(getattr(self, name) for name in COUNT_FIELDS) and self._within.is_zero

    def describe(self) -> str:
        """One line for operators, e.g. ``keep 3 last, 7 daily and all within 1m of the newest``."""
        counts = [
            f"{getattr(self, name)} {'last' if name == 'keep_last' else name}"
            for name in COUNT_FIELDS
            if getattr(self, name)
        ]
        if not self._within.is_zero:
            counts.append(f"all within {self._within} of the newest")
        if not counts:
            return "keep everything (empty policy)"
        if len(counts) == 1:
            return f"keep {counts[0]}"
        return f"keep {', '.join(counts[:-1])} and {counts[-1]}"


@dataclass(frozen=True)
class Snapshot:
    """One complete backup as retention sees it: an id and an aware creation time."""

    id: str
    time: datetime

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            message = f"snapshot {self.id!r} has a naive time; retention needs an aware one"
            raise ValueError(message)


@dataclass(frozen=True)
class Decision:
    """Whether one snapshot is kept and, if so, every rule that keeps it."""

    snapshot: Snapshot
    keep: bool
    reasons: tuple[str, ...]


# How each counted rule buckets a snapshot, and how restic names the rule in its reasons.
# The key is taken from the time as recorded (opsctl records UTC), like restic does.
_BucketKey = Callable[[datetime, int], object]
_RULES: tuple[tuple[str, _BucketKey, str], ...] = (
    ("keep_last", lambda _time, position: position, "last snapshot"),
    ("hourly", lambda time, _: (time.year, time.month, time.day, time.hour), "hourly snapshot"),
    ("daily", lambda time, _: (time.year, time.month, time.day), "daily snapshot"),
    ("weekly", lambda time, _: time.isocalendar()[:2], "weekly snapshot"),
    ("monthly", lambda time, _: (time.year, time.month), "monthly snapshot"),
    ("yearly", lambda time, _: time.year, "yearly snapshot"),
)


@dataclass
class _Bucket:
    remaining: int
    key: _BucketKey
    reason: str
    last: object = None


def plan(
    snapshots: Sequence[Snapshot], policy: Policy, *, now: datetime | None = None
) -> list[Decision]:
    """Decide for every snapshot whether ``policy`` keeps it; newest first.

    Follows restic's ``forget``: snapshots are sorted newest first (ties keep their given
    order); each counted rule keeps the newest snapshot of each new bucket until its count
    is used up, and also the oldest snapshot while it has count left; ``within`` keeps every
    snapshot newer than the newest snapshot's time minus the duration, where the newest
    snapshot is the newest one not later than ``now`` (default: the current time). An empty
    policy keeps everything. The newest snapshot is never removed.
    """
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.time, reverse=True)
    if policy.is_empty:
        return [
            Decision(snapshot, keep=True, reasons=(EMPTY_POLICY_REASON,)) for snapshot in ordered
        ]

    buckets = [
        _Bucket(remaining=getattr(policy, name), key=key, reason=reason)
        for name, key, reason in _RULES
        if getattr(policy, name)
    ]
    within = policy.within_duration
    threshold = _within_threshold(ordered, within, now or datetime.now(UTC))

    decisions = []
    for position, snapshot in enumerate(ordered):
        reasons = []
        if not within.is_zero and (threshold is None or snapshot.time > threshold):
            reasons.append(f"within {within}")
        is_oldest = position == len(ordered) - 1
        reasons.extend(_counted_reasons(buckets, snapshot, position, is_oldest=is_oldest))
        decisions.append(Decision(snapshot, keep=bool(reasons), reasons=tuple(reasons)))
    return _never_remove_newest(decisions)


def _counted_reasons(
    buckets: list[_Bucket], snapshot: Snapshot, position: int, *, is_oldest: bool
) -> list[str]:
    """Apply each counted rule with count left to one snapshot; return the rules that keep it."""
    reasons = []
    for bucket in buckets:
        if bucket.remaining <= 0:
            continue
        value = bucket.key(snapshot.time, position)
        if value == bucket.last and not is_oldest:
            continue

        # The oldest snapshot is kept while a rule has count left, so the history reaches as
        # far back as it can; restic marks that case "oldest" when the bucket was seen before.
        prefix = "oldest " if value == bucket.last else ""
        reasons.append(prefix + bucket.reason)
        bucket.last = value
        bucket.remaining -= 1
    return reasons


def _within_threshold(
    ordered: Sequence[Snapshot], within: Duration, now: datetime
) -> datetime | None:
    """Return the time a snapshot must be later than to be kept by ``within``.

    The reference is the newest snapshot that is earlier than ``now``: a clock set wrongly
    once must not make every other backup look old. ``None`` means every snapshot is within
    (no snapshot before ``now``, or the duration reaches back before year 1).
    """
    if within.is_zero:
        return None
    latest = next((snapshot.time for snapshot in ordered if snapshot.time < now), None)
    if latest is None:
        return None
    return subtract_duration(latest, within)


def subtract_duration(moment: datetime, duration: Duration) -> datetime | None:
    """Return ``moment`` minus ``duration`` the way restic (Go's ``AddDate``) computes it.

    Years and months move the calendar month; a day that does not exist in the target month
    overflows into the next one (31 March minus 1 month is 3 March, or 2 March in a leap
    year); days move the date; hours are then subtracted as exact elapsed time. The wall
    clock stays in ``moment``'s own zone. Returns ``None`` when the result is before year 1.
    """
    month_index = moment.year * _MONTHS_PER_YEAR + moment.month - 1
    month_index -= duration.years * _MONTHS_PER_YEAR + duration.months
    year, month_zero = divmod(month_index, _MONTHS_PER_YEAR)
    if year < 1:
        return None

    ordinal = date(year, month_zero + 1, 1).toordinal() + moment.day - 1 - duration.days
    if ordinal < 1:
        return None
    wall = datetime.combine(date.fromordinal(ordinal), moment.timetz())
    try:
        return wall.astimezone(UTC) - timedelta(hours=duration.hours)
    except OverflowError:
        return None


def _never_remove_newest(decisions: list[Decision]) -> list[Decision]:
    """Keep the newest snapshot whatever the rules said.

    restic's rules already keep it under every non-empty policy; this guard makes the promise
    hold by construction, so no plan can ever remove every backup.
    """
    if not decisions or decisions[0].keep:
        return decisions
    newest = decisions[0]
    return [Decision(newest.snapshot, keep=True, reasons=(NEWEST_REASON,)), *decisions[1:]]
