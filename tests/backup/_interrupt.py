"""Run ``opsctl`` with a signal sent to itself at a chosen point of a backup.

Usage: python -m tests.backup._interrupt STAGE SIGNAL opsctl-args...

The stage names a moment of the run: ``mid-archive`` (some files written to the partial
archive), ``before-commit`` (archive renamed, manifest not written), ``mid-manifest`` (a
half-written temporary manifest on disk), ``after-commit`` (manifest committed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from opsctl.backup import _archive, _store
from opsctl.cli import main

_FILES_BEFORE_STOPPING = 3


def _interrupt(number: int) -> None:
    os.kill(os.getpid(), number)


def install(stage: str, number: int) -> None:
    """Patch the run so that it sends ``number`` to itself at ``stage``."""
    if stage == "mid-archive":
        original_add = _archive.ArchiveWriter._add_entry
        calls = [0]

        def add_entry(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] > _FILES_BEFORE_STOPPING:
                self._raw.flush()
                _interrupt(number)
            return original_add(self, *args, **kwargs)

        _archive.ArchiveWriter._add_entry = add_entry  # type: ignore[method-assign]
        return
    original_commit = _store.Store.commit

    def commit(self: Any, manifest: Any) -> None:
        if stage == "before-commit":
            _interrupt(number)
        elif stage == "mid-manifest":
            half = manifest.to_json()[:100]
            Path(self.folder / f".{manifest.id}.json.x1y2.tmp").write_text(half)
            _interrupt(number)
        original_commit(self, manifest)
        if stage == "after-commit":
            _interrupt(number)

    _store.Store.commit = commit  # type: ignore[method-assign]


if __name__ == "__main__":
    install(sys.argv[1], int(getattr(signal, sys.argv[2])))
    main(sys.argv[3:])
