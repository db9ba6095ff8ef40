"""A destination that fills up: a clear error, nothing partial, older backups intact."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backup._helpers import make_project


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs made for the test (needs root, as on the project's machines)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_destination_fails_clearly_and_leaves_nothing_partial(
    tmp_path: Path, small_filesystem: Path
) -> None:
    """The first backup fits; the second (3 MB of random data) does not: exit 1 naming the
    cause, no partial archive or manifest left, the first still listed and verified.
    """
    project = make_project(
        tmp_path / "proj", f'destination = "{small_filesystem / "backups"}"', paths='["data"]'
    )
    first = project.run_json()["id"]
    (project.data / "big.bin").write_bytes(os.urandom(3_000_000))

    result = project.cli("backup", "run")

    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert "Traceback" not in result.output
    assert project.listed() == [first]
    names = {path.name for path in (small_filesystem / "backups").iterdir()}
    assert names == {f"{first}.json", f"{first}.tar.zst", ".opsctl-backup.lock"}
    assert project.cli("backup", "verify", first).exit_code == 0
