"""The parser: headings, entries, loose text, and the findings it reports without stopping."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from opsctl.memory_bank import Finding, Heading, parse
from tests.memory_bank._helpers import numbered_entries, seed_text

BERLIN = ZoneInfo("Europe/Berlin")


def _utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# Read by hand from the seed: (line, timestamp, title without bold markers, heading above).
SEED_ENTRIES = [
    (1, _utc(2025, 3, 22, 20, 25, 10), "Production Management Patterns", None),
    (24, _utc(2025, 3, 21, 6, 5, 0), "Unified System Management Pattern", "Architectural Patterns"),
    (32, _utc(2025, 3, 21, 6, 5, 0), "Observer Pattern for System Monitoring", "Design Patterns"),
    (
        38,
        _utc(2025, 3, 21, 6, 5, 0),
        "Factory Pattern for Component Initialization",
        "Design Patterns",
    ),
    (46, _utc(2025, 3, 21, 6, 5, 0), "Resource Management Pattern", "Implementation Patterns"),
    (52, _utc(2025, 3, 21, 6, 5, 0), "Configuration Management Pattern", "Implementation Patterns"),
    (60, _utc(2025, 3, 21, 6, 5, 0), "Containerized Deployment Pattern", "Deployment Patterns"),
    (66, _utc(2025, 3, 21, 6, 5, 0), "Health Check Pattern", "Deployment Patterns"),
    (74, _utc(2025, 3, 21, 6, 5, 0), "Graceful Degradation Pattern", "Error Handling Patterns"),
    (82, _utc(2025, 3, 21, 6, 5, 0), "Real-time Monitoring Pattern", "Monitoring Patterns"),
    (87, _utc(2025, 3, 21, 6, 34, 15), "Memory Bank Activation Pattern", "Monitoring Patterns"),
    (95, _utc(2025, 3, 21, 17, 15, 30), "Standardized API Client Pattern", "Monitoring Patterns"),
    (
        101,
        _utc(2025, 3, 21, 17, 29, 0),
        "Configuration Standardization Pattern",
        "Monitoring Patterns",
    ),
    (108, _utc(2025, 3, 22, 2, 45, 0), "GPU Acceleration Framework Pattern", "Monitoring Patterns"),
    (117, _utc(2025, 3, 22, 5, 9, 30), "Secure API Key Management Pattern", "Monitoring Patterns"),
    (126, _utc(2025, 3, 23, 4, 41, 0), "Isolated Environment Pattern", "Monitoring Patterns"),
    (
        135,
        _utc(2025, 3, 22, 14, 38, 30),
        "Multi-Service API Integration Pattern",
        "Monitoring Patterns",
    ),
]

SEED_HEADINGS = [
    Heading(1, "System Patterns", 20),
    Heading(2, "Architectural Patterns", 22),
    Heading(2, "Design Patterns", 30),
    Heading(2, "Implementation Patterns", 44),
    Heading(2, "Deployment Patterns", 58),
    Heading(2, "Error Handling Patterns", 72),
    Heading(2, "Monitoring Patterns", 80),
]

SEED_FINDINGS = [
    (24, "out-of-order"),
    (32, "duplicate-timestamp"),
    (38, "duplicate-timestamp"),
    (46, "duplicate-timestamp"),
    (52, "duplicate-timestamp"),
    (60, "duplicate-timestamp"),
    (66, "duplicate-timestamp"),
    (74, "duplicate-timestamp"),
    (82, "duplicate-timestamp"),
    (135, "out-of-order"),
]


# The seed file, parsed exactly


def test_seed_yields_all_seventeen_entries_with_exact_lines_titles_and_timestamps() -> None:
    """The seed's 17 entries come out with the lines, bare titles and times read by hand."""
    parsed = parse(seed_text(), zone=UTC)
    got = [(e.line, e.timestamp, e.title, e.heading) for e in parsed.entries]
    assert got == SEED_ENTRIES


def test_seed_yields_its_seven_headings_with_levels_and_lines() -> None:
    """The seed's one level-1 and six level-2 headings are found on their lines."""
    assert parse(seed_text(), zone=UTC).headings == SEED_HEADINGS


def test_seed_reports_duplicate_and_out_of_order_stamps_on_their_lines() -> None:
    """Eight repeats of 06:05:00 and the two backwards steps are findings, sorted by line."""
    findings = parse(seed_text(), zone=UTC).findings
    assert [(f.line, f.kind) for f in findings] == SEED_FINDINGS
    duplicates = [f for f in findings if f.kind == "duplicate-timestamp"]
    assert all("[2025-03-21 06:05:00] was already used on line 24" in f.message for f in duplicates)
    last = findings[-1]
    assert "[2025-03-22 14:38:30]" in last.message
    assert "[2025-03-23 04:41:00]" in last.message


def test_seed_newest_is_the_latest_stamp_not_the_last_entry() -> None:
    """The newest entry is 2025-03-23 04:41:00 although a later line carries an older stamp."""
    parsed = parse(seed_text(), zone=UTC)
    assert parsed.newest == _utc(2025, 3, 23, 4, 41, 0)
    assert parsed.entries[-1].timestamp != parsed.newest


def test_seed_numbered_list_and_bold_items_inside_a_body_are_not_entries() -> None:
    """The first entry keeps its prose and numbered list (lines 3-17) as its body."""
    first = parse(seed_text(), zone=UTC).entries[0]
    assert first.body.startswith("Established the following patterns for production management:")
    assert "1. **Unified Container Pattern**" in first.body
    assert first.body.endswith("maximizes performance for GPU-accelerated components.")
    assert first.body.count("\n") == 14


def test_seed_bullet_bodies_stop_at_the_next_entry_or_heading() -> None:
    """Bodies hold exactly their bullets: no heading text and no next entry's title."""
    entries = {e.line: e for e in parse(seed_text(), zone=UTC).entries}
    assert entries[82].body == (
        "- Continuous monitoring of system health\n"
        "- Metrics collection and aggregation\n"
        "- Threshold-based alerting"
    )
    assert entries[24].body.splitlines() == [
        "- Centralized system management with start and stop scripts",
        "- Health checks integrated with monitoring and notifications",
        "- Graceful shutdown handling for all components",
        "- Environment variable management for configuration",
    ]
    # Entry 117 is followed directly (no blank line) by the entry on line 126.
    assert entries[117].body.splitlines()[-1] == (
        "- Standardized environment variable access across all components"
    )
    assert len(entries[117].body.splitlines()) == 8
    assert len(entries[135].body.splitlines()) == 7


def test_seed_has_no_text_outside_entries() -> None:
    """Every non-blank seed line is a heading or part of an entry."""
    assert parse(seed_text(), zone=UTC).loose_lines == 0


# Zones


def test_seed_read_in_berlin_is_one_hour_before_the_same_stamps_read_in_utc() -> None:
    """In March 2025 Berlin is UTC+1, so every seed instant is one hour earlier than in UTC."""
    text = seed_text()
    in_utc = parse(text, zone=UTC).entries
    in_berlin = parse(text, zone=BERLIN).entries
    assert len(in_berlin) == 17
    for utc_entry, berlin_entry in zip(in_utc, in_berlin, strict=True):
        assert berlin_entry.timestamp is not None
        assert utc_entry.timestamp is not None
        assert berlin_entry.timestamp.replace(tzinfo=None) == utc_entry.timestamp.replace(
            tzinfo=None
        )
        assert utc_entry.timestamp - berlin_entry.timestamp == timedelta(hours=1)


def test_summer_stamp_in_berlin_is_read_with_the_summer_offset() -> None:
    """A July stamp read in Europe/Berlin is two hours ahead of UTC."""
    entry = parse("[2025-07-01 12:00:00] - Summer\n", zone=BERLIN).entries[0]
    assert entry.timestamp is not None
    assert entry.timestamp.astimezone(UTC) == _utc(2025, 7, 1, 10, 0, 0)


# Entry forms


def test_plain_bold_and_colon_titles_are_read_without_markers() -> None:
    """Plain titles stay, ``**bold**`` and ``**bold**:`` lose their markers, spacing is loose."""
    text = (
        "[2025-01-01 10:00:00] - Plain title\n"
        "[2025-01-01 10:00:01] - **Bold title**\n"
        "[2025-01-01 10:00:02] - **Bold with colon**:\n"
        "[2025-01-01 10:00:03]-Tight   \n"
    )
    titles = [e.title for e in parse(text, zone=UTC).entries]
    assert titles == ["Plain title", "Bold title", "Bold with colon", "Tight"]


def test_text_outside_entries_is_counted_and_not_attached_to_entries() -> None:
    """Prose before the first entry and after a heading is loose; a heading ends an entry."""
    text = (
        "Intro prose\n"  # 1 loose
        "\n"
        "# Notes\n"  # 3
        "More prose\n"  # 4 loose
        "[2025-01-01 10:00:00] - Only entry\n"  # 5
        "its body\n"
        "## After\n"  # 7
        "Trailing prose\n"  # 8 loose
    )
    parsed = parse(text, zone=UTC)
    assert parsed.loose_lines == 3
    assert [(e.line, e.body, e.heading) for e in parsed.entries] == [(5, "its body", "Notes")]
    assert parsed.headings == [Heading(1, "Notes", 3), Heading(2, "After", 7)]
    assert parsed.findings == []


def test_out_of_order_entries_are_kept_in_file_order_with_one_finding() -> None:
    """A stamp earlier than the one before it is reported once and the entry is kept."""
    text = "[2025-02-01 09:00:00] - B\n[2025-01-01 09:00:00] - A\n[2025-03-01 09:00:00] - C\n"
    parsed = parse(text, zone=UTC)
    assert [e.title for e in parsed.entries] == ["B", "A", "C"]
    assert [(f.line, f.kind) for f in parsed.findings] == [(2, "out-of-order")]
    assert parsed.newest == _utc(2025, 3, 1, 9, 0, 0)


def test_duplicate_stamps_name_the_first_line_and_are_not_out_of_order() -> None:
    """Equal stamps give one duplicate finding per repeat, naming the first line."""
    text = (
        "# Log\n"
        "[2025-01-01 09:00:00] - First\n"
        "\n"
        "[2025-01-01 09:00:00] - Second\n"
        "[2025-01-01 09:00:00] - Third\n"
    )
    findings = parse(text, zone=UTC).findings
    assert [(f.line, f.kind) for f in findings] == [
        (4, "duplicate-timestamp"),
        (5, "duplicate-timestamp"),
    ]
    assert all("already used on line 2" in f.message for f in findings)


# Malformed stamps


def test_malformed_stamps_are_reported_on_their_lines_and_parsing_continues() -> None:
    """An impossible date and a stamp without seconds are findings; later entries still parse."""
    text = (
        "# Log\n"
        "\n"
        "[2025-13-45 10:00:00] - X\n"
        "- body a\n"
        "\n"
        "[2025-03-21 06:05] - X\n"
        "- body b\n"
        "\n"
        "[2025-03-22 08:00:00] - Good\n"
        "- body c\n"
    )
    parsed = parse(text, zone=UTC)
    assert [(f.line, f.kind) for f in parsed.findings] == [
        (3, "malformed-timestamp"),
        (6, "malformed-timestamp"),
    ]
    assert "[2025-13-45 10:00:00]" in parsed.findings[0].message
    assert "[2025-03-21 06:05]" in parsed.findings[1].message
    assert [(e.line, e.title, e.timestamp, e.body) for e in parsed.entries] == [
        (3, "X", None, "- body a"),
        (6, "X", None, "- body b"),
        (9, "Good", _utc(2025, 3, 22, 8, 0, 0), "- body c"),
    ]
    assert parsed.newest == _utc(2025, 3, 22, 8, 0, 0)


def test_malformed_stamps_are_left_out_of_order_and_duplicate_checks() -> None:
    """Entries without a valid stamp neither break nor cause order or duplicate findings."""
    text = "[2025-01-02 00:00:00] - A\n[not a time] - B\n[2025-01-03 00:00:00] - C\n[nope] - D\n"
    findings = parse(text, zone=UTC).findings
    assert findings == [
        Finding(2, "malformed-timestamp", findings[0].message),
        Finding(4, "malformed-timestamp", findings[1].message),
    ]


# Edge cases


def test_empty_text_parses_to_nothing() -> None:
    """An empty file has no headings, entries, findings, loose lines or newest entry."""
    for text in ("", "\n\n  \n"):
        parsed = parse(text, zone=UTC)
        assert parsed.headings == []
        assert parsed.entries == []
        assert parsed.findings == []
        assert parsed.loose_lines == 0
        assert parsed.newest is None


def test_headings_and_prose_only_give_no_entries_and_count_the_prose() -> None:
    """A file of headings and prose has headings and loose lines but no entries."""
    text = "# Product Context\n\nWhat the project is.\n\n## Users\n\nOperators.\n"
    parsed = parse(text, zone=UTC)
    assert parsed.entries == []
    assert parsed.newest is None
    assert parsed.findings == []
    assert parsed.loose_lines == 2
    assert parsed.headings == [Heading(1, "Product Context", 1), Heading(2, "Users", 5)]


def test_crlf_seed_parses_exactly_like_the_lf_seed() -> None:
    """Windows line endings change nothing: same entries, titles, bodies, lines and findings."""
    text = seed_text()
    assert "\r" not in text
    crlf = parse(text.replace("\n", "\r\n"), zone=UTC)
    assert crlf == parse(text, zone=UTC)
    assert all("\r" not in e.title and "\r" not in e.body for e in crlf.entries)


def test_twenty_thousand_entries_parse_completely_and_quickly() -> None:
    """A huge file of 20,000 entries parses in well under the test budget, nothing lost."""
    text = numbered_entries(20_000)
    started = time.perf_counter()
    parsed = parse(text, zone=UTC)
    elapsed = time.perf_counter() - started
    assert len(parsed.entries) == 20_000
    assert parsed.findings == []
    assert (parsed.entries[0].line, parsed.entries[0].title) == (3, "Entry 0")
    assert (parsed.entries[-1].line, parsed.entries[-1].title) == (3 + 3 * 19_999, "Entry 19999")
    assert parsed.entries[-1].body == "- step 19999"
    assert parsed.newest == _utc(2024, 1, 1, 5, 33, 19)
    assert elapsed < 5


def test_form_feed_inside_a_body_does_not_shift_later_line_numbers() -> None:
    """A form feed is not a line break: the next entry is on the line grep -n reports."""
    text = "[2025-01-01 10:00:00] - First\n- page one\x0cpage two\n[2025-13-01 10:00:00] - Broken\n"
    parsed = parse(text, zone=UTC)
    assert [e.line for e in parsed.entries] == [1, 3]
    assert [(f.line, f.kind) for f in parsed.findings] == [(3, "malformed-timestamp")]
