"""The on-disk queue: outages, order, exactly-once between processes, crashes, bounds."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opsctl.notify import Notification, Notifier, notifier_for
from tests.notify.conftest import ProjectFactory
from tests.slack_server import Ok, SlackServer
from tests.support import wait_for


def numbered(number: int, event: str = "firing") -> Notification:
    return Notification(
        key=f"check:{number}", event=event, severity="warning", title=f"alert {number}"
    )


def titles(slack: SlackServer) -> list[str]:
    """The titles of the posted messages, in the order Slack received them."""
    return [m.payload["blocks"][0]["text"]["text"].rsplit(": ", 1)[1] for m in slack.messages]


def notifier(make_project: ProjectFactory, **options: str) -> Notifier:
    result = notifier_for(make_project(**options))
    assert result is not None
    return result


def test_outage_then_recovery_delivers_each_message_once_in_order(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Slack down for several sends, then back: every message arrives once, in order."""
    sender = notifier(make_project)
    slack.down()

    sent_while_down = [sender.send(numbered(number)) for number in range(1, 5)]

    assert sent_while_down == [False, False, False, False]
    assert sender.queued_count() == 4
    slack.up()
    assert sender.send(numbered(5)) is True
    assert titles(slack) == [f"alert {number}" for number in range(1, 6)]
    assert sender.queued_count() == 0
    assert sender.flush() == 0
    assert len(slack.requests) == 5


def test_queue_files_are_private_and_sequence_numbered(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Each queued message is its own 0600 file in a 0700 folder, numbered in order."""
    sender = notifier(make_project)
    slack.down()

    for number in range(1, 4):
        sender.send(numbered(number))

    folder = sender.queue.folder / "queue"
    names = sorted(os.listdir(folder))
    assert names == ["000000000001.json", "000000000002.json", "000000000003.json"]
    for name in names:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(sender.queue.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(sender.queue.folder.parent.stat().st_mode) == 0o700
    data = json.loads((folder / names[0]).read_text())
    assert data["notification"]["title"] == "alert 1"
    assert data["attempts"] == 3 * 4  # three sends, four requests each
    assert json.loads((folder / names[1]).read_text())["attempts"] == 0


def test_sequence_numbers_are_not_reused_after_the_queue_empties(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Numbers keep growing, so an old dead letter never shares a number with a new one."""
    sender = notifier(make_project)
    first = sender.deliver(numbered(1))
    second = sender.deliver(numbered(2))

    assert (first.sequence, second.sequence) == (1, 2)


def test_queue_is_bounded_dropping_the_oldest(
    slack: SlackServer, make_project: ProjectFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Beyond notify.queue_max the oldest queued messages are dropped with a warning."""
    sender = notifier(make_project, extra="queue_max = 3\nmax_attempts = 1\n")
    slack.down()

    for number in range(1, 6):
        sender.send(numbered(number))

    assert [m.notification.title for m in sender.queue.pending()] == [
        "alert 3",
        "alert 4",
        "alert 5",
    ]
    assert "Dropped queued notification #1" in caplog.text
    slack.up()
    assert sender.flush() == 3
    assert titles(slack) == ["alert 3", "alert 4", "alert 5"]


def test_crash_after_delivery_before_delete_causes_one_duplicate_and_no_loss(
    tmp_path: Path, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A process killed after Slack posted a message but before it deleted the file sends
    that one message again on the next flush: at least once, at most one duplicate.
    """
    project = make_project()
    sender = notifier_for(project)
    assert sender is not None
    for number in range(1, 4):
        sender.queue.put(numbered(number))
    slack.script(Ok(delay_seconds=30))  # posted at once, confirmed never
    process = subprocess.Popen(
        [sys.executable, "-m", "opsctl", "-c", str(project.config_path), "notify", "flush"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(slack.messages) == 1, timeout_seconds=30, message="first post")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    assert sender.flush() == 3
    assert titles(slack) == ["alert 1", "alert 1", "alert 2", "alert 3"]


_FLUSHER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from opsctl.config import load_project
    from opsctl.notify import Notification, notifier_for

    config, ready, go, name = sys.argv[1:5]
    notifier = notifier_for(load_project(Path(config)))
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.01)
    own = [
        notifier.send(Notification(key=name, event="firing", severity="info",
                                   title=f"{name} {number}"))
        for number in range(3)
    ]
    print(json.dumps({"flushed": notifier.flush(), "own": own}))
    """
)


def test_two_processes_flushing_one_queue_deliver_each_message_once(
    tmp_path: Path, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """Two processes (say the monitor and a cron backup) sending and flushing the same
    backlog at the same moment: no message is sent twice, none is lost, order holds.
    """
    project = make_project()
    sender = notifier_for(project)
    assert sender is not None
    for number in range(1, 16):
        sender.queue.put(numbered(number))
    slack.default = Ok(delay_seconds=0.03)  # keeps the two processes overlapping
    go = tmp_path / "go"
    processes = []
    for name in ("monitor", "backup"):
        ready = tmp_path / f"{name}.ready"
        argv = [sys.executable, "-c", _FLUSHER, str(project.config_path), str(ready), str(go)]
        processes.append(subprocess.Popen([*argv, name], stdout=subprocess.PIPE, text=True))
    wait_for(
        lambda: all((tmp_path / f"{n}.ready").exists() for n in ("monitor", "backup")),
        timeout_seconds=60,
        message="both processes ready",
    )
    go.touch()
    outputs = [json.loads(process.communicate(timeout=120)[0]) for process in processes]

    received = titles(slack)
    assert len(received) == len(set(received)) == 15 + 6
    assert received[:15] == [f"alert {number}" for number in range(1, 16)]
    for name in ("monitor", "backup"):
        own = [title for title in received if title.startswith(name)]
        assert own == [f"{name} 0", f"{name} 1", f"{name} 2"]
    assert [output["own"] for output in outputs] == [[True, True, True]] * 2
    assert sender.queued_count() == 0
    assert len(slack.requests) == len(received)


def test_unreadable_queue_file_is_moved_aside_and_does_not_block(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A damaged file is set aside; the messages after it are still delivered."""
    sender = notifier(make_project)
    sender.queue.put(numbered(1))
    sender.queue.put(numbered(2))
    (sender.queue.folder / "queue" / "000000000001.json").write_text("{not json")

    assert sender.flush() == 1

    assert titles(slack) == ["alert 2"]
    assert (sender.queue.folder / "dead" / "000000000001.unreadable").exists()


def test_dead_letters_can_be_retried_in_their_old_place(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """After the cause is fixed, dead letters go back into the queue ahead of newer ones."""
    from tests.slack_server import Fail

    sender = notifier(make_project)
    slack.script(Fail("invalid_token"))
    assert sender.send(numbered(1)) is False
    slack.down()
    assert sender.send(numbered(2)) is False
    slack.up()

    result = sender.flush_queue(include_dead=True)

    assert len(result.delivered) == 2
    assert titles(slack) == ["alert 1", "alert 2"]
    assert sender.queue.dead() == []
    assert time.monotonic() > 0


def test_flush_while_another_process_delivers_exits_75(
    slack: SlackServer, make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the delivery lock stays held past the time budget, ``notify flush`` says the
    queue is busy (75) and ``send`` leaves the message queued instead of waiting forever.
    """
    from tests.support import run_cli

    monkeypatch.setenv("OPSCTL_NOTIFY__MAX_TOTAL_SECONDS", "0.3")
    project = make_project()
    assert project.config.notify.max_total_seconds == 0.3
    sender = notifier_for(project)
    assert sender is not None

    with sender.queue.delivering(deadline=time.monotonic() + 5) as held:
        assert held
        result = run_cli("-c", str(project.config_path), "notify", "flush")
        sent = sender.deliver(numbered(1))

    assert result.exit_code == 75
    assert "Another process is delivering" in result.stderr
    assert sent.status == "queued"
    assert slack.requests == []
    assert sender.flush() == 1
