"""Slack transports: one request each, through slack-sdk, classified as delivered,
worth retrying, or permanently refused.

The SDK's own retries are switched off (``retry_handlers=[]``): the notifier owns retry,
backoff and the time budget, so that every failure is counted and bounded in one place.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from opsctl import secrets

logger = logging.getLogger(__name__)

# The SDK logs failed requests at ERROR level on its own; the notifier reports them once,
# in its own words, so the SDK's logger is kept quiet.
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
_SHORTEST_BODY_SHOWN = 200


@dataclass(frozen=True)
class Attempt:
    """The outcome of one request: delivered, or why not and whether to try again."""

    delivered: bool
    retryable: bool = False
    reason: str = ""
    retry_after_seconds: float | None = None


DELIVERED = Attempt(delivered=True)


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
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(self._url, retry_handlers=[], logger=_sdk_logger)
        client.timeout = timeout_seconds  # type: ignore[assignment]  # urllib takes a float
        try:
            response = client.send_dict(dict(message))
        except SlackRequestError as error:
            return Attempt(delivered=False, reason=f"request refused: {_said(error)}")
        except (OSError, http.client.HTTPException) as error:
            return _unreachable(error)
        except ValueError as error:
            return Attempt(delivered=False, retryable=True, reason=f"malformed answer: {error}")
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
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError, SlackRequestError

        client = WebClient(
            token=self._token, base_url=self._api_url, retry_handlers=[], logger=_sdk_logger
        )
        client.timeout = timeout_seconds  # type: ignore[assignment]  # urllib takes a float
        try:
            response = client.chat_postMessage(
                channel=self._channel, text=message["text"], blocks=message["blocks"]
            )
        except SlackApiError as error:
            answer = error.response
            data = answer.data if isinstance(answer.data, dict) else {}
            return classify_api(answer.status_code, data, answer.headers)
        except SlackRequestError as error:
            return Attempt(delivered=False, reason=f"request refused: {_said(error)}")
        except (OSError, http.client.HTTPException) as error:
            return _unreachable(error)
        except (ValueError, AttributeError, TypeError) as error:
            # A JSON answer that is not an object trips the SDK's own checks.
            return Attempt(delivered=False, retryable=True, reason=f"malformed answer: {error}")
        if response.get("ok") is True:
            return DELIVERED
        return Attempt(delivered=False, retryable=True, reason="malformed answer: no ok field")


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
                return max(float(str(text).strip()), 0.0)
            except ValueError:
                return None
    return None


def _unreachable(error: BaseException) -> Attempt:
    return Attempt(delivered=False, retryable=True, reason=f"unreachable: {_said(error)}")


def _said(error: BaseException) -> str:
    from urllib.error import URLError

    if isinstance(error, URLError) and not isinstance(error.reason, str):
        error = error.reason  # "[Errno 111] Connection refused" rather than "<urlopen error ...>"
    return _short(str(error) or type(error).__name__)


def _short(text: str) -> str:
    text = " ".join(secrets.scrub(text).split())
    if len(text) <= _SHORTEST_BODY_SHOWN:
        return text
    return text[:_SHORTEST_BODY_SHOWN] + "…"
