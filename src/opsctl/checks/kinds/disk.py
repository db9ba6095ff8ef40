"""``disk``: the filesystem holding a path has enough free space."""

from __future__ import annotations

import shutil

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import DiskCheck


def build(spec: DiskCheck, context: BuildContext) -> Check:
    """Build a check of the free space on the filesystem of ``spec.path``."""

    path = spec.path if spec.path.startswith("/") else str(context.root / spec.path)

    def probe(timeout_seconds: float) -> Outcome:
        return probe_disk(
            path,
            warn_free_percent=spec.warn_free_percent,
            fail_free_percent=spec.fail_free_percent,
        )

    return make_check(
        spec, context, default_name=f"disk {spec.path}", target=spec.path, probe=probe
    )


def probe_disk(path: str, *, warn_free_percent: float, fail_free_percent: float) -> Outcome:
    """Compare the free share of the filesystem at ``path`` with the thresholds."""
    try:
        usage = shutil.disk_usage(path)
    except OSError as error:
        return Outcome("fail", f"cannot read {path}: {error.strerror or error}")
    free_percent = 100.0 * usage.free / usage.total if usage.total else 0.0
    detail = f"{free_percent:.1f}% free ({_gib(usage.free)} of {_gib(usage.total)})"
    if free_percent < fail_free_percent:
        return Outcome("fail", f"{detail}, below {fail_free_percent:g}%")
    if free_percent < warn_free_percent:
        return Outcome("warn", f"{detail}, below {warn_free_percent:g}%")
    return Outcome("pass", detail)


def _gib(size_bytes: int) -> str:
    return f"{size_bytes / (1 << 30):.1f} GiB"
