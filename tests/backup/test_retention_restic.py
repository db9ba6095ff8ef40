"""Retention plans compared with the real restic binary's ``forget --dry-run`` decisions.

The installed restic (Debian's 0.14) predates one rule of current restic (0.17 and later):
keeping the oldest backup while a rule has count left. So every backup but the oldest must get
exactly restic's decision and reasons, and the oldest must get restic's reasons plus an
"oldest ..." reason for each rule that a count larger than its buckets leaves unfinished.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from opsctl.backup._retention import Policy, Snapshot, plan

pytestmark = pytest.mark.slow

# Chosen to sit on the edges: several per hour and day, ISO weeks across New Year (2018-12-31
# and 2019-01-01 are in 2019-W01; 2021-01-03 is in 2020-W53), a leap day, month ends, and
# pairs one second apart around the thresholds of within = 1m, 1y1m and 2m3h.
TIMES = [
    "2018-12-30 23:00:00",
    "2018-12-31 08:00:00",
    "2019-01-01 09:00:00",
    "2019-06-15 10:00:00",
    "2019-06-15 10:30:00",
    "2019-06-15 11:00:00",
    "2019-12-31 23:59:59",
    "2020-02-29 12:00:00",
    "2020-03-01 00:00:00",
    "2020-03-02 12:00:00",
    "2020-03-02 12:00:01",
    "2020-12-31 12:00:00",
    "2021-01-03 12:00:00",
    "2021-01-04 12:00:00",
    "2021-01-31 09:00:00",
    "2021-01-31 09:00:01",
    "2021-03-03 12:00:00",
    "2021-03-03 12:00:01",
    "2021-03-20 08:00:00",
    "2021-03-28 18:00:00",
    "2021-03-29 07:00:00",
    "2021-03-31 09:00:00",
    "2021-03-31 09:45:00",
    "2021-03-31 12:00:00",
]

POLICIES = [
    Policy(keep_last=5),
    Policy(keep_last=30),
    Policy(hourly=4),
    Policy(daily=5),
    Policy(weekly=6),
    Policy(monthly=6),
    Policy(yearly=3),
    Policy(yearly=10),
    Policy(daily=3, weekly=3, monthly=3, yearly=10),
    Policy(hourly=100),
    Policy(within="1m"),
    Policy(within="1y1m"),
    Policy(within="2m3h"),
    Policy(within="1y2m3d4h"),
    Policy(keep_last=2, monthly=2, within="10d"),
]

FLAGS = {
    "keep_last": "--keep-last",
    "hourly": "--keep-hourly",
    "daily": "--keep-daily",
    "weekly": "--keep-weekly",
    "monthly": "--keep-monthly",
    "yearly": "--keep-yearly",
    "within": "--keep-within",
}

BUCKETS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


@dataclass(frozen=True)
class Repository:
    environment: dict[str, str]
    snapshots: list[Snapshot]

    def restic(self, *args: str) -> str:
        done = subprocess.run(
            ["restic", *args], env=self.environment, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repository]:
    """A real restic repository holding one snapshot at each of TIMES (UTC)."""
    assert shutil.which("restic"), "restic must be installed (Debian package 'restic')"
    root = tmp_path_factory.mktemp("restic")
    data = root / "data"
    data.mkdir()
    (data / "file.txt").write_text("retention\n")
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "TZ": "UTC",
        "RESTIC_REPOSITORY": str(root / "repo"),
        "RESTIC_PASSWORD": "retention-test-password",
        "RESTIC_CACHE_DIR": str(root / "cache"),
    }
    repo = Repository(environment, [])
    repo.restic("init", "--quiet")
    for time in TIMES:
        repo.restic("backup", "--quiet", "--host", "opsctl-test", "--time", time, str(data))

    listed = json.loads(repo.restic("snapshots", "--json"))
    snapshots = [Snapshot(item["id"], _parse(item["time"])) for item in listed]
    assert sorted(str(s.time)[:19] for s in snapshots) == TIMES
    yield Repository(environment, snapshots)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _restic_reasons(repository: Repository, policy: Policy) -> dict[str, tuple[str, ...]]:
    """Run ``restic forget --dry-run`` for ``policy``; return each kept snapshot's reasons."""
    flags = []
    for name, flag in FLAGS.items():
        value = getattr(policy, name)
        if value:
            flags += [flag, str(value)]
    output = repository.restic("forget", "--dry-run", "--json", "--group-by", "", *flags)
    (group,) = json.loads(output)
    ids = [item["id"] for item in group["keep"]]
    return {
        id_: tuple(reason["matches"]) for id_, reason in zip(ids, group["reasons"], strict=True)
    }


def _unfinished_rules(snapshots: list[Snapshot], policy: Policy) -> set[str]:
    """Rules whose count outlasts the buckets present and whose oldest bucket was seen before."""
    ordered = sorted(snapshots, key=lambda snapshot: snapshot.time, reverse=True)
    rules = set()
    for rule, bucket in BUCKETS.items():
        count = getattr(policy, rule) or 0
        distinct = len({bucket(s.time) for s in ordered})
        if count > distinct and bucket(ordered[-1].time) == bucket(ordered[-2].time):
            rules.add(f"oldest {rule} snapshot")
    return rules


@pytest.mark.parametrize("policy", POLICIES, ids=lambda policy: policy.describe())
def test_plan_matches_restic_forget(repository: Repository, policy: Policy) -> None:
    """Same kept set and reasons as restic, but for the oldest-backup rule restic 0.14 lacks."""
    expected = _restic_reasons(repository, policy)

    decisions = plan(repository.snapshots, policy)

    *others, oldest = decisions
    for decision in others:
        assert decision.reasons == expected.get(decision.snapshot.id, ()), decision.snapshot
    restic_oldest = expected.get(oldest.snapshot.id, ())
    ordinary = tuple(r for r in oldest.reasons if not r.startswith("oldest "))
    extra = {r for r in oldest.reasons if r.startswith("oldest ")}
    assert ordinary == restic_oldest
    assert extra == _unfinished_rules(repository.snapshots, policy)
    assert oldest.keep == bool(restic_oldest or extra)


def test_the_comparison_covers_the_oldest_rule(repository: Repository) -> None:
    """At least one policy above exercises the 0.17 rule, so the comparison is not vacuous."""
    decisions = plan(repository.snapshots, Policy(yearly=10))

    assert decisions[-1].reasons == ("oldest yearly snapshot",)
    assert _restic_reasons(repository, Policy(yearly=10)).get(decisions[-1].snapshot.id) is None
