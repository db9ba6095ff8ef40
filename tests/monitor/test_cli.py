"""``opsctl monitor silence|silences|unsilence|alerts`` and ``opsctl health --history``
through the real entry point.
"""

from __future__ import annotations

import json
from pathlib import Path

from opsctl.config import load_project
from opsctl.monitor import AlertPolicy, AlertState, Observation, observe
from opsctl.monitor._store import open_store
from tests.support import run_cli, write_project


def project(tmp_path: Path) -> Path:
    return write_project(
        tmp_path / "proj", '[project]\nname = "demo"\n[services.api]\ncommand = "sleep 1"\n'
    )


def test_silence_list_and_unsilence(tmp_path: Path) -> None:
    """A silence is created with its duration and reason, listed, and ended by id."""
    config = str(project(tmp_path))

    created = run_cli(
        "-c", config, "monitor", "silence", "api", "2h", "--reason", "deploy", "--json"
    )
    assert created.exit_code == 0, created.output
    silence = json.loads(created.stdout)
    assert silence["target"] == "api"
    assert silence["reason"] == "deploy"
    assert 7190 <= silence["remaining_seconds"] <= 7200

    listed = json.loads(run_cli("-c", config, "monitor", "silences", "--json").stdout)
    assert [s["id"] for s in listed["silences"]] == [silence["id"]]
    human = run_cli("-c", config, "monitor", "silences")
    assert "deploy" in human.stdout
    assert "api" in human.stdout

    ended = run_cli("-c", config, "monitor", "unsilence", str(silence["id"]))
    assert ended.exit_code == 0
    assert f"Ended silence {silence['id']} of api." in ended.stdout
    assert json.loads(run_cli("-c", config, "monitor", "silences", "--json").stdout) == {
        "silences": []
    }


def test_unknown_target_is_noted_but_silenced(tmp_path: Path) -> None:
    """A silence may name an alert not seen yet; the operator is told so on stderr."""
    config = str(project(tmp_path))
    result = run_cli("-c", config, "monitor", "silence", "gpu_memory:0", "30m")
    assert result.exit_code == 0
    assert "matches no alert or service seen so far" in result.stderr
    assert "Silenced gpu_memory:0 until" in result.stdout


def test_bad_duration_and_unknown_silence_exit_2(tmp_path: Path) -> None:
    """Usage errors name what was wrong; nothing is created or removed."""
    config = str(project(tmp_path))

    bad = run_cli("-c", config, "monitor", "silence", "api", "soon")
    missing = run_cli("-c", config, "monitor", "unsilence", "42")
    too_long = run_cli("-c", config, "monitor", "silence", "api", "100d")

    assert bad.exit_code == 2
    assert "'soon' is not a valid silence duration" in bad.stderr
    assert missing.exit_code == 2
    assert "No silence in force has the id or target '42'" in missing.stderr
    assert too_long.exit_code == 2
    assert "at most 90 days" in too_long.stderr
    assert "Traceback" not in bad.output + missing.output + too_long.output


def test_alerts_show_states_and_exit_by_the_worst_firing(tmp_path: Path) -> None:
    """alerts lists every known alert; exit 1 while a critical one fires, 0 when none."""
    config = project(tmp_path)
    state_dir = load_project(config).state_dir
    store = open_store(state_dir)
    state = AlertState("disk_free:/srv")
    for index in range(2):
        observation = Observation(
            state.key, "critical", "Disk /srv: 2.0 % free", value="2.0 % free"
        )
        step = observe(state, observation, now=1000.0 + index, policy=AlertPolicy())
        state = step.state
        store.save_alerts([state], step.transitions)
    store.close()

    result = run_cli("-c", str(config), "monitor", "alerts", "--json")
    human = run_cli("-c", str(config), "monitor", "alerts")

    assert result.exit_code == 1
    [alert] = json.loads(result.stdout)["alerts"]
    assert (alert["alert"], alert["state"], alert["severity"]) == (
        "disk_free:/srv",
        "firing",
        "critical",
    )
    assert "disk_free:/srv" in human.stdout
    assert "firing" in human.stdout


def test_health_history_without_a_monitor_says_so(tmp_path: Path) -> None:
    """No monitor database yet: an explanation, an empty JSON history, exit 0."""
    config = str(project(tmp_path))

    human = run_cli("-c", config, "health", "--history")
    data = json.loads(
        run_cli("-c", config, "health", "--history", "--since", "7d", "--json").stdout
    )

    assert human.exit_code == 0
    assert "has not run for this project" in human.stdout
    assert data["recorded"] is False
    assert data["transitions"] == []


def test_health_history_rejects_a_bad_since(tmp_path: Path) -> None:
    """--since takes a duration; anything else is a usage error."""
    result = run_cli("-c", str(project(tmp_path)), "health", "--history", "--since", "yesterday")
    assert result.exit_code == 2
    assert "--since duration" in result.stderr


def test_monitor_config_errors_name_the_key(tmp_path: Path) -> None:
    """warn must be below critical, flap_changes below flap_window: exit 2, key named."""
    config = write_project(
        tmp_path / "bad",
        """
        [monitoring]
        flap_window = 5
        flap_changes = 5
        """,
    )
    thresholds = write_project(
        tmp_path / "bad2",
        """
        [monitoring.thresholds]
        memory_used_percent = { warn = 95, critical = 90 }
        """,
    )

    first = run_cli("-c", str(config), "monitor", "--once")
    second = run_cli("-c", str(thresholds), "monitor", "--once")

    assert first.exit_code == 2
    assert "flap_changes (5) must be below flap_window (5)" in first.stderr
    assert second.exit_code == 2
    assert "monitoring.thresholds.memory_used_percent" in second.stderr
    assert "warn (95) must be below critical (90)" in second.stderr
