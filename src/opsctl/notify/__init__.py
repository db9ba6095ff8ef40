"""Notifications to people: Slack through an incoming webhook or a bot token.

``notifier_for(project)`` builds the notifier ``[notify]`` and the environment describe;
:meth:`Notifier.send` delivers what is queued, then the new message, and queues on disk
what cannot be delivered yet. See ``docs/notify.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opsctl.notify._blocks import render_message
from opsctl.notify._message import EVENTS, SEVERITIES, Notification
from opsctl.notify._notifier import DeliverySettings, FlushResult, Notifier, SendResult
from opsctl.notify._queue import MessageQueue, QueuedMessage

if TYPE_CHECKING:
    from opsctl.config import Project

__all__ = [
    "EVENTS",
    "SEVERITIES",
    "DeliverySettings",
    "FlushResult",
    "MessageQueue",
    "Notification",
    "Notifier",
    "QueuedMessage",
    "SendResult",
    "missing_configuration_hint",
    "notifier_for",
    "open_queue",
    "render_message",
]


def notifier_for(project: Project) -> Notifier | None:
    """The project's Slack notifier, or ``None`` when no Slack is configured.

    The incoming webhook (its URL in the variable ``notify.slack_webhook_url_env``) is used
    when set; otherwise the bot token (``notify.slack_bot_token_env``) with
    ``notify.slack_channel``. Values come from ``project.environ`` (the ``.env`` file under
    the process environment). Raises :class:`~opsctl.errors.ConfigError` when what is set
    cannot work: a webhook URL that is not http(s), is malformed or holds user credentials,
    or a token without a channel.
    """
    from opsctl.notify._slack import BotTransport, WebhookTransport

    section = project.config.notify
    webhook = project.environ.get(section.slack_webhook_url_env, "").strip()
    token = project.environ.get(section.slack_bot_token_env, "").strip()
    if webhook:
        _check_webhook(webhook, section.slack_webhook_url_env)
        transport: WebhookTransport | BotTransport = WebhookTransport(webhook)
    elif token:
        if not section.slack_channel:
            _raise_config(
                f"{section.slack_bot_token_env} is set but notify.slack_channel is not, "
                "so there is no channel to post to.",
                hint='Add slack_channel = "#alerts" (or a channel id) under [notify].',
            )
        transport = BotTransport(token, section.slack_channel or "", api_url=section.slack_api_url)
    else:
        return None
    return Notifier(
        transport,
        open_queue(project),
        settings=DeliverySettings.from_section(section),
        source=project.name,
    )


def open_queue(project: Project) -> MessageQueue:
    """The project's queue of undelivered notifications (it may be empty or absent)."""
    return MessageQueue(project.state_dir / "notify", max_messages=project.config.notify.queue_max)


def missing_configuration_hint(project: Project) -> str:
    """What to set for notifications to work, naming the variables this project reads."""
    section = project.config.notify
    return (
        f"Set {section.slack_webhook_url_env} to a Slack incoming-webhook URL, or "
        f"{section.slack_bot_token_env} to a bot token together with notify.slack_channel, "
        f"in the environment or in {project.env_file}."
    )


def _check_webhook(url: str, variable: str) -> None:
    """Refuse, naming ``variable`` and never quoting ``url``, a webhook URL that cannot work
    or that carries what must not be sent: user credentials, spaces or control characters.
    """
    hint = "Copy the webhook URL from the Slack app's 'Incoming Webhooks' page."
    if any(character.isspace() or not character.isprintable() for character in url):
        _raise_config(f"{variable} holds spaces or control characters, so it is no URL.", hint=hint)
    try:
        parts = urlsplit(url)
        # Reading the port checks it: one that is no number, or out of range, raises.
        usable = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
    except ValueError:
        usable = False
    if not usable:
        _raise_config(
            f"{variable} does not hold an http(s) URL, so it is no Slack incoming webhook.",
            hint=hint,
        )
    if "@" in parts.netloc:
        _raise_config(
            f"{variable} holds a URL with a user name or password in it; a webhook URL "
            "carries no credentials, and these are not sent anywhere.",
            hint=hint,
        )


def _raise_config(message: str, *, hint: str) -> None:
    from opsctl.errors import ConfigError

    raise ConfigError(message, hint=hint)
