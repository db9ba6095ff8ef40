"""What ``monitor silence`` and ``health --history --since`` accept: durations in one strict
form with a stated maximum, targets of bounded length, and no silent "silence everything".
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from opsctl.errors import UsageError
from opsctl.monitor import parse_duration
from tests.support import run_cli, write_project


def project(tmp_path: Path) -> str:
    path = write_project(
        tmp_path / "proj", '[project]\nname = "demo"\n[services.api]\ncommand = "sleep 1"\n'
    )
    return str(path)


@pytest.mark.parametrize("text", ["1M", "30m1h", "1d1d", "\u0663m", "1.5h", "1H", "m30", "1d 2h"])
def test_loose_durations_are_refused_naming_the_form(text: str) -> None:
    """Capitals, units out of order or repeated, non-ASCII digits and decimals are refused."""
    with pytest.raises(UsageError, match="largest first"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1d12h", 129600), ("2w3d", 1468800), ("1h30m15s", 5415)]
)
def test_combined_durations_largest_first_parse(text: str, seconds: int) -> None:
    """Several units, largest first and each once, add up."""
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_huge_silence_is_a_usage_error_stating_the_maximum(tmp_path: Path) -> None:
    """A number too large for any date exits 2 with the maximum, not an OverflowError."""
    config = project(tmp_path)

    result = run_cli("-c", config, "monitor", "silence", "redis_up", "99999999999999999999d")

    assert result.exit_code == 2, result.output
    assert "at most 90 days" in result.stderr
    assert "unexpected" not in result.output
    assert "Traceback" not in result.output


def test_huge_since_is_a_usage_error_stating_the_maximum(tmp_path: Path) -> None:
    """--since far beyond any date exits 2 with the maximum, not 'out of range'."""
    config = project(tmp_path)

    for since in ("800000d", "99999999999999999999w"):
        result = run_cli("-c", config, "health", "--history", "--since", since)
        assert result.exit_code == 2, result.output
        assert "at most 3650 days" in result.stderr
        assert "out of range" not in result.output


def test_since_at_the_maximum_is_accepted(tmp_path: Path) -> None:
    """The stated maximum itself works."""
    result = run_cli("-c", project(tmp_path), "health", "--history", "--since", "3650d")
    assert result.exit_code == 0, result.output


def test_loose_silence_duration_on_the_cli_exits_2(tmp_path: Path) -> None:
    """'1M' is no longer read as one minute: exit 2 naming the accepted form."""
    result = run_cli("-c", project(tmp_path), "monitor", "silence", "api", "1M")
    assert result.exit_code == 2
    assert "'1M' is not a valid silence duration" in result.stderr
    assert "for example 30m, 2h, 1d, 1h30m or 1d12h" in result.stderr


def test_overlong_target_is_refused_and_errors_show_it_shortened(tmp_path: Path) -> None:
    """A 100 KB target is refused (200 characters at most); no message quotes it in full."""
    config = project(tmp_path)
    target = "x" * 100_000

    silenced = run_cli("-c", config, "monitor", "silence", target, "1h")
    unsilenced = run_cli("-c", config, "monitor", "unsilence", target)

    assert silenced.exit_code == 2
    assert "at most 200 characters (100000 given)" in silenced.stderr
    assert unsilenced.exit_code == 2
    assert "No silence in force" in unsilenced.stderr
    for result in (silenced, unsilenced):
        assert len(result.output) < 2000
    listed = json.loads(run_cli("-c", config, "monitor", "silences", "--json").stdout)
    assert listed == {"silences": []}


def test_target_of_200_characters_is_accepted(tmp_path: Path) -> None:
    """The stated limit itself is accepted."""
    result = run_cli("-c", project(tmp_path), "monitor", "silence", "a" * 200, "1h")
    assert result.exit_code == 0, result.output


def test_star_alone_needs_all(tmp_path: Path) -> None:
    """'*' silences every alert: refused without --all, created with it."""
    config = project(tmp_path)

    refused = run_cli("-c", config, "monitor", "silence", "*", "1h")
    confirmed = run_cli("-c", config, "monitor", "silence", "*", "1h", "--all", "--json")

    assert refused.exit_code == 2
    assert "'*' silences every alert of the project" in refused.stderr
    assert "--all" in refused.stderr
    assert confirmed.exit_code == 0, confirmed.output
    assert json.loads(confirmed.stdout)["target"] == "*"


def test_note_for_an_unseen_target_is_a_whole_sentence(tmp_path: Path) -> None:
    """The note about a target nothing matches yet says what it will apply to."""
    result = run_cli("-c", project(tmp_path), "monitor", "silence", "gpu_memory:0", "30m")
    assert result.exit_code == 0
    note = " ".join(result.stderr.split())
    assert "it will apply to any matching alert or service that appears later" in note
