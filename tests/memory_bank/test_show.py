"""The bank as one text: complete without a budget, newest entries first within one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsctl.config import Project
from opsctl.memory_bank import estimate_tokens, show_bank
from tests.memory_bank._helpers import ROO_FILES, copy_seed, fill_bank, make_project

CUT_NOTE = "[cut here: the token budget is reached]"

# Twelve entries of equal size whose stamps are out of file order: index -> day of January.
DAYS_A = [5, 12, 1, 9, 3, 11]
DAYS_B = [8, 2, 10, 4, 7, 6]


def _even_file(prefix: str, days: list[int]) -> str:
    lines = [f"# File {prefix}", ""]
    for index, day in enumerate(days):
        title = f"[2025-01-{day:02d} 10:00:00] - {prefix}{index:02d}"
        lines += [title, f"- body {prefix}{index}", ""]
    return "\n".join(lines)


def _two_file_project(tmp_path: Path) -> Project:
    project = make_project(tmp_path, 'profile = "custom"\nfiles = ["a.md", "b.md"]')
    bank = tmp_path / "memory-bank"
    bank.mkdir()
    (bank / "a.md").write_text(_even_file("A", DAYS_A))
    (bank / "b.md").write_text(_even_file("B", DAYS_B))
    return project


def _kept(text: str) -> list[str]:
    return re.findall(r"^\[2025-01-\d\d 10:00:00\] - ([AB]\d\d)$", text, flags=re.MULTILINE)


def test_without_budget_every_file_is_shown_in_full_in_profile_order(tmp_path: Path) -> None:
    """Each present file's whole text appears under its name, roo order, extras after."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    seed = copy_seed(bank / "systemPatterns.md").read_text()
    (bank / "zz-extra.md").write_text("# Extra\n\n[2025-01-01 00:00:00] - Extra entry\n")
    (bank / "decisionLog.md").unlink()
    shown = show_bank(project)
    assert shown.text.startswith("# Memory bank of bankdemo (roo profile)\n")
    assert seed.strip("\n") in shown.text
    for path in bank.glob("*.md"):
        assert path.read_text().strip("\n") in shown.text
    order = re.findall(r"^===== (\S+) =====$", shown.text, flags=re.MULTILINE)
    expected = [name for name in ROO_FILES if name != "decisionLog.md"]
    assert order == [*expected, "zz-extra.md"]
    assert shown.omitted == {}
    assert shown.tokens == estimate_tokens(shown.text)
    assert CUT_NOTE not in shown.text


def test_without_budget_a_crlf_file_is_shown_with_plain_newlines(tmp_path: Path) -> None:
    """A CRLF file's text appears in the bank text with LF line ends and no stray CR."""
    project = make_project(tmp_path)
    bank = fill_bank(tmp_path)
    seed = copy_seed(bank / "systemPatterns.md").read_text()
    (bank / "systemPatterns.md").write_bytes(seed.replace("\n", "\r\n").encode())
    shown = show_bank(project)
    assert "\r" not in shown.text
    assert seed.strip("\n") in shown.text


def test_budgeted_text_never_exceeds_the_budget_for_the_seed_bank(tmp_path: Path) -> None:
    """From 20 to 2,500 tokens the estimate of the output (len/4 rounded up) fits the budget."""
    project = make_project(tmp_path)
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    for budget in range(20, 2_500, 37):
        shown = show_bank(project, budget_tokens=budget)
        assert estimate_tokens(shown.text) <= budget, budget
        assert shown.tokens == estimate_tokens(shown.text)


def test_budget_keeps_headings_and_the_newest_entries_and_counts_the_rest(tmp_path: Path) -> None:
    """At 300 tokens every heading stays, some seed entries are left out and counted."""
    project = make_project(tmp_path, 'timestamps = "utc"')
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    shown = show_bank(project, budget_tokens=300)
    for heading in ("# System Patterns", "## Design Patterns", "## Monitoring Patterns"):
        assert heading in shown.text
    for name in ROO_FILES:
        assert f"===== {name} =====" in shown.text
    kept = len(re.findall(r"^\[2025-03-\d\d \d\d:\d\d:\d\d\] - ", shown.text, flags=re.MULTILINE))
    assert 0 < shown.omitted["systemPatterns.md"] < 17
    assert kept + shown.omitted["systemPatterns.md"] == 17
    count = shown.omitted["systemPatterns.md"]
    assert f"[{count} older entries left out]" in shown.text
    assert shown.tokens <= 300


def test_budget_takes_entries_newest_first_across_files(tmp_path: Path) -> None:
    """With equal-size entries, every budget keeps exactly the k newest, in file order."""
    project = _two_file_project(tmp_path)
    by_age = sorted(
        [(day, f"A{i:02d}") for i, day in enumerate(DAYS_A)]
        + [(day, f"B{i:02d}") for i, day in enumerate(DAYS_B)],
        reverse=True,
    )
    partial = 0
    for budget in range(60, 400, 3):
        shown = show_bank(project, budget_tokens=budget)
        kept = _kept(shown.text)
        assert set(kept) == {title for _, title in by_age[: len(kept)]}, budget
        assert kept == sorted(kept), budget
        assert shown.omitted.get("a.md", 0) == 6 - sum(t.startswith("A") for t in kept)
        assert shown.omitted.get("b.md", 0) == 6 - sum(t.startswith("B") for t in kept)
        assert shown.tokens <= budget
        partial += 0 < len(kept) < 12
    assert partial > 5


def test_large_budget_leaves_nothing_out(tmp_path: Path) -> None:
    """A budget above the whole text keeps every entry and adds no note."""
    project = _two_file_project(tmp_path)
    full = show_bank(project)
    shown = show_bank(project, budget_tokens=full.tokens + 200)
    assert shown.omitted == {}
    assert len(_kept(shown.text)) == 12
    assert "left out" not in shown.text


def test_budget_that_fits_the_whole_bank_leaves_nothing_out(tmp_path: Path) -> None:
    """A budget equal to the unbudgeted text's tokens gives back that same text."""
    project = _two_file_project(tmp_path)
    full = show_bank(project)
    shown = show_bank(project, budget_tokens=full.tokens)
    assert shown.omitted == {}
    assert shown.text == full.text


def test_entries_without_a_valid_stamp_are_left_out_first(tmp_path: Path) -> None:
    """An entry with a malformed stamp counts as the oldest and is the first to go."""
    project = make_project(tmp_path, 'profile = "custom"\nfiles = ["a.md"]')
    bank = tmp_path / "memory-bank"
    bank.mkdir()
    (bank / "a.md").write_text(
        "# A\n\n"
        "[2025-01-01 10:00:00] - Oldest valid\n- body one\n\n"
        "[2025-13-01 10:00:00] - Broken stamp\n- body two\n\n"
        "[2025-01-03 10:00:00] - Newest valid\n- body six\n"
    )
    full = show_bank(project).tokens
    shown_at = [show_bank(project, budget_tokens=b) for b in range(20, full + 100)]
    dropped_one = [shown for shown in shown_at if sum(shown.omitted.values()) == 1]
    assert dropped_one, "no budget leaves out exactly one entry"
    for shown in dropped_one:
        assert "Broken stamp" not in shown.text
        assert "Oldest valid" in shown.text
        assert "Newest valid" in shown.text


def test_tiny_budget_cuts_the_text_and_ends_with_the_cut_note(tmp_path: Path) -> None:
    """At 20 tokens even the headings do not fit: the text is cut and says so."""
    project = make_project(tmp_path)
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    shown = show_bank(project, budget_tokens=20)
    assert shown.text.endswith(CUT_NOTE + "\n")
    assert shown.text.startswith("# Memory bank of bankdemo")
    assert estimate_tokens(shown.text) <= 20
    assert shown.tokens == estimate_tokens(shown.text)


@pytest.mark.parametrize("budget", [1, 5, 10])
def test_budget_below_the_cut_note_still_fits_the_budget(tmp_path: Path, budget: int) -> None:
    """Even a budget smaller than the cut note yields at most that many tokens."""
    project = make_project(tmp_path)
    copy_seed(fill_bank(tmp_path) / "systemPatterns.md")
    shown = show_bank(project, budget_tokens=budget)
    assert estimate_tokens(shown.text) <= budget


def test_budget_never_separates_a_kept_entry_from_its_title(tmp_path: Path) -> None:
    """With a form feed in an older body, every kept body still has its stamped title line."""
    project = make_project(tmp_path, 'profile = "custom"\nfiles = ["a.md"]\ntimestamps = "utc"')
    bank = tmp_path / "memory-bank"
    bank.mkdir()
    (bank / "a.md").write_text(
        "# A\n\n"
        "[2025-01-01 10:00:00] - Old\n- old body\x0cstill old\n\n"
        "[2025-01-02 10:00:00] - New\n- new body\n"
    )
    for budget in range(30, 80):
        text = show_bank(project, budget_tokens=budget).text
        if "- new body" in text:
            assert "[2025-01-02 10:00:00] - New\n- new body" in text, budget
        if "- old body" in text:
            assert "[2025-01-01 10:00:00] - Old\n- old body" in text, budget
