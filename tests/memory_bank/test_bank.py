"""The bank as a whole: zones, presence, freshness, records of activations, and metrics."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opsctl.config import load_project
from opsctl.errors import ConfigError
from opsctl.memory_bank import (
    PROFILES,
    bank_folder,
    bank_metrics,
    bank_zone,
    estimate_tokens,
    expected_files,
    history_file,
    inspect_bank,
    load_history,
    parse,
    record_activation,
)
from tests.memory_bank._helpers import (
    CLINE_FILES,
    ROO_FILES,
    bank_toml,
    copy_seed,
    fill_bank,
    make_project,
)
from tests.support import write_project

# A moment after every seed entry: 2025-03-25 04:41:00 UTC.
AFTER_SEED = datetime(2025, 3, 25, 4, 41, 0, tzinfo=UTC)


@pytest.fixture
def berlin_local_time() -> Iterator[None]:
    """Make this process's local zone Europe/Berlin for one test, then restore it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


# Profiles


def test_profiles_list_the_roo_and_cline_file_sets_in_order() -> None:
    """Roo Code's five files and Cline's six files are known by name."""
    assert PROFILES["roo"] == ROO_FILES
    assert PROFILES["cline"] == CLINE_FILES


def test_expected_files_follow_profile_custom_list_and_extras(tmp_path: Path) -> None:
    """roo is the default; custom uses only the list; extra names extend a profile once."""
    assert expected_files(make_project(tmp_path / "a").config.memory_bank) == ROO_FILES
    cline = make_project(tmp_path / "b", 'profile = "cline"')
    assert expected_files(cline.config.memory_bank) == CLINE_FILES
    custom = make_project(tmp_path / "c", 'profile = "custom"\nfiles = ["a.md", "b.md"]')
    assert expected_files(custom.config.memory_bank) == ("a.md", "b.md")
    extended = make_project(tmp_path / "d", 'files = ["notes.md", "progress.md"]')
    assert expected_files(extended.config.memory_bank) == (*ROO_FILES, "notes.md")


# Zones


def test_timezone_setting_gives_that_zone(tmp_path: Path) -> None:
    """``timezone = "Europe/Berlin"`` reads stamps in Berlin, even with ``timestamps = "utc"``."""
    project = make_project(tmp_path, 'timezone = "Europe/Berlin"\ntimestamps = "utc"')
    assert bank_zone(project) == ZoneInfo("Europe/Berlin")


def test_utc_timestamps_setting_gives_utc(tmp_path: Path) -> None:
    """``timestamps = "utc"`` without a timezone reads stamps as UTC."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    assert bank_zone(project) is UTC


def test_unknown_timezone_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    """An unknown zone name is a ConfigError that names memory_bank.timezone."""
    project = make_project(tmp_path, 'timezone = "Mars/Olympus"')
    with pytest.raises(ConfigError, match=r"memory_bank\.timezone 'Mars/Olympus'"):
        bank_zone(project)


def test_local_zone_reads_winter_and_summer_stamps_with_their_own_offsets(
    tmp_path: Path, berlin_local_time: None
) -> None:
    """With local time in Berlin, a January stamp is UTC+1 and a July stamp UTC+2."""
    project = make_project(tmp_path)
    text = "[2025-01-15 12:00:00] - Winter\n[2025-07-15 12:00:00] - Summer\n"
    winter, summer = parse(text, zone=bank_zone(project)).entries
    assert winter.timestamp is not None
    assert summer.timestamp is not None
    assert winter.timestamp.astimezone(UTC) == datetime(2025, 1, 15, 11, 0, tzinfo=UTC)
    assert summer.timestamp.astimezone(UTC) == datetime(2025, 7, 15, 10, 0, tzinfo=UTC)


# Inspecting the bank


def test_seed_bank_is_active_and_its_file_reports_the_seed_exactly(tmp_path: Path) -> None:
    """With every roo file present, the seed's report has 17 entries, 10 findings, its size."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    copy_seed(bank / "systemPatterns.md")
    report = inspect_bank(project, now=AFTER_SEED)
    assert report.active
    assert [f.name for f in report.files] == list(ROO_FILES)
    patterns = report.files[2]
    assert patterns.present
    assert patterns.expected
    assert patterns.entries == 17
    assert patterns.newest_entry == datetime(2025, 3, 23, 4, 41, 0, tzinfo=UTC)
    assert patterns.age_seconds == 2 * 86_400
    assert patterns.age_source == "entry"
    assert patterns.stale is False
    assert patterns.size_bytes == 6856
    assert patterns.tokens == 1714
    assert [f.line for f in patterns.findings] == [24, 32, 38, 46, 52, 60, 66, 74, 82, 135]


def test_seed_age_in_berlin_is_one_hour_more_than_in_utc(tmp_path: Path) -> None:
    """Read in Berlin (UTC+1 in March) the newest seed entry is 3600 s older than in UTC."""
    utc_project = make_project(tmp_path / "u", 'timestamps = "utc"')
    berlin_project = make_project(tmp_path / "b", 'timezone = "Europe/Berlin"')
    for root in (tmp_path / "u", tmp_path / "b"):
        copy_seed(fill_bank(root) / "systemPatterns.md")
    in_utc = inspect_bank(utc_project, now=AFTER_SEED).files[2]
    in_berlin = inspect_bank(berlin_project, now=AFTER_SEED).files[2]
    assert in_utc.age_seconds is not None
    assert in_berlin.age_seconds is not None
    assert in_berlin.age_seconds - in_utc.age_seconds == 3600


def test_missing_expected_file_makes_the_bank_inactive(tmp_path: Path) -> None:
    """One absent roo file: inactive, that file not present, the others present."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    (bank / "decisionLog.md").unlink()
    report = inspect_bank(project)
    assert not report.active
    by_name = {f.name: f for f in report.files}
    assert not by_name["decisionLog.md"].present
    assert by_name["decisionLog.md"].entries == 0
    assert all(by_name[name].present for name in ROO_FILES if name != "decisionLog.md")


def test_missing_bank_folder_is_inactive_with_every_file_absent(tmp_path: Path) -> None:
    """Without the folder nothing is present and the bank is inactive."""
    report = inspect_bank(make_project(tmp_path))
    assert not report.active
    assert [f.present for f in report.files] == [False] * 5


def test_extra_markdown_file_is_reported_but_does_not_decide_activity(tmp_path: Path) -> None:
    """A markdown file outside the profile is listed as not expected; the bank stays active."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    (bank / "ideas.md").write_text("[2025-01-01 00:00:00] - Idea\n")
    (bank / "notes.txt").write_text("not markdown\n")
    report = inspect_bank(project)
    assert report.active
    assert [f.name for f in report.files] == [*ROO_FILES, "ideas.md"]
    assert report.files[-1].expected is False
    assert report.files[-1].entries == 1


def test_empty_expected_file_is_present_with_no_entries(tmp_path: Path) -> None:
    """A zero-byte file counts as present: no entries, zero size and tokens, age by mtime."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    (bank / "progress.md").write_bytes(b"")
    report = inspect_bank(project)
    progress = report.files[-1]
    assert report.active
    assert (progress.present, progress.entries, progress.size_bytes, progress.tokens) == (
        True,
        0,
        0,
        0,
    )
    assert progress.age_source == "modified"


@pytest.mark.parametrize(("stale_after_days", "stale"), [(2, True), (5, False), (2.9, True)])
def test_staleness_follows_stale_after_days(
    tmp_path: Path, stale_after_days: float, stale: bool
) -> None:
    """A newest entry three days old is stale at 2 or 2.9 days and fresh at 5 days."""
    project = make_project(tmp_path, f'timestamps = "utc"\nstale_after_days = {stale_after_days}')
    bank = fill_bank(tmp_path)
    (bank / "progress.md").write_text("# Progress\n\n[2025-06-01 12:00:00] - Done\n")
    now = datetime(2025, 6, 4, 12, 0, 0, tzinfo=UTC)
    progress = inspect_bank(project, now=now).files[-1]
    assert progress.age_seconds == 3 * 86_400
    assert progress.stale is stale


def test_file_without_entries_ages_by_its_modification_time(tmp_path: Path) -> None:
    """A headings-only file last changed ten days ago is stale under the default seven days."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    ten_days_ago = time.time() - 10 * 86_400
    os.utime(bank / "progress.md", (ten_days_ago, ten_days_ago))
    by_name = {f.name: f for f in inspect_bank(project).files}
    assert by_name["progress.md"].age_source == "modified"
    assert by_name["progress.md"].stale
    assert by_name["progress.md"].age_seconds == pytest.approx(10 * 86_400, abs=60)
    assert not by_name["activeContext.md"].stale


def test_report_json_form_has_status_files_and_a_utc_checked_at(tmp_path: Path) -> None:
    """to_dict gives status, folder, profile, a Z-suffixed time and one dict per file."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    data = json.loads(json.dumps(inspect_bank(project, now=AFTER_SEED).to_dict()))
    assert data["status"] == "active"
    assert data["folder"] == str(tmp_path / "memory-bank")
    assert data["profile"] == "roo"
    assert data["checked_at"] == "2025-03-25T04:41:00Z"
    patterns = data["files"][2]
    assert patterns["name"] == "systemPatterns.md"
    assert patterns["entries"] == 17
    assert patterns["newest_entry"] == "2025-03-23T04:41:00+00:00"
    assert patterns["age_seconds"] == 172_800
    assert patterns["findings"][0] == {
        "line": 24,
        "kind": "out-of-order",
        "message": patterns["findings"][0]["message"],
    }
    assert set(patterns) == {
        "name",
        "expected",
        "present",
        "size_bytes",
        "tokens",
        "entries",
        "newest_entry",
        "age_seconds",
        "age_source",
        "stale",
        "findings",
        "error",
    }


def test_estimate_tokens_is_characters_over_four_rounded_up() -> None:
    """0, 1, 4, 5 and 4001 characters estimate to 0, 1, 1, 2 and 1001 tokens."""
    assert [estimate_tokens("x" * n) for n in (0, 1, 4, 5, 4001)] == [0, 1, 1, 2, 1001]


# Records of activations


def test_activations_are_recorded_one_line_each_in_the_state_folder(tmp_path: Path) -> None:
    """Each record appends one JSON line under .opsctl, and the bank folder stays unchanged."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    before = sorted(p.name for p in bank.iterdir())
    for _ in range(3):
        record_activation(project, inspect_bank(project))
    path = history_file(project)
    assert path == tmp_path / ".opsctl" / "memory-bank" / "activations.jsonl"
    assert not path.is_relative_to(bank_folder(project))
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])
    assert record["active"] is True
    assert record["at"].endswith("Z")
    assert set(record["files"]) == set(ROO_FILES)
    assert record["files"]["progress.md"]["entries"] == 0
    assert sorted(p.name for p in bank.iterdir()) == before


def test_history_loads_records_in_order_and_names_unreadable_lines(tmp_path: Path) -> None:
    """Broken JSON and records without files are skipped and their line numbers returned."""
    project = make_project(tmp_path)
    fill_bank(tmp_path)
    record_activation(project, inspect_bank(project))
    path = history_file(project)
    with path.open("a") as handle:
        handle.write("{not json\n")
        handle.write('{"at": "x"}\n')
        handle.write("\n")
    record_activation(project, inspect_bank(project))
    records, broken = load_history(project)
    assert len(records) == 2
    assert broken == [2, 3]


def test_history_of_a_fresh_project_is_empty(tmp_path: Path) -> None:
    """Without any activation there are no records and nothing broken."""
    assert load_history(make_project(tmp_path)) == ([], [])


# Metrics


def test_metrics_give_active_and_per_file_entries_age_and_stale(tmp_path: Path) -> None:
    """Present files get entries, age and stale gauges; a missing file gets none."""
    project = make_project(tmp_path, 'timestamps = "utc"\nstale_after_days = 1')
    bank = fill_bank(tmp_path)
    copy_seed(bank / "systemPatterns.md")
    (bank / "decisionLog.md").unlink()
    gauges = bank_metrics(inspect_bank(project, now=AFTER_SEED))
    values = {(g.name, g.labels.get("file")): g.value for g in gauges}
    assert values[("opsctl_memory_bank_active", None)] == 0.0
    assert values[("opsctl_memory_bank_entries", "systemPatterns.md")] == 17
    assert values[("opsctl_memory_bank_age_seconds", "systemPatterns.md")] == 172_800
    assert values[("opsctl_memory_bank_stale", "systemPatterns.md")] == 1.0
    assert values[("opsctl_memory_bank_entries", "progress.md")] == 0
    assert values[("opsctl_memory_bank_stale", "progress.md")] == 0.0
    assert not any(g.labels.get("file") == "decisionLog.md" for g in gauges)
    assert len(gauges) == 1 + 3 * 4


def test_metrics_mark_an_active_bank_with_one(tmp_path: Path) -> None:
    """With every file present the active gauge is 1."""
    project = make_project(tmp_path)
    fill_bank(tmp_path)
    gauges = bank_metrics(inspect_bank(project))
    assert gauges[0].name == "opsctl_memory_bank_active"
    assert gauges[0].value == 1.0
    assert gauges[0].labels == {}


def test_bank_path_setting_moves_the_folder(tmp_path: Path) -> None:
    """``path = "docs/bank"`` is where the bank is looked for."""
    write_project(tmp_path, bank_toml('path = "docs/bank"'))
    project = load_project(tmp_path / "opsctl.toml")
    fill_bank(tmp_path, folder="docs/bank")
    assert bank_folder(project) == tmp_path / "docs" / "bank"
    assert inspect_bank(project).active


def test_seed_stays_stale_long_after_and_fresh_right_after(tmp_path: Path) -> None:
    """Seven days and one second after the newest entry the seed is stale; six days, fresh."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    newest = datetime(2025, 3, 23, 4, 41, 0, tzinfo=UTC)
    late = newest + timedelta(days=7, seconds=1)
    assert inspect_bank(project, now=late).files[2].stale
    assert not inspect_bank(project, now=newest + timedelta(days=6)).files[2].stale
