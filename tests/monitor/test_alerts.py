"""The alert state machine, driven observation by observation with an injected clock."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsctl.monitor import AlertPolicy, AlertState, Notice, Observation, observe

OK, WARN, CRIT = "ok", "warning", "critical"
INTERVAL = 15.0


def feed(
    levels: Sequence[str],
    *,
    policy: AlertPolicy,
    state: AlertState | None = None,
    start: float = 0.0,
    silenced: Sequence[bool] | None = None,
) -> tuple[AlertState, list[tuple[int, Notice]]]:
    """Feed ``levels`` one per interval; return the final state and (index, notice) pairs."""
    state = state or AlertState("check:api")
    sent: list[tuple[int, Notice]] = []
    for index, level in enumerate(levels):
        observation = Observation("check:api", level, "Check api", service="api")  # type: ignore[arg-type]
        step = observe(
            state,
            observation,
            now=start + index * INTERVAL,
            policy=policy,
            silenced=bool(silenced and silenced[index]),
        )
        state = step.state
        sent += [(index, notice) for notice in step.notices]
    return state, sent


def events(sent: list[tuple[int, Notice]]) -> list[str]:
    return [notice.event for _, notice in sent]


QUIET = AlertPolicy(fire_after=2, resolve_after=2, repeat_interval_seconds=0)


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ([OK] * 5, []),
        ([WARN], []),
        ([WARN, OK, WARN, OK], []),
        ([WARN, WARN], [(1, "firing", "warning")]),
        ([CRIT, CRIT], [(1, "firing", "critical")]),
        ([WARN, CRIT], [(1, "firing", "warning")]),
        ([WARN, WARN, OK], [(1, "firing", "warning")]),
        ([WARN, WARN, OK, OK], [(1, "firing", "warning"), (3, "resolved", "warning")]),
        ([WARN, WARN, OK, WARN, OK, OK], [(1, "firing", "warning"), (5, "resolved", "warning")]),
        ([CRIT, CRIT, OK, OK], [(1, "firing", "critical"), (3, "resolved", "critical")]),
        (
            [WARN, WARN, CRIT, CRIT, CRIT],
            [(1, "firing", "warning"), (3, "firing", "critical")],
        ),
        ([CRIT, CRIT, WARN, WARN, WARN, CRIT, CRIT], [(1, "firing", "critical")]),
    ],
)
def test_fires_after_n_and_resolves_after_m(
    levels: list[str], expected: list[tuple[int, str, str]]
) -> None:
    """Notices come exactly when the streaks reach fire_after and resolve_after; a
    warn to critical escalation is told, a step back down is not.
    """
    _, sent = feed(levels, policy=QUIET)
    assert [(index, n.event, n.severity) for index, n in sent] == expected


def test_flipping_every_interval_for_100_intervals_announces_flapping_once() -> None:
    """With the default policy a check that alternates never fires, but is announced as
    flapping exactly once: neither silent nor spam.
    """
    policy = AlertPolicy(repeat_interval_seconds=0)
    levels = [CRIT if i % 2 == 0 else OK for i in range(100)]

    state, sent = feed(levels, policy=policy)

    assert [(i, n.event) for i, n in sent] == [(6, "flapping")]
    assert state.flapping
    assert "flapping" in sent[0][1].title


def test_flipping_with_eager_thresholds_sends_only_what_they_allow() -> None:
    """fire_after=1, resolve_after=1: fire and resolve each flip until the window holds
    flap_changes changes (the 7th observation), then nothing for the rest of 100 flips,
    then one 'resolved (stopped flapping)' once it has been calm long enough.
    """
    policy = AlertPolicy(fire_after=1, resolve_after=1, repeat_interval_seconds=60)
    flips = [CRIT if i % 2 == 0 else OK for i in range(100)]
    calm = [OK] * 30

    state, sent = feed([*flips, *calm], policy=policy)

    expected = ["firing", "resolved"] * 3 + ["flapping", "resolved"]
    assert events(sent) == expected
    assert [i for i, _ in sent][:7] == [0, 1, 2, 3, 4, 5, 6]
    # The window of 20 holds fewer than 3 changes 17 calm observations after the last flip.
    assert sent[-1][0] == 99 + 17
    assert "stopped flapping" in sent[-1][1].title
    assert not state.flapping
    assert state.state == "ok"


def test_flapping_that_settles_firing_is_announced_as_firing() -> None:
    """Flapping that ends in a lasting failure tells on-call it is firing now."""
    policy = AlertPolicy(fire_after=2, resolve_after=2, repeat_interval_seconds=0)
    levels = [CRIT if i % 2 == 0 else OK for i in range(20)] + [CRIT] * 20

    _, sent = feed(levels, policy=policy)

    assert events(sent) == ["flapping", "firing"]
    assert sent[1][1].severity == "critical"
    assert "stopped flapping" in sent[1][1].title


def test_repeats_while_firing_at_the_repeat_interval() -> None:
    """A firing alert is repeated every repeat_interval_seconds, by the injected clock."""
    policy = AlertPolicy(fire_after=2, resolve_after=2, repeat_interval_seconds=60)
    # 15 s per observation: fires at index 1 (t=15); repeats at t=75, 135, 195.
    _, sent = feed([CRIT] * 14, policy=policy)

    assert [(i, n.event) for i, n in sent] == [
        (1, "firing"),
        (5, "repeat"),
        (9, "repeat"),
        (13, "repeat"),
    ]


def test_no_repeat_when_interval_is_zero() -> None:
    """repeat_interval_seconds = 0 means: tell once."""
    _, sent = feed([CRIT] * 50, policy=QUIET)
    assert events(sent) == ["firing"]


def test_silenced_alert_changes_state_and_records_but_sends_nothing() -> None:
    """While silenced: state moves, transitions are recorded as silenced, no notice."""
    state = AlertState("check:api")
    observation = Observation("check:api", "critical", "Check api")
    transitions = []
    for index in range(3):
        step = observe(state, observation, now=index * 15.0, policy=QUIET, silenced=True)
        state = step.state
        transitions += step.transitions
        assert step.notices == ()

    assert state.state == "firing"
    assert [(t.event, t.silenced, t.notified) for t in transitions] == [("firing", True, False)]


def test_when_silence_ends_what_changed_meanwhile_is_told_once() -> None:
    """Fired during a silence and still firing after it: one 'firing' when it ends."""
    levels = [CRIT] * 10
    silenced = [True] * 5 + [False] * 5

    _, sent = feed(levels, policy=QUIET, silenced=silenced)

    assert [(i, n.event) for i, n in sent] == [(5, "firing")]


def test_fired_and_resolved_during_a_silence_tells_nothing_after_it() -> None:
    """What started and ended within a silence stays silent."""
    levels = [CRIT, CRIT, CRIT, OK, OK, OK, OK]
    silenced = [True] * 5 + [False] * 2

    _, sent = feed(levels, policy=QUIET, silenced=silenced)

    assert sent == []


def test_state_round_trips_through_its_dict() -> None:
    """What is persisted comes back equal, so a restart continues the same machine."""
    state, _ = feed([CRIT, OK, CRIT, CRIT, WARN], policy=QUIET)

    assert AlertState.from_dict(state.to_dict()) == state


def test_a_restart_continues_streaks() -> None:
    """One bad observation before a restart and one after fire the alert (fire_after=2)."""
    first, sent_before = feed([CRIT], policy=QUIET)
    restored = AlertState.from_dict(first.to_dict())

    _, sent_after = feed([CRIT], policy=QUIET, state=restored, start=15)

    assert sent_before == []
    assert events(sent_after) == ["firing"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([OK, WARN, CRIT]), min_size=1, max_size=120))
def test_when_not_flapping_on_call_knows_whether_it_fires(levels: list[str]) -> None:
    """After every observation, unless flapping: what was announced matches the state."""
    policy = AlertPolicy(fire_after=2, resolve_after=3, repeat_interval_seconds=0)
    state = AlertState("k")
    for index, level in enumerate(levels):
        step = observe(state, Observation("k", level, "k"), now=index * 1.0, policy=policy)  # type: ignore[arg-type]
        state = step.state
        if not state.flapping:
            assert (state.announced == "ok") == (state.state == "ok")
        assert len(step.notices) <= 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([OK, WARN, CRIT]), min_size=1, max_size=200))
def test_notices_never_exceed_state_changes(levels: list[str]) -> None:
    """Without repeats, every notice answers a recorded transition."""
    policy = AlertPolicy(fire_after=1, resolve_after=1, repeat_interval_seconds=0)
    state = AlertState("k")
    notices = transitions = 0
    for index, level in enumerate(levels):
        step = observe(state, Observation("k", level, "k"), now=float(index), policy=policy)  # type: ignore[arg-type]
        state = step.state
        notices += len(step.notices)
        transitions += len(step.transitions)
    assert notices <= transitions
