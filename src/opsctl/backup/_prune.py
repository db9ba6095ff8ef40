"""``backup prune``: apply the retention policy; never the newest complete backup, never all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsctl.backup._sources import destination
from opsctl.backup._store import Store
from opsctl.errors import OperationFailedError

if TYPE_CHECKING:
    from opsctl.backup._retention import Decision
    from opsctl.config import Project

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneResult:
    """The plan, newest first, and the backups removed (none in a dry run)."""

    decisions: list[Decision]
    removed: list[str]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "backups": [
                {
                    "id": decision.snapshot.id,
                    "time": decision.snapshot.time.isoformat(),
                    "keep": decision.keep,
                    "reasons": list(decision.reasons),
                }
                for decision in self.decisions
            ],
            "removed": self.removed,
        }


def prune_backups(project: Project, *, dry_run: bool) -> PruneResult:
    """Remove the backups ``backup.retention`` does not keep (restic ``forget`` rules).

    Raises :class:`ConfigError` for an empty or malformed policy, :class:`BusyError` when
    another operation holds the destination, and :class:`OperationFailedError` if a plan
    would remove the newest complete backup or every backup (it never should).
    """
    from opsctl.backup._retention import Policy, Snapshot, plan

    policy = Policy.from_section(project.config.backup.retention)
    store = Store(destination(project))
    with store.locked("backup prune"):
        backups = {stored.id: stored for stored in store.list()}
        snapshots = [Snapshot(id=s.id, time=s.manifest.started_at) for s in backups.values()]
        decisions = plan(snapshots, policy)
        doomed = [d.snapshot.id for d in decisions if not d.keep]
        check_plan(backups, doomed)
        if dry_run:
            return PruneResult(decisions, [], dry_run=True)
        for backup_id in doomed:
            logger.info("Removing backup %s", backup_id)
            store.delete(backups[backup_id])
    return PruneResult(decisions, doomed, dry_run=False)


def check_plan(backups: dict[str, Any], doomed: list[str]) -> None:
    """A second guard, independent of the planner: keep the newest complete backup."""
    complete = [backup_id for backup_id, stored in backups.items() if stored.problem is None]
    if backups and len(doomed) >= len(backups):
        message = "The retention plan would remove every backup; nothing was removed."
        raise OperationFailedError(message)
    if complete and complete[0] in doomed:
        message = (
            f"The retention plan would remove the newest complete backup {complete[0]}; "
            "nothing was removed."
        )
        raise OperationFailedError(message)
