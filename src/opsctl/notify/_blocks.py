"""Block Kit rendering: one notification becomes ``{"text": ..., "blocks": [...]}``.

Every text is scrubbed of known secrets, escaped for Slack's mrkdwn (so a title cannot
mention ``@channel`` or forge a link) and cut to Slack's limits with a visible marker.
"""

from __future__ import annotations

from typing import Any

from opsctl import secrets
from opsctl.notify._message import Notification

# Slack's limits (https://api.slack.com/reference/block-kit): a message holds at most
# 50 blocks, a header 150 characters, a section's text 3000, a field 2000, 10 fields.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
BLOCKS_LIMIT = 50
TEXT_LIMIT = 3000

_SEVERITY_MARKS = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
# event: (label, mark or None for the severity's, one sentence saying what it means)
_EVENTS: dict[str, tuple[str, str | None, str]] = {
    "firing": ("Firing", None, "The alert started firing."),
    "resolved": ("Resolved", ":white_check_mark:", "Back to normal; nothing to do."),
    "repeat": ("Still firing", None, "A reminder: the alert has not resolved yet."),
    "flapping": (
        "Flapping",
        ":twisted_rightwards_arrows:",
        "It keeps changing state; each change is no longer announced until it settles.",
    ),
    "test": ("Test", ":test_tube:", "A test message: notifications reach this channel."),
    "backup_failed": ("Backup failed", ":x:", "The backup did not complete."),
    "backup_succeeded": ("Backup succeeded", ":floppy_disk:", "The backup completed."),
}


def render_message(notification: Notification, *, source: str) -> dict[str, Any]:
    """Return the Slack message for ``notification``: Block Kit blocks and a plain ``text``
    fallback (shown in push notifications and by clients without blocks). ``source`` names
    the project in the message's footer.
    """
    label, mark, meaning = _describe(notification)
    title = _clean(notification.title).replace("\n", " ")
    header = truncate(f"{mark} {label}: {title}", HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _section(_escape(meaning)),
        {"type": "section", "fields": _fields(notification)},
    ]
    if notification.hint:
        blocks.append(_section(f"*What to do:* {_escape(_clean(notification.hint))}"))
    if notification.detail:
        blocks.append(_section(_code(_clean(notification.detail))))
    footer = f"opsctl · {_escape(_clean(source))} · `{_escape(_clean(notification.key))}`"
    blocks.append({"type": "context", "elements": [_mrkdwn(truncate(footer, FIELD_LIMIT))]})
    return {"text": _fallback(notification, label), "blocks": blocks[:BLOCKS_LIMIT]}


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with a marker saying how much
    was left out; never ending inside an ``&amp;``-style entity.
    """
    if len(text) <= limit:
        return text
    # Room for the marker with a count of up to seven digits.
    kept = text[: max(limit - len(" … [9999999 characters cut]"), 0)]
    ampersand = kept.rfind("&", max(len(kept) - 5, 0))
    if ampersand != -1 and ";" not in kept[ampersand:]:
        kept = kept[:ampersand]
    return f"{kept} … [{len(text) - len(kept)} characters cut]"


def _describe(notification: Notification) -> tuple[str, str, str]:
    severity_mark = _SEVERITY_MARKS.get(notification.severity, ":white_circle:")
    label, mark, meaning = _EVENTS.get(
        notification.event, (notification.event.replace("_", " ").capitalize(), None, "")
    )
    return _clean(label), mark or severity_mark, meaning or f"Event: {notification.event}."


def _fields(notification: Notification) -> list[dict[str, str]]:
    was = " (was)" if notification.event == "resolved" else ""
    pairs: list[tuple[str, str | None]] = [
        (f"Severity{was}", notification.severity.upper()),
        ("Service", notification.service),
        ("Value", _value(notification)),
        ("Host", notification.host),
        ("Time (UTC)", notification.to_dict()["at"].replace("+00:00", "Z")),
    ]
    return [
        _mrkdwn(truncate(f"*{name}*\n{_escape(_clean(text))}", FIELD_LIMIT))
        for name, text in pairs
        if text
    ]


def _value(notification: Notification) -> str | None:
    if notification.value and notification.threshold:
        return f"{notification.value} (threshold {notification.threshold})"
    if notification.threshold:
        return f"threshold {notification.threshold}"
    return notification.value


def _fallback(notification: Notification, label: str) -> str:
    parts = [f"[{notification.severity.upper()}] {label}: {_clean(notification.title)}"]
    if notification.service:
        parts.append(f"service {notification.service}")
    value = _value(notification)
    if value:
        parts.append(value)
    parts.append(f"on {notification.host}")
    return truncate(_escape(_clean(" · ".join(parts))), TEXT_LIMIT)


def _code(detail: str) -> str:
    # A ``` inside the detail would end the code block early.
    body = _escape(detail.replace("```", "`\u200b``"))
    fence = "```"
    return fence + truncate(body, SECTION_LIMIT - 2 * len(fence)) + fence


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate(text, SECTION_LIMIT))}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives a meaning (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean(text: str) -> str:
    return secrets.scrub(text)
