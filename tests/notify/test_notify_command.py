"""``opsctl notify test|queue|flush`` through the real CLI, against the Slack stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.errors import ConfigError
from opsctl.notify import notifier_for
from tests.notify.conftest import FAST, ProjectFactory
from tests.slack_server import Fail, SlackServer
from tests.support import run_cli, write_project


def cli(project_path: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("-c", str(project_path), "notify", *args)
    return result.exit_code, result.stdout, result.stderr


def test_notify_test_delivers_and_exits_0(slack: SlackServer, make_project: ProjectFactory) -> None:
    """A delivered test message exits 0 and reads as a test in Slack."""
    project = make_project()

    code, out, _ = cli(project.config_path, "test", "--json")

    assert code == 0
    report = json.loads(out)
    assert report["delivered"] is True
    assert report["status"] == "delivered"
    [message] = slack.messages
    assert message.payload["blocks"][0]["text"]["text"] == (
        ":test_tube: Test: Test notification from proj"
    )


def test_notify_test_with_bot_token_exits_0(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """The bot-token path works end to end from the command line."""
    project = make_project(via="bot")

    code, out, _ = cli(project.config_path, "test")

    assert code == 0
    assert "Test message delivered (Slack chat.postMessage to #alerts)." in out
    assert slack.messages[0].payload["channel"] == "#alerts"


def test_notify_test_refused_for_good_exits_1_with_the_reason(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A permanent refusal exits 1 and names Slack's error."""
    project = make_project()
    slack.script(Fail("no_service"))

    code, _, err = cli(project.config_path, "test")

    assert code == 1
    assert "Slack refused the test message: HTTP 404 no_service" in err
    assert len(slack.requests) == 1


def test_notify_test_while_slack_is_down_queues_then_flush_delivers(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Down: exit 1 and queued; ``queue`` lists it without secrets; ``flush`` delivers it."""
    project = make_project()
    slack.down()

    code, out, _ = cli(project.config_path, "test", "--json")

    assert code == 1
    report = json.loads(out)
    assert report["status"] == "queued"
    assert "Connection refused" in report["reason"]
    code, out, _ = cli(project.config_path, "queue", "--json")
    assert code == 0
    listing = json.loads(out)
    [queued] = listing["queued"]
    assert (queued["event"], queued["title"]) == ("test", "Test notification from proj")
    assert queued["attempts"] == 4
    assert queued["age_seconds"] >= 0
    assert slack.webhook_path.rsplit("/", 1)[1] not in out
    slack.up()
    code, out, _ = cli(project.config_path, "flush", "--json")
    assert code == 0
    assert json.loads(out)["delivered"] == 1
    assert len(slack.messages) == 1
    code, out, _ = cli(project.config_path, "queue")
    assert "No notification is waiting." in out


def test_queue_lists_dead_letters_and_flush_dead_retries_them(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Dead letters show in ``queue``; plain ``flush`` leaves them, ``flush --dead``
    delivers them once the cause is gone.
    """
    project = make_project()
    slack.script(Fail("invalid_token"))
    assert cli(project.config_path, "test")[0] == 1

    code, out, _ = cli(project.config_path, "queue")
    assert code == 0
    assert "dead" in out
    assert "HTTP 403 invalid_token" in out
    assert cli(project.config_path, "flush")[0] == 0
    assert slack.messages == []

    code, out, _ = cli(project.config_path, "flush", "--dead", "--json")

    assert code == 0
    assert json.loads(out)["delivered"] == 1
    assert len(slack.messages) == 1
    assert json.loads(cli(project.config_path, "queue", "--json")[1])["dead"] == []


def test_nothing_configured_exits_2_naming_the_variables(tmp_path: Path) -> None:
    """Without a webhook or token, ``notify test`` exits 2 and says what to set."""
    path = write_project(tmp_path / "bare", '[notify]\nslack_webhook_url_env = "OPS_HOOK"\n')

    code, out, err = cli(path, "test")

    assert code == 2
    assert out == ""
    assert "No Slack notifications are configured" in err
    assert "OPS_HOOK" in err
    assert "SLACK_BOT_TOKEN" in err
    assert "notify.slack_channel" in err
    assert notifier_for(load_project(path)) is None


def test_flush_with_nothing_configured_exits_2(tmp_path: Path) -> None:
    """``notify flush`` needs a destination too; ``notify queue`` does not."""
    path = write_project(tmp_path / "bare", "")

    assert cli(path, "flush")[0] == 2
    code, out, _ = cli(path, "queue", "--json")
    assert code == 0
    assert json.loads(out)["queued"] == []


def test_bot_token_without_channel_is_a_config_error(tmp_path: Path) -> None:
    """A token with no channel to post to exits 2 and names notify.slack_channel."""
    path = write_project(tmp_path / "p", FAST, env="SLACK_BOT_TOKEN=xoxb-1-2-SomethingLong\n")

    code, _, err = cli(path, "test")

    assert code == 2
    assert "notify.slack_channel" in err
    assert "xoxb-1-2-SomethingLong" not in err


def test_webhook_that_is_not_a_url_is_a_config_error(tmp_path: Path) -> None:
    """A webhook variable holding something other than an http(s) URL exits 2 without
    showing the value.
    """
    path = write_project(tmp_path / "p", "", env="SLACK_WEBHOOK_URL=ftp-no-such-thing-0123\n")

    with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL does not hold an http"):
        notifier_for(load_project(path))
    code, _, err = cli(path, "test")
    assert code == 2
    assert "ftp-no-such-thing-0123" not in err


def test_process_environment_overrides_the_env_file(
    slack: SlackServer, make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook URL in the process environment wins over the one in .env."""
    project = make_project(via="none", env="SLACK_WEBHOOK_URL=http://127.0.0.1:9/services/x")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)

    code, _, _ = cli(project.config_path, "test")

    assert code == 0
    assert len(slack.messages) == 1
