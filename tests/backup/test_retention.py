"""Retention rules: restic's documented examples, each rule, their combinations, validation."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from opsctl.backup._retention import (
    Decision,
    Duration,
    Policy,
    Snapshot,
    _never_remove_newest,
    parse_duration,
    plan,
    subtract_duration,
)
from opsctl.config import load_project
from opsctl.config._model import RetentionSection
from opsctl.errors import ConfigError, ExitCode
from tests.support import run_cli, write_project

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """A UTC time from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snapshots(*times: str) -> list[Snapshot]:
    return [Snapshot(id=f"s{index:03d}", time=at(text)) for index, text in enumerate(times)]


def kept(decisions: Sequence[Decision]) -> list[str]:
    """The kept snapshots' times, newest first, as 'YYYY-MM-DD HH:MM:SS'."""
    return [str(d.snapshot.time)[:19] for d in decisions if d.keep]


def reasons_by_time(decisions: Sequence[Decision]) -> dict[str, tuple[str, ...]]:
    return {str(d.snapshot.time)[:19]: d.reasons for d in decisions if d.keep}


# restic's documentation: one backup every Sunday at 11:00 for 12 weeks, 2019-09-01 to 2019-11-17.
SUNDAYS = [at("2019-09-01 11:00") + timedelta(weeks=week) for week in range(12)]


def test_documented_example_keep_daily_4_keeps_the_last_four_sundays() -> None:
    """restic's manual: --keep-daily 4 over 12 weekly backups keeps the newest four, as daily."""
    backups = [Snapshot(id=f"w{index}", time=time) for index, time in enumerate(SUNDAYS)]

    decisions = plan(backups, Policy(daily=4), now=NOW)

    assert kept(decisions) == [
        "2019-11-17 11:00:00",
        "2019-11-10 11:00:00",
        "2019-11-03 11:00:00",
        "2019-10-27 11:00:00",
    ]
    assert {d.reasons for d in decisions if d.keep} == {("daily snapshot",)}
    assert [d.snapshot.id for d in decisions if not d.keep] == [f"w{i}" for i in range(7, -1, -1)]


def test_documented_example_daily_backups_for_a_century() -> None:
    """restic's manual: daily backups for 100 years, 7 daily, 5 weekly, 12 monthly, 75 yearly.

    The dailies include one weekly, so 4 more weeklies; 11 more month ends (fewer when one is
    already kept); 74 more year ends (fewer when one is already kept).
    """
    last_day = datetime(2099, 12, 27, 5, tzinfo=UTC)  # a Sunday, so the 7 dailies are one week
    assert last_day.isoweekday() == 7
    days = [last_day - timedelta(days=offset) for offset in range(36525)]
    backups = [Snapshot(id=str(index), time=time) for index, time in enumerate(days)]

    decisions = plan(backups, Policy(daily=7, weekly=5, monthly=12, yearly=75), now=NOW)

    def times_with(reason: str) -> set[datetime]:
        return {d.snapshot.time for d in decisions if reason in d.reasons}

    dailies = {last_day - timedelta(days=offset) for offset in range(7)}
    weeklies = {last_day - timedelta(weeks=offset) for offset in range(5)}
    month_ends = {
        datetime(2099, month, calendar.monthrange(2099, month)[1], 5, tzinfo=UTC)
        for month in range(1, 12)
    }
    year_ends = {datetime(year, 12, 31, 5, tzinfo=UTC) for year in range(2025, 2099)}
    assert times_with("daily snapshot") == dailies
    assert times_with("weekly snapshot") == weeklies
    assert times_with("monthly snapshot") == {last_day} | month_ends
    assert times_with("yearly snapshot") == {last_day} | year_ends
    assert len(weeklies - dailies) == 4
    assert sum(d.keep for d in decisions) == len(dailies | weeklies | month_ends | year_ends)
    assert not any(reason.startswith("oldest") for d in decisions for reason in d.reasons)


def test_documented_keep_within_counts_back_from_the_newest_backup() -> None:
    """restic's manual: 2y5m7d3h keeps what was made in the 2 y 5 m 7 d 3 h before the newest."""
    newest = "2024-08-20 15:00:00"
    threshold = "2022-03-13 12:00:00"  # 2024-08-20 15:00 - 2y - 5m - 7d - 3h
    backups = snapshots(newest, "2022-03-13 12:00:01", threshold, "2022-03-13 11:59:59")

    decisions = plan(backups, Policy(within="2y5m7d3h"), now=NOW)

    assert kept(decisions) == [newest, "2022-03-13 12:00:01"]
    assert {d.reasons for d in decisions if d.keep} == {("within 2y5m7d3h",)}


def test_within_is_relative_to_the_newest_backup_not_to_now() -> None:
    """Backups a year old are still kept by within=2d when they are the newest ones."""
    backups = snapshots("2020-01-10 00:00", "2020-01-08 00:00:01", "2020-01-08 00:00")

    assert kept(plan(backups, Policy(within="2d"), now=NOW)) == [
        "2020-01-10 00:00:00",
        "2020-01-08 00:00:01",
    ]


def test_within_ignores_backups_dated_in_the_future() -> None:
    """restic's manual: duration rules measure from the newest backup not later than now."""
    now = at("2020-01-10 12:00")
    backups = snapshots("2021-06-01 00:00", "2020-01-10 00:00", "2020-01-09 01:00", "2020-01-08")

    decisions = plan(backups, Policy(within="1d"), now=now)

    assert kept(decisions) == ["2021-06-01 00:00:00", "2020-01-10 00:00:00", "2020-01-09 01:00:00"]


def test_within_keeps_everything_when_every_backup_is_in_the_future() -> None:
    backups = snapshots("2031-01-01", "2030-06-01", "2020-01-01")

    decisions = plan(backups, Policy(within="1d"), now=at("2019-01-01 00:00"))

    assert all(d.keep for d in decisions)


def test_weeks_run_monday_to_sunday() -> None:
    """restic's manual: weeks are Monday 00:00 to Sunday 23:59 (ISO weeks)."""
    backups = snapshots(
        "2024-01-08 00:00",  # Monday, week 2
        "2024-01-07 23:59",  # Sunday, week 1
        "2024-01-01 00:00",  # Monday, week 1
        "2023-12-31 23:59",  # Sunday, week 52 of 2023
    )

    assert kept(plan(backups, Policy(weekly=3), now=NOW)) == [
        "2024-01-08 00:00:00",
        "2024-01-07 23:59:00",
        "2023-12-31 23:59:00",
    ]


def test_iso_week_spanning_new_year_is_one_bucket() -> None:
    """30 Dec 2024 (Mon) and 1 Jan 2025 (Wed) share ISO week 2025-W01."""
    backups = snapshots("2025-01-01 10:00", "2024-12-30 10:00", "2024-12-29 10:00")

    decisions = plan(backups, Policy(weekly=2), now=NOW)

    assert kept(decisions) == ["2025-01-01 10:00:00", "2024-12-29 10:00:00"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy(keep_last=2), ["2024-03-01 10:50:00", "2024-03-01 10:10:00"]),
        (
            Policy(hourly=3),
            ["2024-03-01 10:50:00", "2024-03-01 09:59:00", "2024-02-29 23:00:00"],
        ),
        (
            Policy(daily=3),
            ["2024-03-01 10:50:00", "2024-02-29 23:00:00", "2024-02-28 12:00:00"],
        ),
        (Policy(monthly=2), ["2024-03-01 10:50:00", "2024-02-29 23:00:00"]),
        (Policy(yearly=2), ["2024-03-01 10:50:00", "2023-12-31 23:30:00"]),
    ],
)
def test_each_counted_rule_keeps_the_newest_of_each_bucket(
    policy: Policy, expected: list[str]
) -> None:
    """Each rule walks newest first and keeps the first backup of every bucket it has count for."""
    backups = snapshots(
        "2024-03-01 10:10",
        "2024-03-01 10:50",
        "2024-03-01 09:59",
        "2024-02-29 23:00",
        "2024-02-29 08:00",
        "2024-02-28 12:00",
        "2024-01-15 12:00",
        "2023-12-31 23:30",
        "2023-12-31 10:00",
        "2023-06-01 00:00",
        "2022-12-31 00:00",
        "2022-01-01 00:00",
    )

    assert kept(plan(backups, policy, now=NOW)) == expected


def test_buckets_without_backups_do_not_use_up_the_count() -> None:
    """restic's manual: only hours/days/... that hold a backup count."""
    backups = snapshots("2024-05-30 10:00", "2024-05-01 10:00", "2024-01-01 10:00")

    assert len(kept(plan(backups, Policy(daily=3), now=NOW))) == 3


def test_rules_are_ored_and_reasons_list_every_rule_in_restic_order() -> None:
    """A backup matching several rules is kept once, with each rule named, within first."""
    backups = snapshots("2024-03-03 18:00", "2024-03-03 09:00", "2024-03-02 09:00", "2024-02-25")

    policy = Policy(keep_last=1, daily=2, weekly=2, within="1d10h")

    decisions = plan(backups, policy, now=NOW)

    assert reasons_by_time(decisions) == {
        "2024-03-03 18:00:00": (
            "within 1d10h",
            "last snapshot",
            "daily snapshot",
            "weekly snapshot",
        ),
        "2024-03-03 09:00:00": ("within 1d10h",),
        "2024-03-02 09:00:00": ("within 1d10h", "daily snapshot"),
        "2024-02-25 00:00:00": ("weekly snapshot",),
    }


def test_oldest_backup_is_kept_while_a_rule_has_count_left() -> None:
    """Since restic 0.17 the oldest backup is kept (marked 'oldest') if a rule is not used up."""
    backups = snapshots("2024-03-03 18:00", "2024-03-02 18:00", "2024-03-02 09:00")

    decisions = plan(backups, Policy(daily=5, keep_last=1), now=NOW)

    assert reasons_by_time(decisions) == {
        "2024-03-03 18:00:00": ("last snapshot", "daily snapshot"),
        "2024-03-02 18:00:00": ("daily snapshot",),
        "2024-03-02 09:00:00": ("oldest daily snapshot",),
    }


def test_oldest_backup_is_not_kept_once_the_counts_are_used() -> None:
    backups = snapshots("2024-03-03 18:00", "2024-03-02 18:00", "2024-03-02 09:00")

    assert kept(plan(backups, Policy(daily=2), now=NOW)) == [
        "2024-03-03 18:00:00",
        "2024-03-02 18:00:00",
    ]


def test_oldest_in_a_new_bucket_is_an_ordinary_keep() -> None:
    """The 'oldest' mark is only for an oldest backup whose bucket was already kept."""
    backups = snapshots("2024-03-03 18:00", "2024-03-01 09:00")

    assert reasons_by_time(plan(backups, Policy(daily=5), now=NOW))["2024-03-01 09:00:00"] == (
        "daily snapshot",
    )


def test_order_is_newest_first_whatever_the_input_order() -> None:
    backups = snapshots("2024-01-01", "2024-03-01", "2024-02-01")

    decisions = plan(backups, Policy(keep_last=1), now=NOW)

    assert [d.snapshot.id for d in decisions] == ["s001", "s002", "s000"]
    assert [d.keep for d in decisions] == [True, False, False]


def test_equal_times_keep_their_given_order() -> None:
    """Like restic's stable sort: of two backups with the same time the first given wins."""
    time = at("2024-01-01 12:00")
    backups = [Snapshot("first", time), Snapshot("second", time), Snapshot("old", at("2023-01-01"))]

    decisions = plan(backups, Policy(daily=1), now=NOW)

    assert [(d.snapshot.id, d.keep) for d in decisions] == [
        ("first", True),
        ("second", False),
        ("old", False),
    ]


def test_buckets_use_the_time_as_recorded() -> None:
    """Two backups 1 h apart in UTC fall on different days in their recorded +02:00 zone."""
    plus_two = timezone(timedelta(hours=2))
    backups = [
        Snapshot("late", datetime(2024, 3, 2, 0, 30, tzinfo=plus_two)),  # 1 March 22:30 UTC
        Snapshot("early", datetime(2024, 3, 1, 23, 30, tzinfo=plus_two)),  # 1 March 21:30 UTC
    ]

    decisions = plan(backups, Policy(daily=2), now=NOW)

    assert [d.keep for d in decisions] == [True, True]
    assert [d.reasons for d in decisions] == [("daily snapshot",), ("daily snapshot",)]


def test_zero_counts_are_off() -> None:
    backups = snapshots("2024-03-03", "2024-03-02", "2024-03-01")

    assert kept(plan(backups, Policy(keep_last=0, daily=1), now=NOW)) == ["2024-03-03 00:00:00"]


def test_empty_policy_keeps_everything_like_restic() -> None:
    backups = snapshots("2024-03-03", "2024-03-02")

    decisions = plan(backups, Policy(keep_last=0, within="0d"), now=NOW)

    assert [d.reasons for d in decisions] == [("policy is empty",)] * 2


def test_no_snapshots_gives_an_empty_plan() -> None:
    assert plan([], Policy(daily=3), now=NOW) == []


def test_guard_keeps_the_newest_when_a_plan_would_remove_it() -> None:
    """The last line of defence: a plan that removes the newest backup gets it back."""
    newest, older = snapshots("2024-03-03", "2024-03-02")
    decisions = [Decision(newest, keep=False, reasons=()), Decision(older, keep=False, reasons=())]

    guarded = _never_remove_newest(decisions)

    assert guarded[0] == Decision(newest, keep=True, reasons=("newest backup",))
    assert guarded[1] == decisions[1]


def test_naive_snapshot_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Snapshot("x", datetime(2024, 1, 1))  # noqa: DTZ001 (the point of the test)


# ---- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1y2m3d4h", Duration(1, 2, 3, 4)),
        ("30d", Duration(days=30)),
        ("4h1y", Duration(years=1, hours=4)),
        (" 2m ", Duration(months=2)),
        ("0d", Duration()),
        ("007d", Duration(days=7)),
    ],
)
def test_durations_in_restic_syntax(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1w", "not a duration"),
        ("", "not a duration"),
        ("d", "not a duration"),
        ("12", "not a duration"),
        ("1D", "not a duration"),
        ("1.5d", "not a duration"),
        ("1d 2h", "not a duration"),
        ("-1d", "negative"),
        ("1d-2h", "negative"),
        ("1d2d", "twice"),
    ],
)
def test_malformed_durations_say_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_duration(text)


def test_duration_prints_like_restic() -> None:
    assert str(parse_duration("1d1m1y")) == "1y1m1d"
    assert str(parse_duration("0y5h")) == "5h"


@pytest.mark.parametrize(
    ("moment", "duration", "expected"),
    [
        # A day missing from the target month overflows into the next (Go's AddDate).
        ("2021-03-31 12:00", "1m", "2021-03-03 12:00"),
        ("2020-03-31 12:00", "1m", "2020-03-02 12:00"),
        ("2020-02-29 06:00", "1y", "2019-03-01 06:00"),
        ("2021-03-31 12:00", "1y1m", "2020-03-02 12:00"),
        ("2021-01-31 00:00", "2m", "2020-12-01 00:00"),
        ("2021-03-01 00:00", "1d", "2021-02-28 00:00"),
        ("2021-03-01 02:00", "3h", "2021-02-28 23:00"),
        ("2021-03-15 10:00", "1y14m45d", "2018-12-01 10:00"),
    ],
)
def test_subtracting_a_duration_follows_go_calendar_arithmetic(
    moment: str, duration: str, expected: str
) -> None:
    assert subtract_duration(at(moment), parse_duration(duration)) == at(expected)


def test_hours_are_elapsed_time_across_a_zone_change() -> None:
    """Hours subtract real elapsed time, even in a zone with daylight saving."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    after_change = datetime(2024, 3, 31, 4, 0, tzinfo=berlin)  # 02:00 UTC, summer time

    assert subtract_duration(after_change, Duration(hours=3)) == at("2024-03-30 23:00")


def test_duration_reaching_before_year_one_keeps_everything() -> None:
    assert subtract_duration(at("2024-01-01 00:00"), Duration(years=3000)) is None
    backups = snapshots("2024-01-01", "0001-01-01 00:00")

    assert all(d.keep for d in plan(backups, Policy(within="3000y"), now=NOW))


# ---- validation


@pytest.mark.parametrize("field", ["keep_last", "hourly", "daily", "weekly", "monthly", "yearly"])
def test_negative_count_is_a_config_error(field: str) -> None:
    with pytest.raises(ConfigError, match=f"backup.retention.{field} is -1"):
        Policy(**{field: -1})  # type: ignore[arg-type]


def test_malformed_within_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"backup\.retention\.within: '7 days' is not a duration"):
        Policy(within="7 days")


def test_from_section_builds_the_policy() -> None:
    section = RetentionSection(keep_last=3, daily=7, within="1m")

    policy = Policy.from_section(section)

    assert policy == Policy(keep_last=3, daily=7, within="1m")
    assert policy.describe() == "keep 3 last, 7 daily and all within 1m of the newest"


@pytest.mark.parametrize(
    "section", [RetentionSection(), RetentionSection(daily=0, within="0h")], ids=["unset", "zeros"]
)
def test_from_section_refuses_an_empty_policy(section: RetentionSection) -> None:
    with pytest.raises(ConfigError) as raised:
        Policy.from_section(section)

    assert raised.value.exit_code == ExitCode.USAGE
    assert "backup.retention sets no rule" in raised.value.message
    assert raised.value.hint is not None
    assert "keep_last" in raised.value.hint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('within = "1w"', "backup.retention.within: Value error, '1w' is not a duration"),
        ('within = "-3d"', "backup.retention.within: Value error, '-3d' is negative"),
        ("daily = -1", "backup.retention.daily: Input should be greater than or equal to 0"),
        ("weekly = true", "backup.retention.weekly: Input should be a valid integer"),
        ("monthly = 2.0", "backup.retention.monthly: Input should be a valid integer"),
        ("keep = 3", "backup.retention.keep: unknown key 'keep'; did you mean 'keep_last'?"),
    ],
)
def test_bad_retention_config_fails_at_load(tmp_path: Path, line: str, expected: str) -> None:
    """The config is refused at load with the key, the line and why; nothing runs."""
    path = write_project(tmp_path / "p", f"[backup.retention]\n{line}\n")

    with pytest.raises(ConfigError) as raised:
        load_project(path)

    assert f"line 2, {expected}" in raised.value.message


def test_bad_retention_config_exits_2_through_the_cli(tmp_path: Path) -> None:
    path = write_project(tmp_path / "p", '[backup.retention]\nwithin = "3 weeks"\n')

    result = run_cli("--config", str(path), "config", "validate")

    assert result.exit_code == ExitCode.USAGE
    assert "backup.retention.within" in result.stderr
    assert "Traceback" not in result.output


def test_empty_retention_is_fine_at_load(tmp_path: Path) -> None:
    path = write_project(tmp_path / "p", "[backup]\nprune_after_run = false\n")

    assert load_project(path).config.backup.retention == RetentionSection()


def test_valid_retention_loads(tmp_path: Path) -> None:
    path = write_project(
        tmp_path / "p", '[backup.retention]\nkeep_last = 2\ndaily = 7\nwithin = "1y2m"\n'
    )

    section = load_project(path).config.backup.retention

    assert Policy.from_section(section) == Policy(keep_last=2, daily=7, within="1y2m")
