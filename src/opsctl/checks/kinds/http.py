"""``http``: an HTTP endpoint answers with an expected status and body."""

from __future__ import annotations

from opsctl.checks._registry import BuildContext, check_name
from opsctl.checks._result import Check, Outcome
from opsctl.config import HttpCheck

_BODY_EXCERPT_CHARS = 120


def build(spec: HttpCheck, context: BuildContext) -> Check:
    """Build a check that requests ``spec.url`` and compares status and body."""

    def probe(timeout_seconds: float) -> Outcome:
        import httpx

        from opsctl.clients import http_client

        try:
            with http_client(timeout_seconds=timeout_seconds) as client:
                response = client.request(spec.method, spec.url)
        except httpx.TimeoutException:
            return Outcome("fail", f"no answer within {timeout_seconds:g} s")
        except httpx.HTTPError as error:
            return Outcome("fail", f"request failed: {error}")
        return judge_response(spec, response.status_code, response.text)

    return Check(
        name=check_name(spec, context, "http"),
        kind="http",
        target=f"{spec.method} {spec.url}",
        probe=probe,
        severity=spec.severity,
        timeout_seconds=spec.timeout_seconds,
        service=context.service,
    )


def judge_response(spec: HttpCheck, status_code: int, body: str) -> Outcome:
    """Compare one response with what ``spec`` expects."""
    if status_code not in spec.expect_status:
        expected = ", ".join(str(code) for code in spec.expect_status)
        excerpt = " ".join(body.split())[:_BODY_EXCERPT_CHARS]
        return Outcome("fail", f"status {status_code}, expected {expected}: {excerpt}")
    if spec.body_contains is not None and spec.body_contains not in body:
        return Outcome("fail", f"status {status_code}, but the body lacks {spec.body_contains!r}")
    return Outcome("pass", f"status {status_code}")
