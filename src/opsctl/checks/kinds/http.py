"""``http``: an HTTP endpoint answers with the expected status, body, JSON field and latency."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import HttpCheck

_BODY_EXCERPT_CHARS = 120
_MISSING = object()


def build(spec: HttpCheck, context: BuildContext) -> Check:
    """Build a check that requests ``spec.url`` and judges the response."""

    def probe(timeout_seconds: float) -> Outcome:
        from opsctl.clients import probe_http

        try:
            response = probe_http(spec.method, spec.url, timeout_seconds=timeout_seconds)
        except TimeoutError:
            return Outcome("fail", f"no answer within {timeout_seconds:g} s")
        except (OSError, http.client.HTTPException) as error:
            return Outcome("fail", f"request failed: {error}")
        return judge_response(
            spec, response.status_code, response.text, latency_ms=response.elapsed_ms
        )

    target = f"{spec.method} {spec.url}"
    return make_check(spec, context, default_name="http", target=target, probe=probe)


def judge_response(spec: HttpCheck, status_code: int, body: str, *, latency_ms: float) -> Outcome:
    """Compare one response with everything ``spec`` expects; the first mismatch fails it."""
    said = f"status {status_code} in {latency_ms:.0f} ms"
    if status_code not in spec.expect_status:
        expected = ", ".join(str(code) for code in spec.expect_status)
        excerpt = " ".join(body.split())[:_BODY_EXCERPT_CHARS]
        return Outcome("fail", f"status {status_code}, expected {expected}: {excerpt}")
    if spec.body_contains is not None and spec.body_contains not in body:
        return Outcome("fail", f"status {status_code}, but the body lacks {spec.body_contains!r}")
    if spec.body_regex is not None and not re.search(spec.body_regex, body):
        return Outcome(
            "fail", f"status {status_code}, but the body does not match /{spec.body_regex}/"
        )
    if spec.json_field is not None:
        problem = _judge_json(spec.json_field, spec.json_equals, body)
        if problem:
            return Outcome("fail", f"status {status_code}, but {problem}")
    if spec.max_latency_ms is not None and latency_ms > spec.max_latency_ms:
        return Outcome("fail", f"{said}, over the {spec.max_latency_ms:g} ms bound")
    return Outcome("pass", said)


def _judge_json(path: str, expected: Any, body: str) -> str | None:
    try:
        value: Any = json.loads(body)
    except ValueError:
        return "the body is not JSON"
    for part in path.split("."):
        value = _step(value, part)
        if value is _MISSING:
            return f"the JSON has no field {path!r}"
    if expected is not None and value != expected:
        return f"JSON field {path!r} is {value!r}, expected {expected!r}"
    return None


def _step(value: Any, part: str) -> Any:
    if isinstance(value, dict):
        return value.get(part, _MISSING)
    if isinstance(value, list) and part.isdigit() and int(part) < len(value):
        return value[int(part)]
    return _MISSING
