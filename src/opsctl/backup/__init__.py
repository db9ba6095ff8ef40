"""Backups cron can trust: one archive per run (tar + zstd) committed by its manifest,
consistent Redis snapshots, verification, retention and safe restore.

The destination holds ``<id>.tar.zst`` and ``<id>.json`` per backup; a backup exists only
once its manifest is written. One run, prune or restore per destination at a time.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from opsctl.backup._manifest import FileEntry, Manifest, SourceEntry
from opsctl.backup._prune import PruneResult, prune_backups
from opsctl.backup._restore import RestoreResult, SourceRestore, restore_backup
from opsctl.backup._run import RunResult, run_backup
from opsctl.backup._sources import Progress, configured_sources, destination
from opsctl.backup._store import DamagedManifest, Store, StoredBackup
from opsctl.backup._verify import VerifyResult, verify_backup

if TYPE_CHECKING:
    from opsctl.config import Project

__all__ = [
    "DamagedManifest",
    "FileEntry",
    "Manifest",
    "Progress",
    "PruneResult",
    "RestoreResult",
    "RunResult",
    "SourceEntry",
    "SourceRestore",
    "Store",
    "StoredBackup",
    "VerifyResult",
    "backend_for",
    "configured_sources",
    "damaged_manifests",
    "destination",
    "list_backups",
    "prune_backups",
    "restore_backup",
    "run_backup",
    "verify_backup",
    "verify_backups",
]


def list_backups(project: Project) -> list[StoredBackup]:
    """The committed backups in the project's destination, newest first."""
    return Store(destination(project)).list()


def damaged_manifests(project: Project) -> list[DamagedManifest]:
    """The ``<id>.json`` files in the destination that are not usable manifests."""
    return Store(destination(project)).damaged()


def verify_backups(
    project: Project, *, backup_id: str | None = None, all_backups: bool = False
) -> list[VerifyResult]:
    """Verify one backup (an id, a unique prefix, ``latest``; default the newest) or all.
    With ``all_backups`` or no id, every damaged manifest is a failed result too: it may be
    the newest backup. Raises :class:`UsageError` for an unknown id.
    """
    store = Store(destination(project))
    backups, damaged = store.scan()
    failed = [
        VerifyResult(entry.id, False, 0, 0, [f"manifest {entry.path.name}: {entry.problem}"])
        for entry in damaged
    ]
    if all_backups:
        return [*failed, *(verify_backup(stored) for stored in backups)]
    if backup_id is None and not backups and failed:
        return failed
    results = [verify_backup(store.find(backup_id or "latest"))]
    return [*failed, *results] if backup_id is None else results


def backend_for(project: Project) -> ModuleType:
    """The module implementing ``backup.backend``. Each offers the same five functions with
    the same signatures: ``run_backup``, ``list_backups``, ``verify_backups``,
    ``restore_backup`` and ``prune_backups``. The archive backend is this package; the
    restic backend is ``opsctl.backup._restic_backend``.
    """
    import sys

    if project.config.backup.backend == "archive":
        return sys.modules[__name__]
    import importlib

    from opsctl.errors import ResourceUnavailableError

    try:
        return importlib.import_module("opsctl.backup._restic_backend")
    except ImportError:
        message = "backup.backend is 'restic', which this build of opsctl does not offer."
        raise ResourceUnavailableError(message, hint='Set backend = "archive".') from None
