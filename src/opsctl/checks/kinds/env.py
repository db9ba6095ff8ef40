"""``env``: a variable is set (in the process environment or ``.env``) and well-formed.

Values are never shown: a variable may hold a secret.
"""

from __future__ import annotations

import re

from opsctl import secrets
from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import EnvCheck


def build(spec: EnvCheck, context: BuildContext) -> Check:
    """Build a check of the variable ``spec.variable``."""

    def probe(timeout_seconds: float) -> Outcome:
        return probe_env(spec, context.environ.get(spec.variable))

    return make_check(
        spec, context, default_name=f"env {spec.variable}", target=spec.variable, probe=probe
    )


def probe_env(spec: EnvCheck, value: str | None) -> Outcome:
    """Judge one variable's value against ``spec``."""
    if value is None or value == "":
        return (
            Outcome("pass", "not set, as required") if not spec.set else Outcome("fail", "not set")
        )
    if not spec.set:
        return Outcome("fail", "set, but must not be")
    shown = secrets.mask(value) if spec.secret else repr(value)
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        return Outcome("fail", f"set ({shown}), but does not match /{spec.pattern}/")
    return Outcome("pass", f"set ({shown})")
