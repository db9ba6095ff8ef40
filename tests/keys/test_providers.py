"""Each built-in provider's request and judge, against a local server through ``base_url``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.keys import PROVIDERS, KeyResult, key_states, known_providers, verify_keys
from tests.keys._fake import (
    ALPACA_ID,
    ALPACA_SECRET,
    ANTHROPIC,
    GITHUB,
    HUGGINGFACE,
    OPENAI,
    POLYGON,
    SLACK_BOT,
    SLACK_WEBHOOK,
    FakeProvider,
    Reply,
    Seen,
    fake_provider,
    make_project,
)

KEYS = {
    "slack_bot": SLACK_BOT,
    "slack_webhook": SLACK_WEBHOOK,
    "github": GITHUB,
    "openai": OPENAI,
    "anthropic": ANTHROPIC,
    "huggingface": HUGGINGFACE,
    "polygon": POLYGON,
    "alpaca": ALPACA_ID,
}
STATUS_JUDGED = ["github", "openai", "anthropic", "huggingface", "polygon", "alpaca"]
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1>proxy says hello</body></html>"
SLOW_TIMEOUT = 0.3


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with fake_provider() as fake:
        yield fake


def check(
    tmp_path: Path,
    provider: str,
    base_url: str,
    *,
    timeout_seconds: float = 5.0,
    value: str | None = None,
) -> KeyResult:
    """Declare one key of ``provider`` aimed at ``base_url``, with a well-formed value, and
    verify it.
    """
    toml = f"""
    [keys.subject]
    provider = "{provider}"
    env = "T_SUBJECT_KEY"
    secret_env = "T_SUBJECT_SECRET"
    base_url = "{base_url}"
    timeout_seconds = {timeout_seconds}
    """
    env = f"T_SUBJECT_KEY='{value or KEYS[provider]}'\nT_SUBJECT_SECRET='{ALPACA_SECRET}'\n"
    project = make_project(tmp_path / "project", toml, env=env)
    [result] = verify_keys(project, key_states(project))
    return result


def only_request(server: FakeProvider) -> Seen:
    requests = server.seen()
    assert len(requests) == 1, requests
    return requests[0]


def test_the_documented_providers_are_built_in() -> None:
    assert set(PROVIDERS) == set(KEYS)
    assert set(known_providers()) == {*KEYS, "redis", "custom"}
    for provider in PROVIDERS.values():
        assert provider.base_url.startswith("https://")
        assert provider.where


# --- what each provider sends ------------------------------------------------------------


def test_slack_bot_request(tmp_path: Path, server: FakeProvider) -> None:
    server.answer(Reply(body=json.dumps({"ok": True, "team": "Acme", "user": "opsbot"})))
    result = check(tmp_path, "slack_bot", server.url)
    assert (result.status, result.detail) == ("valid", "team Acme, user opsbot")
    seen = only_request(server)
    assert (seen.method, seen.path) == ("POST", "/api/auth.test")
    assert seen.headers["authorization"] == f"Bearer {SLACK_BOT}"


def test_slack_webhook_request_posts_an_empty_payload_to_the_webhook_path(
    tmp_path: Path, server: FakeProvider
) -> None:
    server.answer(Reply(400, "no_text", "text/html"))
    result = check(tmp_path, "slack_webhook", server.url)
    assert result.status == "valid"
    seen = only_request(server)
    assert seen.method == "POST"
    assert seen.path == "/services/T00TEST00/B00TEST00/TestWebhookSecret0123456789"
    assert json.loads(seen.body) == {}
    assert "authorization" not in seen.headers


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("github", "/user"),
        ("openai", "/v1/models"),
        ("huggingface", "/api/whoami-v2"),
    ],
)
def test_bearer_requests(tmp_path: Path, server: FakeProvider, provider: str, path: str) -> None:
    result = check(tmp_path, provider, server.url)
    assert result.status == "valid"
    seen = only_request(server)
    assert (seen.method, seen.path) == ("GET", path)
    assert seen.headers["authorization"] == f"Bearer {KEYS[provider]}"
    assert seen.query == {}


def test_anthropic_sends_its_key_and_api_version_headers(
    tmp_path: Path, server: FakeProvider
) -> None:
    assert check(tmp_path, "anthropic", server.url).status == "valid"
    seen = only_request(server)
    assert (seen.method, seen.path) == ("GET", "/v1/models")
    assert seen.headers["x-api-key"] == ANTHROPIC
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers


def test_polygon_sends_its_key_as_a_query_parameter(tmp_path: Path, server: FakeProvider) -> None:
    assert check(tmp_path, "polygon", server.url).status == "valid"
    seen = only_request(server)
    assert (seen.method, seen.path) == ("GET", "/v3/reference/tickers")
    assert seen.query["apiKey"] == [POLYGON]
    assert seen.query["limit"] == ["1"]
    assert "authorization" not in seen.headers


def test_alpaca_sends_key_id_and_secret(tmp_path: Path, server: FakeProvider) -> None:
    assert check(tmp_path, "alpaca", server.url).status == "valid"
    seen = only_request(server)
    assert (seen.method, seen.path) == ("GET", "/v2/account")
    assert seen.headers["apca-api-key-id"] == ALPACA_ID
    assert seen.headers["apca-api-secret-key"] == ALPACA_SECRET


def test_alpaca_secret_defaults_to_its_usual_variable(
    tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APCA_API_SECRET_KEY", ALPACA_SECRET[::-1])
    toml = f"""
    [keys.alpaca]
    provider = "alpaca"
    env = "T_ALPACA_ID"
    base_url = "{server.url}"
    """
    project = make_project(tmp_path / "project", toml, env=f"T_ALPACA_ID={ALPACA_ID}\n")
    [state] = key_states(project)
    assert state.secret_variable == "APCA_API_SECRET_KEY"
    assert verify_keys(project, [state])[0].status == "valid"
    assert only_request(server).headers["apca-api-secret-key"] == ALPACA_SECRET[::-1]


def test_alpaca_without_its_secret_is_missing_and_sends_nothing(
    tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    toml = f"""
    [keys.alpaca]
    provider = "alpaca"
    env = "T_ALPACA_ID"
    base_url = "{server.url}"
    """
    project = make_project(tmp_path / "project", toml, env=f"T_ALPACA_ID={ALPACA_ID}\n")
    [result] = verify_keys(project, key_states(project))
    assert result.status == "missing"
    assert "APCA_API_SECRET_KEY" in result.detail
    assert server.seen() == []


def test_base_url_may_carry_a_path_prefix(tmp_path: Path, server: FakeProvider) -> None:
    assert check(tmp_path, "openai", server.url + "/relay/").status == "valid"
    assert only_request(server).path == "/relay/v1/models"


# --- how each provider's answers are judged ----------------------------------------------


@pytest.mark.parametrize("provider", STATUS_JUDGED)
@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(200, json.dumps({"data": []})), "valid"),
        (Reply(401, json.dumps({"error": "bad key"})), "invalid"),
        (Reply(403, json.dumps({"error": "no scope"})), "forbidden"),
        (Reply(500, json.dumps({"error": "down"})), "unreachable"),
        (Reply(503, "Service Unavailable", "text/plain"), "unreachable"),
        (Reply(200, HTML_PAGE, "text/html"), "unreachable"),
        (Reply(200, "OK", "text/plain"), "unreachable"),
    ],
    ids=["200-json", "401", "403", "500", "503", "200-html", "200-text"],
)
def test_status_judged_providers(
    tmp_path: Path, server: FakeProvider, provider: str, reply: Reply, status: str
) -> None:
    server.answer(reply)
    result = check(tmp_path, provider, server.url)
    assert result.status == status, result.detail
    assert str(reply.status) in result.detail
    assert len(server.seen()) == 1


@pytest.mark.parametrize("provider", [*STATUS_JUDGED, "slack_bot", "slack_webhook"])
def test_rate_limited_with_retry_after(tmp_path: Path, server: FakeProvider, provider: str) -> None:
    server.answer(Reply(429, json.dumps({"error": "slow down"}), headers={"Retry-After": "17"}))
    result = check(tmp_path, provider, server.url)
    assert result.status == "rate-limited"
    assert "retry after 17" in result.detail


@pytest.mark.parametrize("provider", [*STATUS_JUDGED, "slack_bot", "slack_webhook"])
def test_a_slow_answer_is_unreachable_at_its_timeout(
    tmp_path: Path, server: FakeProvider, provider: str
) -> None:
    server.answer(Reply(200, json.dumps({"ok": True}), delay_seconds=5))
    begin = time.monotonic()
    result = check(tmp_path, provider, server.url, timeout_seconds=SLOW_TIMEOUT)
    elapsed = time.monotonic() - begin
    assert result.status == "unreachable"
    assert f"{SLOW_TIMEOUT:g} s" in result.detail
    assert SLOW_TIMEOUT * 0.8 <= elapsed < SLOW_TIMEOUT + 1.5
    assert result.duration_ms < (SLOW_TIMEOUT + 1) * 1000


@pytest.mark.parametrize("provider", [*STATUS_JUDGED, "slack_bot", "slack_webhook"])
def test_nothing_listening_is_unreachable(tmp_path: Path, provider: str) -> None:
    server = FakeProvider()  # bound but never serving, then closed: nothing answers there
    url = server.url
    server.close_unstarted()
    result = check(tmp_path, provider, url, timeout_seconds=1)
    assert result.status == "unreachable"


def test_github_403_with_the_rate_limit_exhausted_is_rate_limited(
    tmp_path: Path, server: FakeProvider
) -> None:
    server.answer(
        Reply(
            403,
            json.dumps({"message": "API rate limit exceeded"}),
            headers={"x-ratelimit-remaining": "0"},
        )
    )
    result = check(tmp_path, "github", server.url)
    assert result.status == "rate-limited"


def test_github_403_with_rate_limit_left_is_forbidden(tmp_path: Path, server: FakeProvider) -> None:
    server.answer(
        Reply(403, json.dumps({"message": "nope"}), headers={"x-ratelimit-remaining": "4999"})
    )
    assert check(tmp_path, "github", server.url).status == "forbidden"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(body=json.dumps({"ok": True, "team": "T", "user": "U"})), "valid"),
        (Reply(body=json.dumps({"ok": False, "error": "invalid_auth"})), "invalid"),
        (Reply(body=json.dumps({"ok": False, "error": "token_revoked"})), "invalid"),
        (Reply(body=json.dumps({"ok": False, "error": "missing_scope"})), "forbidden"),
        (Reply(body=json.dumps({"ok": False, "error": "ratelimited"})), "rate-limited"),
        (Reply(body=json.dumps({"ok": False, "error": "fatal_error"})), "unreachable"),
        (Reply(401, json.dumps({"ok": False})), "invalid"),
        (Reply(403, json.dumps({"ok": False})), "forbidden"),
        (Reply(500, "oops", "text/plain"), "unreachable"),
        (Reply(200, HTML_PAGE, "text/html"), "unreachable"),
    ],
    ids=[
        "ok",
        "invalid_auth",
        "token_revoked",
        "missing_scope",
        "ratelimited",
        "other-error",
        "401",
        "403",
        "500",
        "200-html",
    ],
)
def test_slack_bot_answers(tmp_path: Path, server: FakeProvider, reply: Reply, status: str) -> None:
    server.answer(reply)
    result = check(tmp_path, "slack_bot", server.url)
    assert result.status == status, result.detail


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(400, "no_text", "text/html"), "valid"),
        (Reply(400, "invalid_payload", "text/plain"), "valid"),
        (Reply(404, "no_service", "text/html"), "invalid"),
        (Reply(403, "invalid_token", "text/html"), "invalid"),
        (Reply(410, "channel_is_archived", "text/html"), "invalid"),
        (Reply(500, "internal error", "text/plain"), "unreachable"),
        (Reply(200, HTML_PAGE, "text/html"), "unreachable"),
        (Reply(200, "ok", "text/plain"), "unreachable"),
    ],
    ids=["no_text", "invalid_payload", "404", "403", "410", "500", "200-html", "200-ok"],
)
def test_slack_webhook_answers(
    tmp_path: Path, server: FakeProvider, reply: Reply, status: str
) -> None:
    server.answer(reply)
    result = check(tmp_path, "slack_webhook", server.url)
    assert result.status == status, result.detail
