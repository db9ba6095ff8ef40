"""Live verification of keys: one cheap read-only request per key, all at once."""

from __future__ import annotations

import hashlib
import json
import secrets as random_secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl._files import write_atomic
from opsctl.checks import Check, Outcome, run_checks
from opsctl.checks._result import Status
from opsctl.config import Project
from opsctl.keys._providers import PROVIDERS, Answer, Request, Verdict, judge_by_status
from opsctl.keys._state import KeyState

if TYPE_CHECKING:
    import httpx

_OUTCOME: dict[str, Status] = {"valid": "pass", "rate-limited": "warn", "skipped": "skip"}


def verdict_status(verdict: Verdict) -> Status:
    """The check status a key's verdict amounts to: valid passes, a rate limit warns."""
    return _OUTCOME.get(verdict.status, "fail")


@dataclass(frozen=True)
class KeyResult:
    """The verdict on one key, and when it was reached."""

    name: str
    provider: str
    status: str
    detail: str
    checked_at: datetime
    duration_ms: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (no secret in it)."""
        return {
            "name": self.name,
            "provider": self.provider,
            "status": self.status,
            "detail": self.detail,
            "checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
            "duration_ms": self.duration_ms,
        }


def verify_keys(
    project: Project, states: list[KeyState], *, concurrency: int = 32
) -> list[KeyResult]:
    """Verify each key concurrently, each within its own timeout; record the verdicts.

    A missing or malformed key sends no request.
    """
    from opsctl.clients import http_client

    verdicts: dict[str, Verdict] = {}
    with http_client() as client:
        checks = [_check(project, state, client, verdicts) for state in states]
        results = run_checks(checks, concurrency=concurrency)
    now = datetime.now(UTC)
    outcome = []
    for state, result in zip(states, results, strict=True):
        verdict = verdicts.get(state.name) or Verdict("unreachable", result.detail)
        outcome.append(
            KeyResult(
                state.name, state.provider, verdict.status, verdict.detail, now, result.duration_ms
            )
        )
    record_results(project, states, outcome)
    return outcome


def verify_one(project: Project, state: KeyState) -> KeyResult:
    """Verify a single key (used by the guided setup)."""
    return verify_keys(project, [state], concurrency=1)[0]


def _check(
    project: Project, state: KeyState, client: httpx.Client, verdicts: dict[str, Verdict]
) -> Check:
    def probe(timeout_seconds: float) -> Outcome:
        verdict = judge_key(project, state, client, timeout_seconds=timeout_seconds)
        verdicts[state.name] = verdict
        return Outcome(verdict_status(verdict), verdict.detail)

    return Check(
        name=state.name,
        kind="key",
        target=state.provider,
        probe=probe,
        timeout_seconds=state.section.timeout_seconds,
        section="keys",
    )


def judge_key(
    project: Project, state: KeyState, client: httpx.Client, *, timeout_seconds: float
) -> Verdict:
    """Reach a verdict on one key, sending at most one request."""
    if not state.present:
        missing = state.variable if not state.value else state.secret_variable
        return Verdict("missing", f"{missing} is not set")
    if state.format_ok is False:
        return Verdict(
            "bad-format",
            f"{state.variable} is not shaped like a key of {state.provider}; no request sent",
        )
    if state.provider == "redis":
        return _judge_redis(project, state, timeout_seconds=timeout_seconds)
    request = _request(state)
    if request is None:
        return Verdict("skipped", "no verification request is configured for this key")
    return _send(client, request, state, timeout_seconds=timeout_seconds)


def _request(state: KeyState) -> Request | None:
    if state.value is None:
        return None
    provider = PROVIDERS.get(state.provider)
    if provider is not None:
        return provider.build(
            state.section.base_url or provider.base_url, state.value, state.secret_value
        )
    spec = state.section.verify
    if spec is None:
        return None
    token = spec.template.replace("{key}", state.value).replace(
        "{secret}", state.secret_value or ""
    )
    url = spec.url if not state.section.base_url else _rebase(spec.url, state.section.base_url)
    if spec.auth == "bearer":
        return Request(spec.method, url, headers={"Authorization": f"Bearer {token}"})
    if spec.auth == "header":
        return Request(spec.method, url, headers={spec.header: token})
    if spec.auth == "query":
        return Request(spec.method, url, params={spec.query_param: token})
    if spec.auth == "basic":
        return Request(spec.method, url, auth=(state.value, state.secret_value or ""))
    return Request(spec.method, url)


def _rebase(url: str, base_url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts, base = urlsplit(url), urlsplit(base_url)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


def _send(
    client: httpx.Client, request: Request, state: KeyState, *, timeout_seconds: float
) -> Verdict:
    import httpx

    try:
        with client.stream(
            request.method,
            request.url,
            headers=request.headers,
            params=request.params or None,
            auth=request.auth,
            json=request.json_body,
            timeout=timeout_seconds,
        ) as response:
            body = _read_capped(response)
    except httpx.TimeoutException:
        return Verdict("unreachable", f"no answer within {timeout_seconds:g} s")
    except httpx.HTTPError as error:
        return Verdict("unreachable", f"request failed: {type(error).__name__}")
    answer = Answer(
        response.status_code,
        {k.lower(): v for k, v in response.headers.items()},
        body.decode(response.encoding or "utf-8", errors="replace"),
    )
    provider = PROVIDERS.get(state.provider)
    if provider is not None:
        return provider.judge(answer)
    spec = state.section.verify
    if spec is None:
        return Verdict("skipped", "no verification request is configured for this key")
    return judge_by_status(
        answer,
        valid=tuple(spec.valid),
        invalid=tuple(spec.invalid),
        forbidden=tuple(spec.forbidden),
        rate_limited=tuple(spec.rate_limited),
        expect_json=spec.expect_json,
    )


_LARGEST_BODY_BYTES = 1 << 20


def _read_capped(response: httpx.Response) -> bytes:
    """The first MiB of the body: enough to judge any API's answer, and no more memory."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _LARGEST_BODY_BYTES:
            break
    return b"".join(chunks)[:_LARGEST_BODY_BYTES]


def _judge_redis(project: Project, state: KeyState, *, timeout_seconds: float) -> Verdict:
    import redis

    from opsctl.clients import redis_client

    url = state.section.base_url or _redis_url(project, state)
    if url is None:
        return Verdict("skipped", "no Redis to check against: set service or base_url")
    client = redis_client(url, password=state.value, timeout_seconds=timeout_seconds)
    try:
        client.ping()
    except redis.AuthenticationError:
        return Verdict("invalid", "Redis refused the password")
    except redis.ResponseError as error:
        return Verdict("invalid", f"Redis refused: {str(error)[:60]}")
    except (redis.ConnectionError, redis.TimeoutError):
        return Verdict("unreachable", f"no Redis answering at {url}")
    finally:
        client.close()
    return Verdict("valid", "AUTH accepted, PING answered")


def _redis_url(project: Project, state: KeyState) -> str | None:
    name = state.section.service or ("redis" if "redis" in project.services else None)
    port = project.services[name].port if name and name in project.services else None
    return f"redis://127.0.0.1:{port}" if port else None


def _records_file(project: Project) -> Path:
    return project.state_dir / "keys" / "verifications.json"


def fingerprint(project: Project, value: str) -> str:
    """A salted hash that tells whether a key changed since it was verified; the salt is
    random per project, so the record cannot be used to guess a short key.
    """
    salt_file = project.state_dir / "keys" / "salt"
    if not salt_file.exists():
        project.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        salt_file.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(salt_file, random_secrets.token_hex(16))
    return hashlib.sha256((salt_file.read_text().strip() + value).encode()).hexdigest()[:16]


def record_results(project: Project, states: list[KeyState], results: list[KeyResult]) -> None:
    """Remember the latest verdict of each key, with the fingerprint of the value checked."""
    records = load_records(project)
    for state, result in zip(states, results, strict=True):
        if state.value:
            records[state.name] = {
                **result.to_dict(),
                "fingerprint": fingerprint(project, state.value),
            }
    path = _records_file(project)
    project.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_atomic(path, json.dumps(records, indent=2))


def load_records(project: Project) -> dict[str, dict[str, Any]]:
    """The recorded verdicts by key name (an unreadable file counts as none)."""
    try:
        data = json.loads(_records_file(project).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_verification(project: Project, state: KeyState) -> dict[str, Any] | None:
    """The recorded verdict for this key, if it was reached with its current value."""
    record = load_records(project).get(state.name)
    if (
        not record
        or not state.value
        or record.get("fingerprint") != fingerprint(project, state.value)
    ):
        return None
    return record
