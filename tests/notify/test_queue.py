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

from opsctl.errors import OperationFailedError
from opsctl.notify import Notification, Notifier, notifier_for
from tests.notify.conftest import ProjectFactory
from tests.slack_server import Ok, RateLimited, SlackServer
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


def test_enqueue_writes_in_order_and_sends_nothing(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """``enqueue`` only queues, after what is there; the next flush delivers in order."""
    sender = notifier(make_project)
    sender.queue.put(numbered(1))

    sender.enqueue(numbered(2))
    sender.enqueue(numbered(3))

    assert slack.requests == []
    assert [m.notification.title for m in sender.queue.pending()] == [
        "alert 1",
        "alert 2",
        "alert 3",
    ]
    assert sender.queue.sequences() == [1, 2, 3]
    assert sender.flush() == 3
    assert titles(slack) == ["alert 1", "alert 2", "alert 3"]


def test_enqueue_scrubs_secrets_and_leaves_no_temporary_file(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """What ``enqueue`` writes is scrubbed like any queued message, and written atomically."""
    sender = notifier(make_project)
    secret = slack.webhook_path.rsplit("/", 1)[1]

    sender.enqueue(
        Notification(key="k", event="firing", severity="info", title="t", detail=slack.webhook_url)
    )

    folder = sender.queue.folder / "queue"
    assert sorted(os.listdir(folder)) == ["000000000001.json"]
    assert secret not in (folder / "000000000001.json").read_text()


def test_enqueue_into_a_broken_queue_logs_and_does_not_raise(
    slack: SlackServer, make_project: ProjectFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """When the queue cannot be written, ``enqueue`` logs an error naming the message."""
    sender = notifier(make_project)
    sender.queue.folder.mkdir(parents=True)
    (sender.queue.folder / "queue").write_text("not a folder")

    sender.enqueue(numbered(1))

    assert "Cannot queue the notification 'alert 1'" in caplog.text
    assert "is not a folder" in caplog.text
    assert slack.requests == []


@pytest.mark.parametrize("recorded", ["-5", "0", "abc", "", "99999999999999999999"])
def test_damaged_sequence_file_starts_after_the_highest_number_on_disk(
    recorded: str,
    slack: SlackServer,
    make_project: ProjectFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sequence file that is no usable number is ignored, with a warning: numbering goes on
    after every number in queue/ and dead/, set-aside files included.
    """
    sender = notifier(make_project)
    sender.queue.put(numbered(7))
    folder = sender.queue.folder
    (folder / "queue" / "000000000001.json").rename(folder / "queue" / "000000000007.json")
    (folder / "dead" / "000000000012.unreadable").write_text("{damaged")
    (folder / "sequence").write_text(recorded + "\n")

    message = sender.queue.put(numbered(8))

    assert message.sequence == 13
    assert sender.queue.sequences() == [7, 13]
    assert (folder / "sequence").read_text() == "14\n"
    assert f"Ignoring {folder / 'sequence'}" in caplog.text


def test_negative_sequence_with_an_empty_queue_starts_at_1(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A sequence file saying -5 never yields a negative (and so invisible) message number."""
    sender = notifier(make_project)
    sender.queue.folder.mkdir(parents=True)
    (sender.queue.folder / "sequence").write_text("-5\n")
    slack.down()

    result = sender.deliver(numbered(1))

    assert (result.status, result.sequence) == ("queued", 1)
    assert sender.queue.sequences() == [1]


def test_sequence_file_behind_the_queue_is_overtaken(
    slack: SlackServer, make_project: ProjectFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A sequence file below a number in use (say, restored from an old copy) is logged and
    numbering goes on after that number.
    """
    sender = notifier(make_project)
    for number in range(1, 4):
        sender.queue.put(numbered(number))
    (sender.queue.folder / "sequence").write_text("2\n")

    assert sender.queue.put(numbered(4)).sequence == 4
    assert "says 2, below numbers already used; going on from 4" in caplog.text


def test_huge_retry_after_is_stored_as_at_most_an_hour(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A Retry-After of 10**15 s holds sending for an hour at most, not forever."""
    sender = notifier(make_project)
    slack.script(RateLimited(retry_after_seconds=10**15))

    assert sender.send(numbered(1)) is False

    stored = float((sender.queue.folder / "hold-until").read_text())
    assert stored <= time.time() + 3600
    assert 3000 < sender.queue.held_for_seconds() <= 3600
    assert [request.answer for request in slack.requests] == ["rate_limited"]


@pytest.mark.parametrize(
    "content", ["inf", "nan", "-inf", "soon", "1e300", "far future", "\x00\x01", "9" * 200]
)
def test_unusable_hold_until_is_ignored_with_a_warning(
    content: str,
    slack: SlackServer,
    make_project: ProjectFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hold-until that is no time within the next hour holds nothing: it is logged and
    removed, and messages go out.
    """
    sender = notifier(make_project)
    hold = sender.queue.folder / "hold-until"
    hold.parent.mkdir(parents=True)
    if content == "far future":
        content = f"{time.time() + 10**6:.3f}"
    hold.write_text(content + "\n")

    assert sender.queue.held_for_seconds() == 0.0

    assert f"Ignoring {hold}" in caplog.text
    assert not hold.exists()
    assert sender.send(numbered(1)) is True


def test_hold_until_that_is_a_fifo_does_not_block(
    slack: SlackServer, make_project: ProjectFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A FIFO in place of hold-until is reported, never opened for a blocking read."""
    sender = notifier(make_project)
    sender.queue.folder.mkdir(parents=True)
    os.mkfifo(sender.queue.folder / "hold-until")

    assert sender.queue.held_for_seconds() == 0.0
    assert "cannot be read: not a regular file" in caplog.text


@pytest.mark.parametrize("name", ["queue", "dead"])
def test_queue_folder_that_is_a_file_is_named_in_a_clear_error(
    name: str, slack: SlackServer, make_project: ProjectFactory
) -> None:
    """``check`` names a queue/ or dead/ that is a regular file; sending and flushing report
    it without raising.
    """
    sender = notifier(make_project)
    sender.queue.folder.mkdir(parents=True)
    path = sender.queue.folder / name
    path.write_text("oops")

    with pytest.raises(OperationFailedError, match=f"{path} is not a folder"):
        sender.queue.check()
    result = sender.flush_queue()
    assert result.reason is not None
    assert f"{path} is not a folder" in result.reason
    assert sender.send(numbered(1)) is True  # sent without a queue
