"""`memory-bank` through the real CLI: init, activate, status, log, history, show, install-hook."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opsctl.memory_bank import parse
from tests.memory_bank._helpers import (
    CLINE_FILES,
    ROO_FILES,
    bank_listing,
    bank_toml,
    copy_seed,
    numbered_entries,
    seed_text,
)
from tests.support import run_cli, write_project

BERLIN = ZoneInfo("Europe/Berlin")
HISTORY = Path(".opsctl") / "memory-bank" / "activations.jsonl"


def _project(root: Path, settings: str = "") -> Path:
    """Write the project into ``root`` (the test's working folder); return the bank folder."""
    write_project(root, bank_toml(settings))
    return root / "memory-bank"


def _initialised(root: Path, settings: str = "") -> Path:
    bank = _project(root, settings)
    assert run_cli("memory-bank", "init").exit_code == 0
    return bank


def _file_lines(stdout: str, names: tuple[str, ...]) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    return {name: [line for line in lines if line.split(" ", 1)[0] == name] for name in names}


def _stamp_of_last_entry(path: Path, zone: tzinfo) -> datetime:
    entries = parse(path.read_text(), zone=UTC).entries
    stamp = entries[-1].timestamp
    assert stamp is not None
    return stamp.replace(tzinfo=zone)


# init


def test_init_creates_every_roo_file_and_says_so(tmp_path: Path) -> None:
    """init prints one 'created' line per roo file and creates each with a heading."""
    bank = _project(tmp_path)
    result = run_cli("memory-bank", "init")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["created"] * 5
    for name in ROO_FILES:
        assert f"created {bank / name}" in result.stdout
        assert (bank / name).read_text().startswith("# ")


def test_init_keeps_existing_files_byte_for_byte(tmp_path: Path) -> None:
    """An existing seed file is reported as kept and unchanged; the others are created."""
    bank = _project(tmp_path)
    seed = copy_seed(bank / "systemPatterns.md").read_bytes()
    result = run_cli("memory-bank", "init")
    assert result.exit_code == 0
    assert f"kept    {bank / 'systemPatterns.md'}" in result.stdout
    assert result.stdout.count("created ") == 4
    assert (bank / "systemPatterns.md").read_bytes() == seed
    before = bank_listing(bank)
    again = run_cli("memory-bank", "init")
    assert again.stdout.count("kept ") == 5
    assert bank_listing(bank) == before
    assert run_cli("-q", "memory-bank", "init").stdout == ""


def test_init_follows_the_cline_and_custom_profiles(tmp_path: Path) -> None:
    """cline creates its six files; a custom list creates exactly its own."""
    write_project(tmp_path, bank_toml('profile = "cline"'))
    assert run_cli("memory-bank", "init").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "memory-bank").iterdir()) == sorted(CLINE_FILES)
    custom = tmp_path / "custom"
    write_project(custom, bank_toml('profile = "custom"\nfiles = ["notes.md"]'))
    result = run_cli("--config", str(custom / "opsctl.toml"), "memory-bank", "init")
    assert result.exit_code == 0
    assert [p.name for p in (custom / "memory-bank").iterdir()] == ["notes.md"]


# activate and status


def test_activate_without_a_bank_is_inactive_and_exits_one(tmp_path: Path) -> None:
    """No bank folder: first line INACTIVE, each roo file on one 'missing' line, exit 1."""
    _project(tmp_path)
    result = run_cli("memory-bank", "activate")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "[MEMORY BANK: INACTIVE]"
    for name, lines in _file_lines(result.stdout, ROO_FILES).items():
        assert len(lines) == 1, name
        assert "missing" in lines[0]


def test_activate_with_every_file_is_active_and_exits_zero(tmp_path: Path) -> None:
    """After init: first line ACTIVE, one fresh line per file, exit 0."""
    _initialised(tmp_path)
    result = run_cli("memory-bank", "activate")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "[MEMORY BANK: ACTIVE]"
    for name, lines in _file_lines(result.stdout, ROO_FILES).items():
        assert len(lines) == 1, name
        assert " fresh " in lines[0]


def test_activate_line_for_the_seed_shows_entries_newest_age_size_and_tokens(
    tmp_path: Path,
) -> None:
    """The seed's line has its 17 entries, newest stamp, stale state, size, tokens, findings."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    copy_seed(bank / "systemPatterns.md")
    result = run_cli("memory-bank", "activate")
    assert result.exit_code == 0
    line = _file_lines(result.stdout, ROO_FILES)["systemPatterns.md"][0].split()
    assert line[:5] == ["systemPatterns.md", "stale", "17", "2025-03-23", "04:41"]
    assert line[-4:] == ["6.7", "KiB", "~1714", "10"]
    assert line[5].endswith("h") and "d" in line[5]
    assert line[6] == "ago"


def test_one_missing_file_makes_activate_inactive(tmp_path: Path) -> None:
    """Removing progress.md flips the first line to INACTIVE and the exit code to 1."""
    bank = _initialised(tmp_path)
    (bank / "progress.md").unlink()
    result = run_cli("memory-bank", "activate")
    assert result.exit_code == 1
    assert result.stdout.startswith("[MEMORY BANK: INACTIVE]\n")
    assert "missing" in _file_lines(result.stdout, ROO_FILES)["progress.md"][0]
    assert "missing" not in _file_lines(result.stdout, ROO_FILES)["decisionLog.md"][0]


def test_activate_json_is_one_document_with_status_and_files(tmp_path: Path) -> None:
    """--json prints only JSON: status, folder, profile, checked_at and five file reports."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    copy_seed(bank / "systemPatterns.md")
    result = run_cli("memory-bank", "activate", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["status"] == "active"
    assert data["folder"] == str(bank)
    assert data["profile"] == "roo"
    assert data["checked_at"].endswith("Z")
    assert [f["name"] for f in data["files"]] == list(ROO_FILES)
    patterns = data["files"][2]
    assert (patterns["entries"], patterns["stale"], patterns["size_bytes"]) == (17, True, 6856)
    assert [f["line"] for f in patterns["findings"]] == [24, 32, 38, 46, 52, 60, 66, 74, 82, 135]
    (bank / "activeContext.md").unlink()
    inactive = run_cli("memory-bank", "activate", "--json")
    assert inactive.exit_code == 1
    assert json.loads(inactive.stdout)["status"] == "inactive"


def test_each_activation_is_recorded_outside_the_bank(tmp_path: Path) -> None:
    """Three activations add three lines under .opsctl and no file in the bank folder."""
    bank = _initialised(tmp_path)
    before = bank_listing(bank)
    for _ in range(3):
        run_cli("memory-bank", "activate")
    lines = (tmp_path / HISTORY).read_text().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["active"] is True for line in lines)
    assert bank_listing(bank) == before


def test_inactive_activation_is_recorded_too(tmp_path: Path) -> None:
    """An activation without a bank is still recorded, as inactive, with no bank folder made."""
    _project(tmp_path)
    run_cli("memory-bank", "activate")
    record = json.loads((tmp_path / HISTORY).read_text())
    assert record["active"] is False
    assert not (tmp_path / "memory-bank").exists()


def test_status_prints_like_activate_but_records_nothing(tmp_path: Path) -> None:
    """status gives the same first line and exit code and writes no activation."""
    _initialised(tmp_path)
    result = run_cli("memory-bank", "status")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "[MEMORY BANK: ACTIVE]"
    assert not (tmp_path / HISTORY).exists()
    run_cli("memory-bank", "activate")
    run_cli("memory-bank", "status", "--json")
    assert len((tmp_path / HISTORY).read_text().splitlines()) == 1
    (tmp_path / "memory-bank" / "progress.md").unlink()
    assert run_cli("memory-bank", "status").exit_code == 1


def test_stale_and_fresh_follow_stale_after_days(tmp_path: Path) -> None:
    """A 3-day-old newest entry is stale at stale_after_days = 2 and fresh at 5."""
    bank = _initialised(tmp_path, 'timestamps = "utc"\nstale_after_days = 2')
    three_days_ago = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 3 * 86_400, UTC)
    stamp = three_days_ago.strftime("%Y-%m-%d %H:%M:%S")
    (bank / "progress.md").write_text(f"# Progress\n\n[{stamp}] - Old news\n")
    result = run_cli("memory-bank", "status")
    assert " stale " in _file_lines(result.stdout, ROO_FILES)["progress.md"][0]
    assert " fresh " in _file_lines(result.stdout, ROO_FILES)["activeContext.md"][0]
    write_project(tmp_path, bank_toml('timestamps = "utc"\nstale_after_days = 5'))
    again = run_cli("memory-bank", "status", "--json")
    progress = json.loads(again.stdout)["files"][-1]
    assert progress["stale"] is False
    assert progress["age_seconds"] == pytest.approx(3 * 86_400, abs=5)


def test_quiet_activate_lists_only_problem_files(tmp_path: Path) -> None:
    """-q keeps the status line but shows only missing or stale files."""
    bank = _initialised(tmp_path)
    (bank / "decisionLog.md").unlink()
    result = run_cli("-q", "memory-bank", "activate")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "[MEMORY BANK: INACTIVE]"
    lines = _file_lines(result.stdout, ROO_FILES)
    assert len(lines["decisionLog.md"]) == 1
    assert lines["progress.md"] == []


def test_status_handles_a_huge_file(tmp_path: Path) -> None:
    """A 20,000-entry progress.md is counted in full and the bank is active."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    (bank / "progress.md").write_text(numbered_entries(20_000))
    result = run_cli("memory-bank", "status", "--json")
    assert result.exit_code == 0
    progress = json.loads(result.stdout)["files"][-1]
    assert progress["entries"] == 20_000
    assert progress["newest_entry"] == "2024-01-01T05:33:19+00:00"
    assert progress["findings"] == []
    assert run_cli("memory-bank", "status").stdout.startswith("[MEMORY BANK: ACTIVE]\n")


def test_empty_and_entry_less_files_count_as_present(tmp_path: Path) -> None:
    """An empty file and a prose-only file are present with zero entries; the bank is active."""
    bank = _initialised(tmp_path)
    (bank / "progress.md").write_bytes(b"")
    (bank / "activeContext.md").write_text("Just prose.\n\nMore prose.\n")
    result = run_cli("memory-bank", "activate", "--json")
    assert result.exit_code == 0
    files = {f["name"]: f for f in json.loads(result.stdout)["files"]}
    assert (files["progress.md"]["entries"], files["progress.md"]["size_bytes"]) == (0, 0)
    assert files["activeContext.md"]["entries"] == 0
    assert files["activeContext.md"]["age_source"] == "modified"


# log


def test_log_appends_an_entry_stamped_now_in_the_configured_zone(tmp_path: Path) -> None:
    """With Europe/Berlin the new stamp is Berlin wall-clock time within seconds of now."""
    bank = _initialised(tmp_path, 'timezone = "Europe/Berlin"')
    before = (bank / "decisionLog.md").read_bytes()
    result = run_cli("memory-bank", "log", "decisionLog", "Use   Redis", "--body", "Fast enough")
    assert result.exit_code == 0
    assert f"logged 'Use Redis' in {bank / 'decisionLog.md'}" in result.stdout
    after = (bank / "decisionLog.md").read_bytes()
    assert after.startswith(before)
    added = after[len(before) :].decode()
    assert added.startswith("\n[")
    assert added.endswith("] - Use Redis\n- Fast enough\n")
    written = _stamp_of_last_entry(bank / "decisionLog.md", BERLIN)
    assert abs((datetime.now(BERLIN) - written).total_seconds()) < 5


def test_log_with_utc_timestamps_writes_utc_wall_clock(tmp_path: Path) -> None:
    """With ``timestamps = "utc"`` the stamp is UTC wall-clock time within seconds of now."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    assert run_cli("memory-bank", "log", "progress.md", "Step").exit_code == 0
    written = _stamp_of_last_entry(bank / "progress.md", UTC)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 5


def test_log_body_dash_reads_standard_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--body -`` takes the body from stdin, lines kept as given."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    monkeypatch.setattr(sys, "stdin", io.StringIO("- first point\n- second point\n"))
    result = run_cli("memory-bank", "log", "progress", "From stdin", "--body", "-")
    assert result.exit_code == 0
    entry = parse((bank / "progress.md").read_text(), zone=UTC).entries[-1]
    assert entry.title == "From stdin"
    assert entry.body == "- first point\n- second point"


def test_log_keeps_crlf_line_endings(tmp_path: Path) -> None:
    """Logging into a CRLF seed keeps its bytes and writes the entry with CRLF only."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    crlf = seed_text().replace("\n", "\r\n").encode()
    (bank / "systemPatterns.md").write_bytes(crlf)
    result = run_cli("memory-bank", "log", "systemPatterns", "CRLF entry", "--body", "a\nb")
    assert result.exit_code == 0
    after = (bank / "systemPatterns.md").read_bytes()
    assert after.startswith(crlf)
    assert after.count(b"\n") == after.count(b"\r\n")
    assert after.endswith(b"] - CRLF entry\r\na\r\nb\r\n")


@pytest.mark.parametrize("name", ["../opsctl.toml", "../../outside", "/etc/passwd", "a/b"])
def test_log_refuses_names_outside_the_bank_with_exit_two(tmp_path: Path, name: str) -> None:
    """Path-like names exit 2 and leave the config file and bank unchanged."""
    bank = _initialised(tmp_path)
    config = (tmp_path / "opsctl.toml").read_bytes()
    before = bank_listing(bank)
    result = run_cli("memory-bank", "log", name, "Title")
    assert result.exit_code == 2
    assert "not a memory-bank file name" in result.stderr
    assert (tmp_path / "opsctl.toml").read_bytes() == config
    assert bank_listing(bank) == before


def test_log_to_a_nonexistent_file_exits_two_and_creates_nothing(tmp_path: Path) -> None:
    """A file that is not in the bank is refused with exit 2; nothing is created."""
    bank = _initialised(tmp_path)
    result = run_cli("memory-bank", "log", "nosuch", "Title")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert not (bank / "nosuch.md").exists()


def test_log_without_a_title_exits_two(tmp_path: Path) -> None:
    """A blank title is refused with exit 2 and the file is unchanged."""
    bank = _initialised(tmp_path)
    before = (bank / "progress.md").read_bytes()
    assert run_cli("memory-bank", "log", "progress", "   ").exit_code == 2
    assert (bank / "progress.md").read_bytes() == before


# history


def test_history_draws_sparklines_of_growing_entries(tmp_path: Path) -> None:
    """Four activations with progress.md at 0..3 entries draw ▁▃▆█ and '0 → 3'."""
    _initialised(tmp_path, 'timestamps = "utc"')
    for step in range(4):
        if step:
            run_cli("memory-bank", "log", "progress", f"Step {step}")
        run_cli("memory-bank", "activate")
    result = run_cli("memory-bank", "history")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    assert rows["progress.md"][1:6] == ["0", "→", "3", "▁▃▆█", "▁▃▆█"]
    assert rows["progress.md"][6:] == ["0", "of", "4"]
    assert rows["decisionLog.md"][1:5] == ["0", "→", "0", "▁▁▁▁"]
    assert "over the last 4 activations" in result.stdout


def test_history_json_gives_each_files_series(tmp_path: Path) -> None:
    """--json lists per file one point per activation with entries, size and staleness."""
    bank = _initialised(tmp_path, 'timestamps = "utc"')
    for step in range(3):
        if step:
            run_cli("memory-bank", "log", "progress", f"Step {step}")
        run_cli("memory-bank", "activate")
    (bank / "decisionLog.md").unlink()
    run_cli("memory-bank", "activate")
    result = run_cli("memory-bank", "history", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["activations"] == 4
    assert sorted(data["files"]) == sorted(ROO_FILES)
    progress = data["files"]["progress.md"]
    assert [p["entries"] for p in progress] == [0, 1, 2, 2]
    sizes = [p["size_bytes"] for p in progress]
    assert sizes[0] < sizes[1] < sizes[2] == sizes[3]
    assert all(p["at"].endswith("Z") and p["stale"] is False for p in progress)
    assert [p["present"] for p in data["files"]["decisionLog.md"]] == [True, True, True, False]
    last_two = json.loads(run_cli("memory-bank", "history", "--json", "--last", "2").stdout)
    assert last_two["activations"] == 2
    assert [p["entries"] for p in last_two["files"]["progress.md"]] == [2, 2]


def test_history_without_activations_says_so(tmp_path: Path) -> None:
    """Before any activation, history says none are recorded; JSON has zero activations."""
    _initialised(tmp_path)
    result = run_cli("memory-bank", "history")
    assert result.exit_code == 0
    assert "No activations recorded yet" in result.stdout
    assert json.loads(run_cli("memory-bank", "history", "--json").stdout) == {
        "activations": 0,
        "files": {},
    }


# show


def test_show_prints_the_whole_bank_without_a_budget(tmp_path: Path) -> None:
    """Without --budget, stdout holds every file's text and stderr stays quiet."""
    bank = _initialised(tmp_path)
    seed = copy_seed(bank / "systemPatterns.md").read_text()
    result = run_cli("memory-bank", "show")
    assert result.exit_code == 0
    assert seed.strip("\n") in result.stdout
    for name in ROO_FILES:
        assert (bank / name).read_text().strip("\n") in result.stdout
    assert result.stderr == ""


def test_show_with_a_budget_fits_and_reports_left_out_entries(tmp_path: Path) -> None:
    """--budget 400 keeps the output within 400 tokens and names what was left out."""
    bank = _initialised(tmp_path)
    copy_seed(bank / "systemPatterns.md")
    result = run_cli("memory-bank", "show", "--budget", "400")
    assert result.exit_code == 0
    assert -(-len(result.stdout) // 4) <= 400
    assert "entries left out: systemPatterns.md:" in result.stderr
    assert "older entries left out]" in result.stdout


def test_show_refuses_a_zero_budget(tmp_path: Path) -> None:
    """--budget 0 is a usage error (exit 2)."""
    _initialised(tmp_path)
    assert run_cli("memory-bank", "show", "--budget", "0").exit_code == 2


# install-hook


def test_install_hook_writes_roomodes_for_the_roo_profile(tmp_path: Path) -> None:
    """The default profile gets .roomodes (valid JSON) and no .clinerules."""
    _project(tmp_path)
    result = run_cli("memory-bank", "install-hook")
    assert result.exit_code == 0
    assert f"wrote {tmp_path / '.roomodes'}" in result.stdout
    data = json.loads((tmp_path / ".roomodes").read_text())
    assert [m["slug"] for m in data["customModes"]] == ["memory-bank"]
    assert not (tmp_path / ".clinerules").exists()


def test_install_hook_keeps_another_mode_and_does_not_duplicate(tmp_path: Path) -> None:
    """A pre-existing custom mode survives two installs; the memory-bank mode appears once."""
    _project(tmp_path)
    other = {"slug": "docs", "name": "Docs", "roleDefinition": "Writes docs.", "groups": []}
    (tmp_path / ".roomodes").write_text(json.dumps({"customModes": [other]}, indent=2))
    assert run_cli("memory-bank", "install-hook", "--roo").exit_code == 0
    assert run_cli("memory-bank", "install-hook", "--roo").exit_code == 0
    modes = json.loads((tmp_path / ".roomodes").read_text())["customModes"]
    assert modes[0] == other
    assert [m["slug"] for m in modes] == ["docs", "memory-bank"]


def test_install_hook_refuses_invalid_roomodes_with_exit_two(tmp_path: Path) -> None:
    """Broken JSON in .roomodes exits 2 and the file keeps its bytes."""
    _project(tmp_path)
    broken = b'{"customModes": [ {"slug": "x",, } ]'
    (tmp_path / ".roomodes").write_bytes(broken)
    result = run_cli("memory-bank", "install-hook", "--roo")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert (tmp_path / ".roomodes").read_bytes() == broken


def test_install_hook_writes_clinerules_for_the_cline_profile(tmp_path: Path) -> None:
    """The cline profile gets a marked block in .clinerules after the user's own lines."""
    _project(tmp_path, 'profile = "cline"')
    (tmp_path / ".clinerules").write_text("- always write tests\n")
    assert run_cli("memory-bank", "install-hook").exit_code == 0
    assert run_cli("memory-bank", "install-hook").exit_code == 0
    text = (tmp_path / ".clinerules").read_text()
    assert text.startswith("- always write tests\n\n<!-- opsctl memory-bank: begin -->\n")
    assert text.count("<!-- opsctl memory-bank: begin -->") == 1
    assert not (tmp_path / ".roomodes").exists()


def test_install_hook_uses_the_clinerules_folder_form(tmp_path: Path) -> None:
    """With a .clinerules folder, --cline writes its own file inside it."""
    _project(tmp_path)
    (tmp_path / ".clinerules").mkdir()
    result = run_cli("memory-bank", "install-hook", "--cline")
    assert result.exit_code == 0
    assert (tmp_path / ".clinerules" / "opsctl-memory-bank.md").is_file()
    assert not (tmp_path / ".roomodes").exists()


def test_install_hook_for_custom_writes_both_and_shell_snippet(tmp_path: Path) -> None:
    """custom writes .roomodes and .clinerules; --shell adds the snippet and says how to use it."""
    _project(tmp_path, 'profile = "custom"\nfiles = ["notes.md"]')
    result = run_cli("memory-bank", "install-hook", "--shell")
    assert result.exit_code == 0
    snippet = tmp_path / ".opsctl" / "memory-bank" / "activate.sh"
    assert snippet.is_file()
    assert "opsctl memory-bank activate -q" in snippet.read_text()
    assert f". '{snippet}'" in result.stdout
    assert (tmp_path / ".roomodes").is_file()
    assert "notes.md" in (tmp_path / ".clinerules").read_text()
