"""``opsctl notify test|queue|flush`` through the real CLI, against the Slack stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.errors import ConfigError
from opsctl.notify import Notification, notifier_for
from tests.notify.conftest import FAST, ProjectFactory
from tests.slack_server import Fail, Hang, SlackServer
from tests.support import run_cli, wait_for, write_project


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


def test_queue_reports_damaged_files_instead_of_an_empty_queue(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Unreadable files are counted and named by ``notify queue``, never passed over."""
    project = make_project()
    sender = notifier_for(project)
    assert sender is not None
    for number in (1, 2):
        sender.queue.put(_titled(f"alert {number}"))
    folder = sender.queue.folder
    (folder / "queue" / "000000000001.json").write_text("{not json")
    (folder / "queue" / "000000000002.json").write_text("[]")

    code, out, err = cli(project.config_path, "queue")

    assert code == 0
    assert "No notification is waiting" not in out
    assert (
        f"2 damaged notification file(s) set aside in {folder / 'dead'}, never to be delivered"
        in err
    )
    code, out, _ = cli(project.config_path, "queue", "--json")
    listing = json.loads(out)
    assert listing["queued"] == []
    assert listing["damaged"] == ["000000000001.unreadable", "000000000002.unreadable"]


@pytest.mark.parametrize("name", ["queue", "dead"])
@pytest.mark.parametrize("command", ["queue", "flush", "test"])
def test_queue_folder_that_is_a_file_exits_1_naming_it(
    name: str, command: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """queue/ or dead/ being a regular file is damaged state: exit 1 with the path named,
    no traceback and no "unexpected" error.
    """
    project = make_project()
    folder = project.state_dir / "notify"
    folder.mkdir(parents=True)
    (folder / name).write_text("oops")

    code, out, err = cli(project.config_path, command)

    assert code == 1
    assert f"{folder / name} is not a folder" in err
    assert "unexpected" not in err.lower()
    assert "Traceback" not in err
    assert slack.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/services/T0/B0/SecretPart0123",
        "http://127.0.0.1:99999/services/T0/B0/SecretPart0123",
        "http://127.0.0.1:port/services/T0/B0/SecretPart0123",
        "http://user:SecretPart0123@127.0.0.1:9/services/T0/B0/x",
        "https://:SecretPart0123@hooks.example.invalid/services/x",
        "https://SecretPart0123@hooks.example.invalid/services/x",
        "http://127.0.0.1:9/services/T0/B0/SecretPart0123\x01",
        "http://127.0.0.1:9/services/T0/B0/Secret Part0123",
    ],
)
def test_unusable_webhook_url_is_a_config_error_naming_the_variable(
    url: str, tmp_path: Path
) -> None:
    """Bad URLs, and URLs carrying user credentials, exit 2 naming the variable, not its
    value, before any request or name lookup.
    """
    path = write_project(tmp_path / "p", FAST)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLACK_WEBHOOK_URL", url)
        with pytest.raises(ConfigError, match="SLACK_WEBHOOK_URL"):
            notifier_for(load_project(path))
        code, out, err = cli(path, "test")

    assert code == 2
    assert "SLACK_WEBHOOK_URL" in err
    assert "SecretPart" not in out + err
    assert "unexpected" not in err.lower()


def test_test_after_a_damaged_sequence_reports_no_negative_count(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """With a sequence file saying -5, ``notify test`` delivers and counts nothing odd."""
    project = make_project()
    folder = project.state_dir / "notify"
    folder.mkdir(parents=True)
    (folder / "sequence").write_text("-5\n")

    code, out, err = cli(project.config_path, "test", "--json")

    assert code == 0
    report = json.loads(out)
    assert (report["sequence"], report["earlier_delivered"]) == (1, 0)
    assert "-1" not in err


# A shell that ignores SIGINT for the command it runs, as one does for a background job.
_IGNORING_SIGINT = ["sh", "-c", 'trap \'\' INT; exec "$0" "$@"']


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("command", ["flush", "test"])
def test_signal_while_slack_hangs_exits_130_and_keeps_the_queue(
    sig: signal.Signals, command: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """SIGINT or SIGTERM while a request hangs stops the command at once with exit 130;
    the message stays queued, nothing is lost. Even a SIGINT the shell had ignored counts.
    """
    project = make_project()
    sender = notifier_for(project)
    assert sender is not None
    sender.queue.put(_titled("waiting"))
    slack.script(Hang(seconds=60))
    argv = [sys.executable, "-m", "opsctl", "-c", str(project.config_path), "notify", command]
    process = subprocess.Popen(
        [*_IGNORING_SIGINT, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OPSCTL_NOTIFY__TIMEOUT_SECONDS": "60"},
    )
    try:
        wait_for(lambda: len(slack.requests) == 1, timeout_seconds=60, message="request sent")
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    assert process.returncode == 130
    assert "Interrupted" in err
    assert [m.notification.title for m in sender.queue.pending()][0] == "waiting"
    assert len(slack.requests) == 1


def _titled(title: str) -> Notification:
    return Notification(key="k", event="firing", severity="warning", title=title)
