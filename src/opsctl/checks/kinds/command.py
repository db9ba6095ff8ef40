"""``command``: a program exits with the expected code (and prints the expected text)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import CommandCheck

_OUTPUT_EXCERPT_CHARS = 200


def build(spec: CommandCheck, context: BuildContext) -> Check:
    """Build a check that runs ``spec.argv`` (no shell)."""

    def probe(timeout_seconds: float) -> Outcome:
        return probe_command(
            spec.argv,
            expect_exit=spec.expect_exit,
            output_contains=spec.output_contains,
            output_regex=spec.output_regex,
            timeout_seconds=timeout_seconds,
        )

    return make_check(
        spec,
        context,
        default_name=f"command {os.path.basename(spec.argv[0])}",
        target=" ".join(spec.argv),
        probe=probe,
    )


def probe_command(
    argv: list[str],
    *,
    expect_exit: int,
    output_contains: str | None,
    timeout_seconds: float,
    output_regex: str | None = None,
) -> Outcome:
    """Run ``argv`` in a new process group; at the deadline the whole group is killed."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as error:
        return Outcome("fail", f"cannot run {argv[0]!r}: {error.strerror or error}")
    try:
        output, _ = process.communicate(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        return Outcome("fail", f"still running after {timeout_seconds:g} s; killed")

    text = output.decode("utf-8", errors="replace")
    excerpt = " ".join(text.split())[-_OUTPUT_EXCERPT_CHARS:]
    if process.returncode != expect_exit:
        return Outcome("fail", f"exit code {process.returncode}, expected {expect_exit}: {excerpt}")
    if output_contains is not None and output_contains not in text:
        return Outcome(
            "fail", f"exit code {process.returncode}, but the output lacks {output_contains!r}"
        )
    if output_regex is not None and not re.search(output_regex, text):
        return Outcome(
            "fail",
            f"exit code {process.returncode}, but the output does not match /{output_regex}/",
        )
    return Outcome("pass", f"exit code {process.returncode}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
