"""Rendering: Slack's size limits, how each event reads, escaping, and no secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from opsctl import secrets
from opsctl.notify import EVENTS, Notification, notifier_for, render_message
from opsctl.notify._blocks import truncate
from tests.notify.conftest import ProjectFactory
from tests.slack_server import SlackServer

CANARY = "sk-canary-7f3a9b1c5d2e8f4a6b0c"


def texts(message: dict[str, object]) -> list[str]:
    """Every text in the message's blocks, fields and context elements."""
    found: list[str] = []
    for block in message["blocks"]:  # type: ignore[attr-defined]
        if "text" in block:
            found.append(block["text"]["text"])
        found += [item["text"] for item in block.get("fields", [])]
        found += [item["text"] for item in block.get("elements", [])]
    return found


def huge() -> Notification:
    return Notification(
        key="k" * 5000,
        event="firing",
        severity="critical",
        title="T" * 1000,
        service="s" * 5000,
        value="9" * 3000,
        threshold="> 1",
        hint="h" * 10_000,
        detail="line of output & <stuff>\n" * 20_000,
        host="h" * 3000,
    )


def test_huge_fields_are_cut_to_slacks_limits_with_a_marker() -> None:
    """Every text stays within its Block Kit limit, and says that it was cut."""
    message = render_message(huge(), source="proj")

    blocks = message["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["text"].endswith("characters cut]")
    for block in blocks[1:]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    assert len(message["text"]) <= 3000
    detail = next(text for text in texts(message) if text.startswith("```"))
    assert detail.endswith("characters cut]```")
    assert "&amp; &lt;stuff&gt;" in detail


def test_huge_message_is_accepted_by_the_stand_in(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """The stand-in enforces Slack's limits; a huge alert still gets through, cut."""
    sender = notifier_for(make_project())
    assert sender is not None

    assert sender.send(huge()) is True
    assert [request.answer for request in slack.requests] == ["ok"]


def test_truncate_never_ends_inside_an_entity() -> None:
    """Cutting escaped text never leaves half of ``&amp;`` behind."""
    text = "&amp;" * 100
    for limit in range(40, 60):
        cut = truncate(text, limit)
        assert len(cut) <= limit
        kept = cut.split(" … [")[0]
        assert kept.count("&") == kept.count("&amp;")


@pytest.mark.parametrize("event", EVENTS)
def test_each_event_reads_differently(event: str) -> None:
    """Each event has its own header wording and explanation."""
    message = render_message(
        Notification(key="k", event=event, severity="warning", title="x"), source="p"
    )
    others = [
        render_message(Notification(key="k", event=e, severity="warning", title="x"), source="p")
        for e in EVENTS
        if e != event
    ]

    header = message["blocks"][0]["text"]["text"]
    meaning = message["blocks"][1]["text"]["text"]
    assert all(other["blocks"][0]["text"]["text"] != header for other in others)
    assert all(other["blocks"][1]["text"]["text"] != meaning for other in others)


def test_resolved_reads_as_recovery_and_firing_carries_the_severity_mark() -> None:
    """Firing shows the severity's marker; resolved shows a check mark and 'was'."""
    firing = Notification(key="k", event="firing", severity="critical", title="API down")
    resolved = Notification(key="k", event="resolved", severity="critical", title="API down")

    assert render_message(firing, source="p")["blocks"][0]["text"]["text"] == (
        ":red_circle: Firing: API down"
    )
    rendered = render_message(resolved, source="p")
    assert rendered["blocks"][0]["text"]["text"] == ":white_check_mark: Resolved: API down"
    assert "*Severity (was)*\nCRITICAL" in texts(rendered)


def test_time_is_utc_iso() -> None:
    """The time field is UTC ISO 8601, whatever zone the caller used."""
    from datetime import timedelta, timezone

    at = datetime(2026, 12, 4, 20, 30, tzinfo=timezone(timedelta(hours=2)))
    message = render_message(
        Notification(key="k", event="firing", severity="info", title="t", at=at), source="p"
    )

    assert "*Time (UTC)*\n2026-12-04T18:30:00Z" in texts(message)


def test_mentions_and_links_cannot_be_forged() -> None:
    """``<!channel>`` and ``<http://x|y>`` in a title are escaped, not interpreted."""
    message = render_message(
        Notification(key="k", event="firing", severity="info", title="<!channel> <http://x|y>"),
        source="p",
    )

    assert "<!channel>" not in message["text"]
    assert "&lt;!channel&gt;" in message["text"]
    assert "<http" not in json.dumps(texts(message)[1:])


def test_registered_secrets_never_reach_slack(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """A secret from .env, the webhook URL and its secret part are scrubbed from every
    request body the stand-in receives, from the queue files and from their listing.
    """
    project = make_project(env=f"OPENAI_API_KEY={CANARY}")
    sender = notifier_for(project)
    assert sender is not None
    leaky = Notification(
        key=f"key:{CANARY}",
        event="firing",
        severity="critical",
        title=f"token {CANARY} leaked",
        service=CANARY,
        value=CANARY,
        hint=f"rotate {slack.webhook_url}",
        detail=f"env: OPENAI_API_KEY={CANARY}\nhook {slack.webhook_path.rsplit('/', 1)[1]}",
    )
    secret_part = slack.webhook_path.rsplit("/", 1)[1]
    slack.down()
    assert sender.send(leaky) is False
    for path in (sender.queue.folder / "queue").iterdir():
        assert CANARY not in path.read_text()
        assert secret_part not in path.read_text()
    slack.up()

    assert sender.send(leaky) is True

    assert len(slack.messages) == 2
    for request in slack.requests:
        assert CANARY not in request.text
        assert secret_part not in request.text
    assert secrets.mask(CANARY) in slack.messages[0].payload["text"]


def test_bot_token_is_sent_only_as_the_authorization_header(
    slack: SlackServer, make_project: ProjectFactory
) -> None:
    """The token authenticates the request and appears in no message body."""
    sender = notifier_for(make_project(via="bot"))
    assert sender is not None

    assert sender.send(
        Notification(key="k", event="test", severity="info", title=f"x {slack.bot_token}")
    )

    [message] = slack.messages
    assert slack.bot_token not in message.text
    assert message.headers["authorization"] == f"Bearer {slack.bot_token}"


def test_naive_time_is_taken_as_utc() -> None:
    """A naive ``at`` is read as UTC rather than rejected."""
    naive = datetime(2026, 1, 2, 3, 4, 5)  # noqa: DTZ001 (the case under test)
    notification = Notification(key="k", event="test", severity="info", title="t", at=naive)

    assert notification.to_dict()["at"] == "2026-01-02T03:04:05+00:00"
    assert Notification.from_dict(notification.to_dict()).at == naive.replace(tzinfo=UTC)
