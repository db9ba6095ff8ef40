"""Properties every retention plan has, whatever the backups and the policy."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsctl.backup._retention import (
    COUNT_FIELDS,
    Decision,
    Policy,
    Snapshot,
    plan,
    subtract_duration,
)

START = datetime(2023, 12, 25, tzinfo=UTC)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Offsets cluster backups into the same hours, days and weeks often enough to matter, and
# spread them over a few years so monthly and yearly buckets differ too.
offsets = st.one_of(
    st.integers(0, 6 * 60),
    st.integers(0, 30 * 24 * 60),
    st.integers(0, 3 * 366 * 24 * 60),
).map(lambda minutes: timedelta(minutes=minutes))

backup_lists = st.lists(offsets, max_size=40).map(
    lambda deltas: [Snapshot(f"b{index}", START + delta) for index, delta in enumerate(deltas)]
)
counts = st.one_of(st.none(), st.integers(0, 8))
durations = st.one_of(
    st.none(),
    st.builds(
        lambda y, m, d, h: f"{y}y{m}m{d}d{h}h",
        st.integers(0, 1),
        st.integers(0, 3),
        st.integers(0, 20),
        st.integers(0, 30),
    ),
)
policies = st.builds(
    Policy,
    keep_last=counts,
    hourly=counts,
    daily=counts,
    weekly=counts,
    monthly=counts,
    yearly=counts,
    within=durations,
)
# "now" is mostly after every backup; sometimes inside the range, so some are in the future.
nows = st.one_of(st.just(datetime(2030, 1, 1, tzinfo=UTC)), offsets.map(lambda d: START + d))


def kept_ids(decisions: list[Decision]) -> set[str]:
    return {d.snapshot.id for d in decisions if d.keep}


@SETTINGS
@given(backup_lists, policies, nows)
def test_plan_covers_every_backup_once_newest_first(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    decisions = plan(backups, policy, now=now)

    assert sorted(d.snapshot.id for d in decisions) == sorted(s.id for s in backups)
    times = [d.snapshot.time for d in decisions]
    assert times == sorted(times, reverse=True)
    assert all(bool(d.reasons) == d.keep for d in decisions)


@SETTINGS
@given(backup_lists.filter(bool), policies, nows)
def test_never_empty_and_newest_always_kept(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    decisions = plan(backups, policy, now=now)

    assert decisions[0].keep
    assert decisions[0].snapshot.time == max(s.time for s in backups)


@SETTINGS
@given(backup_lists, st.integers(1, 45))
def test_keep_last_n_keeps_exactly_the_n_newest(backups: list[Snapshot], count: int) -> None:
    decisions = plan(backups, Policy(keep_last=count))

    assert [d.keep for d in decisions] == [index < count for index in range(len(backups))]


@SETTINGS
@given(backup_lists, policies, nows)
def test_each_bucket_is_kept_at_most_once_per_rule_and_within_its_count(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    """'daily snapshot' names each day at most once, and at most `daily` times in all."""
    bucket_of = {
        "hourly": lambda t: (t.year, t.month, t.day, t.hour),
        "daily": lambda t: t.date(),
        "weekly": lambda t: t.isocalendar()[:2],
        "monthly": lambda t: (t.year, t.month),
        "yearly": lambda t: t.year,
    }
    decisions = plan(backups, policy, now=now)

    for rule, bucket in bucket_of.items():
        reason = f"{rule} snapshot"
        marked = [d.snapshot.time for d in decisions if reason in d.reasons]
        assert max(Counter(bucket(t) for t in marked).values(), default=0) <= 1
        oldest = [d for d in decisions if f"oldest {reason}" in d.reasons]
        assert len(marked) + len(oldest) <= (getattr(policy, rule) or 0)
        assert all(d is decisions[-1] for d in oldest)


@SETTINGS
@given(backup_lists, policies, nows)
def test_within_keeps_exactly_what_is_newer_than_the_threshold(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    decisions = plan(backups, policy, now=now)
    duration = policy.within_duration
    past = [s.time for s in backups if s.time < now]
    threshold = subtract_duration(max(past), duration) if past else None

    for decision in decisions:
        within = any(reason.startswith("within ") for reason in decision.reasons)
        if duration.is_zero:
            assert not within
        else:
            assert within == (threshold is None or decision.snapshot.time > threshold)


@SETTINGS
@given(backup_lists, policies, nows)
def test_planning_again_over_the_kept_backups_keeps_them_all(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    """Idempotence: a second prune right after the first removes nothing."""
    first = plan(backups, policy, now=now)
    survivors = [d.snapshot for d in first if d.keep]

    second = plan(survivors, policy, now=now)

    assert all(d.keep for d in second)


@SETTINGS
@given(
    backup_lists,
    policies.filter(lambda policy: not policy.is_empty),
    nows,
    st.sampled_from([*COUNT_FIELDS, "within"]),
    st.integers(1, 5),
)
def test_raising_a_rule_never_removes_more(
    backups: list[Snapshot], policy: Policy, now: datetime, rule: str, more: int
) -> None:
    """Monotonicity: a larger count or a longer within keeps a superset.

    Only for policies with a rule: an empty one keeps everything, and prune refuses it.
    """
    if rule == "within":
        base = policy.within_duration
        raised = dataclasses.replace(
            policy, within=f"{base.years}y{base.months}m{base.days + more}d{base.hours}h"
        )
    else:
        raised = dataclasses.replace(policy, **{rule: (getattr(policy, rule) or 0) + more})

    assert kept_ids(plan(backups, policy, now=now)) <= kept_ids(plan(backups, raised, now=now))


@SETTINGS
@given(backup_lists, policies, nows)
def test_input_order_does_not_change_the_plan_for_distinct_times(
    backups: list[Snapshot], policy: Policy, now: datetime
) -> None:
    distinct = list({s.time: s for s in backups}.values())

    forward = plan(distinct, policy, now=now)
    backward = plan(list(reversed(distinct)), policy, now=now)

    assert forward == backward
