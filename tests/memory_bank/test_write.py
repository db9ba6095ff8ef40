"""Changing the bank: init never overwrites, and entries are appended whole and in order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsctl.errors import UsageError
from opsctl.memory_bank import append_entry, format_entry, init_bank, inspect_bank, parse
from tests.memory_bank._helpers import (
    CLINE_FILES,
    ROO_FILES,
    bank_listing,
    copy_seed,
    fill_bank,
    make_project,
    seed_text,
)

NOON_UTC = datetime(2025, 7, 1, 12, 0, 0, tzinfo=UTC)


# init


def test_init_creates_the_roo_files_each_with_its_heading(tmp_path: Path) -> None:
    """A fresh roo project gets its five files, each starting with its own heading."""
    project = make_project(tmp_path)
    results = init_bank(project)
    assert results == [(name, True) for name in ROO_FILES]
    bank = tmp_path / "memory-bank"
    assert sorted(p.name for p in bank.iterdir()) == sorted(ROO_FILES)
    assert (bank / "decisionLog.md").read_text().startswith("# Decision Log\n\n")
    assert (bank / "systemPatterns.md").read_text().startswith("# System Patterns\n\n")
    for name in ROO_FILES:
        parsed = parse((bank / name).read_text(), zone=UTC)
        assert len(parsed.headings) == 1
        assert parsed.entries == []


def test_init_creates_the_cline_files(tmp_path: Path) -> None:
    """The cline profile gets its six files, including the project brief and tech context."""
    project = make_project(tmp_path, 'profile = "cline"')
    assert [name for name, created in init_bank(project) if created] == list(CLINE_FILES)
    bank = tmp_path / "memory-bank"
    assert (bank / "projectbrief.md").read_text().startswith("# Project Brief\n")
    assert (bank / "techContext.md").read_text().startswith("# Tech Context\n")
    assert not (bank / "decisionLog.md").exists()


def test_init_creates_a_custom_list_with_headings_from_the_names(tmp_path: Path) -> None:
    """A custom list creates exactly its files; an unknown name's heading is its stem."""
    project = make_project(tmp_path, 'profile = "custom"\nfiles = ["runbook.md", "progress.md"]')
    assert init_bank(project) == [("runbook.md", True), ("progress.md", True)]
    bank = tmp_path / "memory-bank"
    assert sorted(p.name for p in bank.iterdir()) == ["progress.md", "runbook.md"]
    assert (bank / "runbook.md").read_text().startswith("# runbook\n")
    assert (bank / "progress.md").read_text().startswith("# Progress\n")


def test_init_never_overwrites_existing_files_and_fills_the_gaps(tmp_path: Path) -> None:
    """Existing files (even empty or CRLF) stay byte-identical; only missing ones are created."""
    project = make_project(tmp_path)
    bank = tmp_path / "memory-bank"
    copy_seed(bank / "systemPatterns.md")
    (bank / "progress.md").write_bytes(b"")
    (bank / "activeContext.md").write_bytes(b"# Mine\r\n\r\n[2025-01-01 00:00:00] - x\r\n\xff")
    before = bank_listing(bank)
    results = dict(init_bank(project))
    assert results == {
        "productContext.md": True,
        "activeContext.md": False,
        "systemPatterns.md": False,
        "decisionLog.md": True,
        "progress.md": False,
    }
    after = bank_listing(bank)
    for name, content in before.items():
        assert after[name] == content
    assert sorted(after) == sorted(ROO_FILES)


def test_second_init_changes_nothing(tmp_path: Path) -> None:
    """Running init twice reports every file as kept and leaves every byte alone."""
    project = make_project(tmp_path)
    init_bank(project)
    bank = tmp_path / "memory-bank"
    (bank / "progress.md").write_text("# Progress\n\nedited by hand\n")
    before = bank_listing(bank)
    assert init_bank(project) == [(name, False) for name in ROO_FILES]
    assert bank_listing(bank) == before


# format_entry


def test_entry_title_whitespace_is_collapsed_and_one_line_body_becomes_a_bullet() -> None:
    """``"  Ship   it "`` with body ``done`` is a stamped title line and one bullet."""
    entry = format_entry("  Ship   it ", "done", when=NOON_UTC)
    assert entry == "[2025-07-01 12:00:00] - Ship it\n- done\n"


def test_entry_multi_line_and_bulleted_bodies_are_kept_as_given() -> None:
    """Bodies of several lines or starting with a bullet or number are not re-bulleted."""
    multi = format_entry("T", "- a\n- b\n\n", when=NOON_UTC)
    assert multi == "[2025-07-01 12:00:00] - T\n- a\n- b\n"
    assert format_entry("T", "* x", when=NOON_UTC).endswith("\n* x\n")
    assert format_entry("T", "1. first", when=NOON_UTC).endswith("\n1. first\n")
    assert format_entry("T", "", when=NOON_UTC) == "[2025-07-01 12:00:00] - T\n"


def test_entry_without_a_title_is_refused() -> None:
    """A blank title is a usage error."""
    with pytest.raises(UsageError, match="needs a title"):
        format_entry(" \t ", "body", when=NOON_UTC)


_TITLE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="*"), min_size=1).filter(
    lambda text: bool(text.split())
)
_BODY = st.text(alphabet="abc -.\n", max_size=40)
_WHEN = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))  # noqa: DTZ001


@settings(max_examples=150, deadline=None)
@given(title=_TITLE, body=_BODY, when=_WHEN)
def test_formatted_entries_parse_back_to_their_title_and_time(
    title: str, body: str, when: datetime
) -> None:
    """Any entry written by format_entry is read back as one entry with its title and time."""
    moment = when.replace(microsecond=0, tzinfo=UTC)
    parsed = parse("# Log\n\n" + format_entry(title, body, when=moment), zone=UTC)
    assert [(e.title, e.timestamp) for e in parsed.entries] == [(" ".join(title.split()), moment)]
    assert parsed.findings == []


# append_entry


def test_append_writes_the_stamp_in_the_configured_zone(tmp_path: Path) -> None:
    """Noon UTC on 1 July is written as 14:00:00 for Europe/Berlin."""
    project = make_project(tmp_path, 'timezone = "Europe/Berlin"')
    bank = fill_bank(tmp_path)
    append_entry(project, "progress", "Deployed", "", now=NOON_UTC)
    assert (bank / "progress.md").read_text().endswith("\n[2025-07-01 14:00:00] - Deployed\n")


def test_append_writes_utc_stamps_when_configured(tmp_path: Path) -> None:
    """With ``timestamps = "utc"`` the same moment is written as 12:00:00."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    append_entry(project, "progress.md", "Deployed", "", now=NOON_UTC)
    assert (bank / "progress.md").read_text().endswith("\n[2025-07-01 12:00:00] - Deployed\n")


def test_append_without_a_time_uses_now(tmp_path: Path) -> None:
    """Without ``now`` the stamp read back is within a few seconds of the current time."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    append_entry(project, "progress", "Now", "")
    newest = parse((bank / "progress.md").read_text(), zone=UTC).newest
    assert newest is not None
    assert abs((datetime.now(UTC) - newest).total_seconds()) < 5


@pytest.mark.parametrize(
    ("before", "separator"),
    [
        ("# P\n\ntext", "\n\n"),
        ("# P\n\ntext\n", "\n"),
        ("# P\n\ntext\n\n", ""),
        ("# P\n\ntext\n\n\n", ""),
        ("", ""),
    ],
)
def test_append_keeps_the_old_bytes_and_leaves_one_blank_line(
    tmp_path: Path, before: str, separator: str
) -> None:
    """The old content is an unchanged prefix, followed by a blank line and the entry."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    (bank / "progress.md").write_text(before)
    append_entry(project, "progress", "Next", "- step", now=NOON_UTC)
    after = (bank / "progress.md").read_text()
    assert after == before + separator + "[2025-07-01 12:00:00] - Next\n- step\n"


def test_append_to_the_seed_keeps_every_old_entry_and_adds_one(tmp_path: Path) -> None:
    """Appending to the seed keeps its bytes as a prefix and makes 18 entries, the new one last."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    seed = copy_seed(bank / "systemPatterns.md").read_bytes()
    append_entry(project, "systemPatterns", "New Pattern", "- one\n- two", now=NOON_UTC)
    after = (bank / "systemPatterns.md").read_bytes()
    assert after.startswith(seed)
    assert after[len(seed) :] == b"[2025-07-01 12:00:00] - New Pattern\n- one\n- two\n"
    parsed = parse(after.decode(), zone=UTC)
    assert len(parsed.entries) == 18
    assert parsed.entries[-1].title == "New Pattern"
    assert parsed.entries[-1].body == "- one\n- two"
    assert len(parsed.findings) == 10


def test_append_to_a_crlf_file_uses_crlf_throughout(tmp_path: Path) -> None:
    """A CRLF file stays CRLF: the prefix is kept and every new line ends in CRLF."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    before = seed_text().replace("\n", "\r\n").encode()
    (bank / "systemPatterns.md").write_bytes(before)
    append_entry(project, "systemPatterns", "Windows", "- a\n- b", now=NOON_UTC)
    after = (bank / "systemPatterns.md").read_bytes()
    assert after.startswith(before)
    assert after[len(before) :] == b"[2025-07-01 12:00:00] - Windows\r\n- a\r\n- b\r\n"
    assert after.count(b"\n") == after.count(b"\r\n")
    assert len(parse(after.decode(), zone=UTC).entries) == 18


def test_append_keeps_the_file_mode(tmp_path: Path) -> None:
    """A file with mode 0640 keeps that mode after the atomic rewrite."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    (bank / "progress.md").chmod(0o640)
    append_entry(project, "progress", "Mode", "")
    assert (bank / "progress.md").stat().st_mode & 0o777 == 0o640


def test_append_leaves_no_temporary_or_lock_file_in_the_bank(tmp_path: Path) -> None:
    """After appending, the bank folder holds exactly the files it held before."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    before = set(bank_listing(bank))
    append_entry(project, "progress", "Clean", "")
    assert set(bank_listing(bank)) == before
    assert (tmp_path / ".opsctl" / "memory-bank" / "write.lock").exists()


def test_append_to_a_missing_file_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    """A name that is not a file in the bank is a usage error; no file appears."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    with pytest.raises(UsageError, match=r"does not exist"):
        append_entry(project, "nosuchfile", "Title", "")
    assert not (bank / "nosuchfile.md").exists()


@pytest.mark.parametrize(
    "name", ["../escape", "../../etc/passwd", "/etc/passwd", "sub/progress", ".hidden", ""]
)
def test_append_refuses_names_that_leave_the_bank(tmp_path: Path, name: str) -> None:
    """Names with slashes, parent steps, a leading dot or nothing are usage errors."""
    project = make_project(tmp_path)
    fill_bank(tmp_path)
    (tmp_path / "escape.md").write_text("outside\n")
    with pytest.raises(UsageError, match="not a memory-bank file name"):
        append_entry(project, name, "Title", "")
    assert (tmp_path / "escape.md").read_text() == "outside\n"


def test_concurrent_appends_from_threads_all_land(tmp_path: Path) -> None:
    """Two threads appending ten entries each lose none of the twenty."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            start.wait()
            for index in range(10):
                append_entry(project, "progress", f"{tag} {index}", f"- by {tag}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    parsed = parse((bank / "progress.md").read_text(), zone=UTC)
    titles = sorted(e.title for e in parsed.entries)
    assert titles == sorted(f"{tag} {i}" for tag in ("left", "right") for i in range(10))
    assert all(e.body in {"- by left", "- by right"} for e in parsed.entries)


def test_appended_entry_makes_a_stale_file_fresh(tmp_path: Path) -> None:
    """A file whose newest entry is old becomes fresh once an entry is logged now."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    bank = fill_bank(tmp_path)
    old = datetime.now(UTC) - timedelta(days=30)
    append_entry(project, "progress", "Old", "", now=old)
    assert inspect_bank(project).files[-1].stale
    append_entry(project, "progress", "New", "")
    progress = inspect_bank(project).files[-1]
    assert not progress.stale
    assert progress.entries == 2
    assert (bank / "progress.md").read_text().count("] - ") == 2
