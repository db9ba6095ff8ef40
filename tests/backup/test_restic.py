"""The restic backend's repository access, against the real restic binary and local repositories."""

from __future__ import annotations

import logging
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsctl.backup._restic import ResticRepository, plan_prune
from opsctl.backup._retention import Policy
from opsctl.errors import (
    BusyError,
    ConfigError,
    ExitCode,
    OperationFailedError,
    ResourceUnavailableError,
    UsageError,
)
from tests.support import wait_for

pytestmark = pytest.mark.slow

PASSWORD = "restic-test-password-7c1e9b"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
    return folder


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


@pytest.fixture
def repository(tmp_path: Path) -> ResticRepository:
    repo = ResticRepository(
        str(tmp_path / "repo"), environ=environment(tmp_path, RESTIC_PASSWORD=PASSWORD)
    )
    repo.ensure_initialized()
    return repo


def test_ensure_initialized_creates_once(tmp_path: Path) -> None:
    repo = ResticRepository(
        str(tmp_path / "repo"), environ=environment(tmp_path, RESTIC_PASSWORD=PASSWORD)
    )
    assert not repo.exists()

    repo.ensure_initialized()
    repo.ensure_initialized()

    assert repo.exists()
    assert (tmp_path / "repo" / "config").is_file()


def test_backup_then_restore_gives_the_same_files(
    repository: ResticRepository, data: Path, tmp_path: Path
) -> None:
    snapshot = repository.backup([data], tags=["opsctl", "nightly"])
    target = tmp_path / "restored"

    repository.restore(snapshot.id, target)

    restored = target / data.relative_to("/")
    assert (restored / "a.txt").read_text() == "alpha\n"
    assert (restored / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 64
    assert set(snapshot.tags) == {"opsctl", "nightly"}
    assert snapshot.paths == (str(data),)


def test_backup_records_the_given_time_in_utc(repository: ResticRepository, data: Path) -> None:
    snapshot = repository.backup([data], time=datetime(2024, 2, 29, 23, 30, 5, tzinfo=UTC))

    assert snapshot.time == datetime(2024, 2, 29, 23, 30, 5, tzinfo=UTC)
    assert snapshot.time.utcoffset() is not None


def test_prune_forgets_exactly_what_the_plan_removes(
    repository: ResticRepository, data: Path
) -> None:
    """restic forgets the ids of opsctl's plan; untagged snapshots are never touched."""
    days = ["2024-03-01 02:30", "2024-03-02 02:30", "2024-03-02 14:00", "2024-03-03 02:30"]
    made = {
        day: repository.backup([data], time=datetime.fromisoformat(day).replace(tzinfo=UTC))
        for day in days
    }
    foreign = repository.backup([data], tags=["by-hand"], time=datetime(2020, 1, 1, tzinfo=UTC))
    policy = Policy(daily=2)

    preview = plan_prune(repository, policy, dry_run=True, now=NOW)
    assert preview.forgotten == []
    assert len(repository.snapshots()) == 5

    result = plan_prune(repository, policy, dry_run=False, now=NOW)

    removed = {made["2024-03-01 02:30"].id, made["2024-03-02 02:30"].id}
    assert set(result.forgotten) == removed
    assert [d.snapshot.id for d in result.decisions if not d.keep] == result.forgotten
    remaining = {snapshot.id for snapshot in repository.snapshots()}
    assert remaining == {made["2024-03-03 02:30"].id, made["2024-03-02 14:00"].id, foreign.id}


def test_prune_again_forgets_nothing(repository: ResticRepository, data: Path) -> None:
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        repository.backup([data], time=datetime.fromisoformat(day).replace(tzinfo=UTC))
    plan_prune(repository, Policy(keep_last=1), dry_run=False, now=NOW)

    again = plan_prune(repository, Policy(keep_last=1), dry_run=False, now=NOW)

    assert again.forgotten == []
    assert len(repository.snapshots()) == 1


def test_check_reads_all_data_and_reports_damage(
    repository: ResticRepository, data: Path, tmp_path: Path
) -> None:
    repository.backup([data])
    repository.check(read_data=True)
    packs = [path for path in (tmp_path / "repo" / "data").rglob("*") if path.is_file()]
    pack = max(packs, key=lambda path: path.stat().st_size)
    pack.chmod(0o600)
    with pack.open("r+b") as handle:
        handle.seek(pack.stat().st_size // 2)
        handle.write(b"\0damaged\0")

    with pytest.raises(OperationFailedError, match="restic check failed"):
        repository.check(read_data=True)


def test_wrong_password_is_a_config_error_that_never_shows_it(
    repository: ResticRepository, tmp_path: Path
) -> None:
    wrong = "not-the-password-4d2a91"
    other = ResticRepository(
        repository.repository, environ=environment(tmp_path, RESTIC_PASSWORD=wrong)
    )

    with pytest.raises(ConfigError) as raised:
        other.snapshots()

    assert raised.value.exit_code == ExitCode.USAGE
    assert "password is wrong" in raised.value.message
    assert wrong not in raised.value.message
    assert wrong not in (raised.value.hint or "")


def test_password_file_works_too(repository: ResticRepository, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    other = ResticRepository(
        repository.repository,
        environ=environment(tmp_path, RESTIC_PASSWORD_FILE=str(password_file)),
    )

    assert other.snapshots() == []


def test_missing_password_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs the repository password") as raised:
        ResticRepository(str(tmp_path / "repo"), environ=environment(tmp_path))

    assert "RESTIC_PASSWORD" in (raised.value.hint or "")


def test_missing_repository_is_named(tmp_path: Path) -> None:
    repo = ResticRepository(
        str(tmp_path / "nowhere"), environ=environment(tmp_path, RESTIC_PASSWORD=PASSWORD)
    )

    with pytest.raises(UsageError, match="There is no restic repository at .*nowhere"):
        repo.snapshots()


def test_missing_restic_binary_is_a_missing_resource(tmp_path: Path) -> None:
    repo = ResticRepository(
        str(tmp_path / "repo"),
        environ=environment(tmp_path, RESTIC_PASSWORD=PASSWORD),
        binary="restic-is-not-installed",
    )

    with pytest.raises(ResourceUnavailableError, match="not found") as raised:
        repo.exists()

    assert raised.value.exit_code == ExitCode.UNAVAILABLE
    assert "apt-get install restic" in (raised.value.hint or "")


def test_locked_repository_is_busy(repository: ResticRepository, tmp_path: Path) -> None:
    """An exclusive lock held by another restic process gives exit 75."""
    process = holder_process(repository)
    try:
        wait_for(
            lambda: any((tmp_path / "repo" / "locks").iterdir()),
            timeout_seconds=30,
            message="restic took no lock",
        )
        with pytest.raises(BusyError, match="locked by another restic process") as raised:
            repository.forget(["0" * 64])
        assert raised.value.exit_code == ExitCode.BUSY
    finally:
        process.terminate()
        process.wait(timeout=30)


def holder_process(repo: ResticRepository) -> subprocess.Popen[bytes]:
    """Start ``restic backup`` reading a never-ending stdin: it holds a lock until stopped."""
    return subprocess.Popen(
        ["restic", "backup", "--stdin", "--stdin-filename", "endless"],
        env=repo.environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_no_command_or_log_line_carries_the_password(
    repository: ResticRepository, data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opsctl")

    repository.backup([data])
    plan_prune(repository, Policy(keep_last=1), dry_run=False, now=NOW)

    assert caplog.records
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)
