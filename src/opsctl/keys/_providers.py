"""Built-in key providers: the shape of their keys, where to get one, and the cheapest
read-only request that tells whether a key works, with how to read the answer.

Every provider's base URL can be overridden per key (``base_url``), for proxies and tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from opsctl.keys._formats import KEY_FORMATS

Status = Literal[
    "valid",
    "invalid",
    "forbidden",
    "rate-limited",
    "unreachable",
    "bad-format",
    "missing",
    "skipped",
]


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as a provider's judge sees it."""

    status_code: int
    headers: Mapping[str, str]
    text: str


@dataclass(frozen=True)
class Verdict:
    """What verification concluded about one key."""

    status: Status
    detail: str


@dataclass(frozen=True)
class Request:
    """The request that verifies a key."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | None = None
    json_body: object = None


@dataclass(frozen=True)
class Provider:
    """One service whose keys opsctl knows how to check."""

    name: str
    title: str
    base_url: str
    where: str
    build: Callable[[str, str, str | None], Request]
    judge: Callable[[Answer], Verdict]
    format: str | None = None
    secret_format: str | None = None
    default_secret_env: str | None = None


def looks_like_json(answer: Answer) -> bool:
    """True when the answer declares or parses as JSON (an HTML page from a proxy does not)."""
    if "json" in answer.headers.get("content-type", "").lower():
        return True
    try:
        json.loads(answer.text)
    except ValueError:
        return False
    return True


def judge_by_status(
    answer: Answer,
    *,
    valid: tuple[int, ...] = (200,),
    invalid: tuple[int, ...] = (401,),
    forbidden: tuple[int, ...] = (403,),
    rate_limited: tuple[int, ...] = (429,),
    expect_json: bool = True,
) -> Verdict:
    """Classify an answer by its status code; a success that is not the API's is not one."""
    code = answer.status_code
    if code in rate_limited:
        retry = answer.headers.get("retry-after")
        return Verdict(
            "rate-limited", f"HTTP {code}" + (f", retry after {retry} s" if retry else "")
        )
    if code in invalid:
        return Verdict("invalid", f"HTTP {code}: the key was rejected")
    if code in forbidden:
        return Verdict("forbidden", f"HTTP {code}: the key works but lacks a permission or plan")
    if code in valid:
        if expect_json and not looks_like_json(answer):
            return Verdict(
                "unreachable", f"HTTP {code} with a page that is not the API's answer (a proxy?)"
            )
        return Verdict("valid", f"HTTP {code}")
    if code >= 500:  # noqa: PLR2004
        return Verdict("unreachable", f"HTTP {code}: the service is failing")
    return Verdict("unreachable", f"unexpected HTTP {code}")


def _bearer(path: str) -> Callable[[str, str, str | None], Request]:
    def build(base: str, key: str, secret: str | None) -> Request:
        return Request("GET", base.rstrip("/") + path, headers={"Authorization": f"Bearer {key}"})

    return build


def _judge_slack_bot(answer: Answer) -> Verdict:
    if answer.status_code != 200:  # noqa: PLR2004
        return judge_by_status(answer)
    try:
        body = json.loads(answer.text)
    except ValueError:
        return Verdict("unreachable", "HTTP 200 with a page that is not Slack's answer (a proxy?)")
    if body.get("ok") is True:
        return Verdict("valid", f"team {body.get('team', '?')}, user {body.get('user', '?')}")
    error = str(body.get("error", "unknown"))
    if error in {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
    }:
        return Verdict("invalid", f"Slack says {error}")
    if error in {"missing_scope", "not_allowed_token_type", "no_permission"}:
        return Verdict("forbidden", f"Slack says {error}")
    if error == "ratelimited":
        return Verdict("rate-limited", "Slack says ratelimited")
    return Verdict("unreachable", f"Slack says {error}")


def _build_slack_webhook(base: str, key: str, secret: str | None) -> Request:
    from urllib.parse import urlsplit

    # An empty payload is refused without posting anything; how it is refused tells
    # whether the webhook exists.
    path = urlsplit(key).path
    return Request("POST", base.rstrip("/") + path, json_body={})


_BAD_REQUEST = 400
_WEBHOOK_PAYLOAD_ERRORS = {"no_text", "invalid_payload", "missing_text_or_fallback_or_attachments"}


def _judge_slack_webhook(answer: Answer) -> Verdict:
    text = answer.text.strip()
    if answer.status_code == _BAD_REQUEST and text in _WEBHOOK_PAYLOAD_ERRORS:
        return Verdict(
            "valid", "the webhook exists (it refused the empty test payload, as expected)"
        )
    if answer.status_code in {403, 404, 410} or text in {
        "invalid_token",
        "no_service",
        "no_team",
        "channel_not_found",
    }:
        return Verdict("invalid", f"HTTP {answer.status_code}: {text[:60]}")
    return judge_by_status(answer, valid=(), expect_json=False)


def _judge_github(answer: Answer) -> Verdict:
    if answer.status_code == 403 and answer.headers.get("x-ratelimit-remaining") == "0":  # noqa: PLR2004
        return Verdict("rate-limited", "HTTP 403 with the rate limit exhausted")
    return judge_by_status(answer)


def _build_anthropic(base: str, key: str, secret: str | None) -> Request:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return Request("GET", base.rstrip("/") + "/v1/models", headers=headers)


def _build_polygon(base: str, key: str, secret: str | None) -> Request:
    return Request(
        "GET", base.rstrip("/") + "/v3/reference/tickers", params={"limit": "1", "apiKey": key}
    )


def _build_alpaca(base: str, key: str, secret: str | None) -> Request:
    headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret or ""}
    return Request("GET", base.rstrip("/") + "/v2/account", headers=headers)


PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        Provider(
            "slack_bot",
            "Slack bot token",
            "https://slack.com",
            "https://api.slack.com/apps (OAuth & Permissions)",
            lambda base, key, _: Request(
                "POST",
                base.rstrip("/") + "/api/auth.test",
                headers={"Authorization": f"Bearer {key}"},
            ),
            _judge_slack_bot,
            KEY_FORMATS["slack_bot"],
        ),
        Provider(
            "slack_webhook",
            "Slack incoming webhook",
            "https://hooks.slack.com",
            "https://api.slack.com/apps (Incoming Webhooks)",
            _build_slack_webhook,
            _judge_slack_webhook,
            KEY_FORMATS["slack_webhook"],
        ),
        Provider(
            "github",
            "GitHub token",
            "https://api.github.com",
            "https://github.com/settings/tokens",
            _bearer("/user"),
            _judge_github,
            KEY_FORMATS["github"],
        ),
        Provider(
            "openai",
            "OpenAI API key",
            "https://api.openai.com",
            "https://platform.openai.com/api-keys",
            _bearer("/v1/models"),
            judge_by_status,
            KEY_FORMATS["openai"],
        ),
        Provider(
            "anthropic",
            "Anthropic API key",
            "https://api.anthropic.com",
            "https://console.anthropic.com/settings/keys",
            _build_anthropic,
            judge_by_status,
            KEY_FORMATS["anthropic"],
        ),
        Provider(
            "huggingface",
            "Hugging Face token",
            "https://huggingface.co",
            "https://huggingface.co/settings/tokens",
            _bearer("/api/whoami-v2"),
            judge_by_status,
            KEY_FORMATS["huggingface"],
        ),
        Provider(
            "polygon",
            "Polygon API key",
            "https://api.polygon.io",
            "https://polygon.io/dashboard/keys",
            _build_polygon,
            judge_by_status,
            KEY_FORMATS["polygon"],
        ),
        Provider(
            "alpaca",
            "Alpaca key id and secret",
            "https://paper-api.alpaca.markets",
            "https://app.alpaca.markets (API keys)",
            _build_alpaca,
            judge_by_status,
            KEY_FORMATS["alpaca_key_id"],
            KEY_FORMATS["alpaca_secret"],
            "APCA_API_SECRET_KEY",
        ),
    )
}

SPECIAL_PROVIDERS = ("redis", "custom")
"""Providers not checked over HTTP by a built-in request: Redis AUTH, and TOML-defined."""


def known_providers() -> list[str]:
    """Every provider name a ``[keys.NAME]`` table may use."""
    return [*PROVIDERS, *SPECIAL_PROVIDERS]
