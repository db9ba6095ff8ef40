"""Slack transports: one request each, through slack-sdk, classified as delivered, worth
retrying, or permanently refused.

slack-sdk builds the requests and reads the answers; its HTTP exchange alone is overridden
(in :mod:`opsctl.notify._http`) so that an answer is read only up to a bounded size and a
request, trickling answers included, ends when its time is up, which the SDK's own urllib
call cannot promise. The SDK's retries are off: the notifier owns retry, backoff and the
time budget, so that every failure is counted and bounded in one place. Reasons quote at
most a short, scrubbed piece of what the server said.

slack-sdk is imported on the first request only: importing it takes longer than starting
most commands.
"""

from __future__ import annotations

import http.client
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from opsctl import secrets

logger = logging.getLogger(__name__)

# The SDK logs failed requests at ERROR level, and requests at DEBUG with their URL; the
# notifier reports failures once, in its own words, so the SDK's logger is kept quiet.
_sdk_logger = logging.getLogger("opsctl.notify.sdk")
_sdk_logger.setLevel(logging.CRITICAL)

# Web API errors that say "try again later" rather than "this will never work".
RETRYABLE_API_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "service_unavailable",
        "fatal_error",
        "internal_error",
        "request_timeout",
    }
)
_LONGEST_TEXT_SHOWN = 200
# Text is cut to this length before it is scrubbed, so that scrubbing costs little.
_LONGEST_TEXT_SCRUBBED = 2000


@dataclass(frozen=True)
class Attempt:
    """The outcome of one request: delivered, or why not and whether to try again."""

    delivered: bool
    retryable: bool = False
    reason: str = ""
    retry_after_seconds: float | None = None


DELIVERED = Attempt(delivered=True)
_NO_OK_FIELD = Attempt(delivered=False, retryable=True, reason="malformed answer: no ok field")
_NOT_AN_OBJECT = Attempt(
    delivered=False, retryable=True, reason="malformed answer: not a JSON object"
)
_BAD_URL = Attempt(delivered=False, reason="request refused: the URL cannot be used")


class Transport(Protocol):
    """Posts one rendered message to Slack, once."""

    @property
    def description(self) -> str:
        """Where messages go, without secrets (for logs and ``notify queue``)."""
        ...

    def post(self, message: Mapping[str, Any], *, timeout_seconds: float) -> Attempt:
        """Send ``message`` once; never raise for a delivery problem."""
        ...


class WebhookTransport:
    """An incoming webhook: the URL is the credential, the channel is fixed by Slack."""

    def __init__(self, url: str) -> None:
        self._url = url
        secrets.register(url)
        # The last part of the path is the secret half of the URL.
        secrets.register(url.rstrip("/").rsplit("/", 1)[-1])

    @property
    def description(self) -> str:
        return "Slack incoming webhook"

    def post(self, message: Mapping[str, Any], *, timeout_seconds: float) -> Attempt:
        from slack_sdk.errors import SlackRequestError

        from opsctl.notify._http import BoundedWebhookClient

        client = BoundedWebhookClient(
            self._url, timeout_seconds=timeout_seconds, logger=_sdk_logger
        )
        try:
            response = client.send_dict(dict(message))
        except (SlackRequestError, OSError, http.client.HTTPException, ValueError) as error:
            return _not_sent(error)
        return classify_webhook(response.status_code, response.body, response.headers)


class BotTransport:
    """A bot token posting with ``chat.postMessage`` to one channel."""

    def __init__(self, token: str, channel: str, *, api_url: str) -> None:
        self._token = token
        self._channel = channel
        self._api_url = api_url
        secrets.register(token)

    @property
    def description(self) -> str:
        return f"Slack chat.postMessage to {self._channel}"

    def post(self, message: Mapping[str, Any], *, timeout_seconds: float) -> Attempt:
        from slack_sdk.errors import SlackApiError, SlackRequestError

        from opsctl.notify._http import BoundedWebClient

        client = BoundedWebClient(
            self._token, base_url=self._api_url, timeout_seconds=timeout_seconds, logger=_sdk_logger
        )
        try:
            response = client.chat_postMessage(
                channel=self._channel, text=message["text"], blocks=message["blocks"]
            )
        except SlackApiError as error:
            return _refused_by_api(
                error.response.status_code, error.response.data, error.response.headers
            )
        except (SlackRequestError, OSError, http.client.HTTPException, ValueError) as error:
            return _not_sent(error)
        except (AttributeError, TypeError):
            # A JSON answer that is not an object trips the SDK's own checks.
            return _NOT_AN_OBJECT
        if response.get("ok") is True:
            return DELIVERED
        return _NO_OK_FIELD


def _refused_by_api(status: int, data: object, headers: Mapping[str, Any]) -> Attempt:
    """What a Web API answer that slack-sdk did not accept means (its data is the parsed
    JSON, or the SDK's own ``error`` when the body was not JSON).
    """
    if status == HTTPStatus.OK and isinstance(data, dict) and data and "ok" not in data:
        return _NO_OK_FIELD
    return classify_api(status, data if isinstance(data, dict) else {}, headers)


def _not_sent(error: Exception) -> Attempt:
    """The attempt when no answer came: Slack out of reach (worth retrying), or a request
    that cannot be made (permanent).
    """
    # urllib's and the SDK's words for a bad URL quote it, and a webhook URL is a secret.
    if isinstance(error, http.client.InvalidURL):
        return _BAD_URL
    if isinstance(error, (OSError, http.client.HTTPException)):
        return _unreachable(error)
    if isinstance(error, ValueError):
        return _BAD_URL
    return Attempt(delivered=False, reason=f"request refused: {_said(error)}")


def classify_webhook(status: int, body: str, headers: Mapping[str, Any]) -> Attempt:
    """Read an incoming webhook's answer: ``200 ok`` is delivered; 429, 408, 5xx and a
    200 with any other body are worth retrying; other statuses (404 ``no_service``, 403
    ``invalid_token``, 400 ``invalid_payload``, 410 ``channel_is_archived``) are permanent.
    """
    text = body.strip()
    if status == HTTPStatus.OK and text == "ok":
        return DELIVERED
    said = f"HTTP {status} {_short(text) or '(empty body)'}"
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return Attempt(False, True, f"rate limited ({said})", retry_after(headers))
    if status == HTTPStatus.OK:
        return Attempt(False, True, f"malformed answer: {said}")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
        return Attempt(False, True, said)
    return Attempt(False, False, said)


def classify_api(status: int, data: Mapping[str, Any], headers: Mapping[str, Any]) -> Attempt:
    """Read a Web API answer that was not ``ok``: 429, 5xx, transient errors and bodies that
    are not JSON are worth retrying; errors like ``invalid_auth`` or ``channel_not_found``
    are permanent.
    """
    error = str(data.get("error") or "no error given")
    said = f"HTTP {status} {_short(error)}"
    if status == HTTPStatus.TOO_MANY_REQUESTS or error in {"ratelimited", "rate_limited"}:
        return Attempt(False, True, f"rate limited ({said})", retry_after(headers))
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
        return Attempt(False, True, said)
    if error in RETRYABLE_API_ERRORS:
        return Attempt(False, True, said)
    if "non-JSON" in error or not data:
        return Attempt(False, True, f"malformed answer: {said}")
    return Attempt(False, False, said)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """The ``Retry-After`` header in seconds, looked up without regard to case."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) and value else value
            try:
                seconds = float(str(text).strip()[:_LONGEST_TEXT_SHOWN])
            except ValueError:
                return None
            return max(seconds, 0.0) if math.isfinite(seconds) else None
    return None


def _unreachable(error: BaseException) -> Attempt:
    return Attempt(delivered=False, retryable=True, reason=f"unreachable: {_said(error)}")


def _said(error: BaseException) -> str:
    from urllib.error import URLError

    if isinstance(error, URLError) and not isinstance(error.reason, str):
        error = error.reason  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return _short(str(error) or type(error).__name__)


def _short(text: str) -> str:
    """The start of ``text`` on one line, scrubbed of known secrets, with an ellipsis when cut.

    The text may come from the network, so it is cut before anything costlier than a split;
    a word the cut falls into is dropped, so that no secret is scrubbed in part only.
    """
    collapsed = " ".join(text[: 2 * _LONGEST_TEXT_SCRUBBED].split())
    cut = len(collapsed) > _LONGEST_TEXT_SCRUBBED or len(text) > 2 * _LONGEST_TEXT_SCRUBBED
    window = collapsed[:_LONGEST_TEXT_SCRUBBED]
    if cut and " " in window:
        window = window.rsplit(" ", 1)[0]
    shown = secrets.scrub(window)
    if len(shown) > _LONGEST_TEXT_SHOWN:
        return shown[:_LONGEST_TEXT_SHOWN] + "…"
    return shown + "…" if cut else shown
