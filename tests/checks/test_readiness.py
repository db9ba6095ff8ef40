"""The built-in readiness checks of every section, from real configs in temporary folders."""

from __future__ import annotations

import importlib.util
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.checks import CheckResult, Report
from opsctl.checks.verify import run_verify
from opsctl.config import load_project
from opsctl.runtime import get_runtime
from opsctl.secrets import MASK
from tests.support import free_port, run_cli, write_project

# The built-in disk check of the project root is always present; these thresholds keep it
# quiet where a test is about another section.
CALM_DISK = """
[monitoring.disk]
warn_free_percent = 0
fail_free_percent = 0
"""

ROO_FILES = (
    "productContext.md",
    "activeContext.md",
    "systemPatterns.md",
    "decisionLog.md",
    "progress.md",
)


def verify(
    root: Path,
    toml: str,
    *,
    env: str | None = None,
    only: tuple[str, ...] = (),
    calm_disk: bool = True,
) -> Report:
    config = write_project(root, toml + (CALM_DISK if calm_disk else ""), env=env)
    project = load_project(config)
    return run_verify(project, get_runtime(project), only=only)


def by_name(report: Report) -> dict[str, CheckResult]:
    return {result.name: result for result in report.checks}


def section(report: Report, name: str) -> list[CheckResult]:
    return [result for result in report.checks if result.section == name]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def listener() -> Iterator[int]:
    """A socket listening on 127.0.0.1; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    yield sock.getsockname()[1]
    sock.close()


# config


def test_config_check_passes_naming_file_service_count_and_runtime(root: Path) -> None:
    """The config check passes, naming the file, the number of services and the runtime."""
    report = verify(
        root,
        """
        [services.one]
        command = "sleep 1000"
        [services.two]
        command = "sleep 1000"
        """,
    )
    (check,) = section(report, "config")
    assert check.name == "config valid"
    assert check.kind == "builtin"
    assert check.status == "pass"
    assert check.detail == "opsctl.toml: 2 services, runtime local"
    assert check.target == str(root / "opsctl.toml")
    assert check.tags == ("builtin", "config")


def test_verify_of_a_clean_project_passes_with_only_config_and_disk(root: Path) -> None:
    """A project with nothing declared runs just the config and disk checks, and passes."""
    report = verify(root, "")
    assert report.status == "pass"
    assert {result.section for result in report.checks} == {"config", "disk"}


# files: the env file


def test_env_file_mode_0600_passes(root: Path) -> None:
    """A .env file readable only by its owner passes."""
    root.joinpath(".env").write_text("VT_TOKEN_A=abc\n")
    root.joinpath(".env").chmod(0o600)
    result = by_name(verify(root, ""))["env file"]
    assert (result.status, result.detail) == ("pass", "present, mode 0600")
    assert result.section == "files"
    assert result.target == str(root / ".env")


def test_env_file_mode_0644_warns_with_chmod_hint(root: Path) -> None:
    """A .env file others can read warns and says how to fix it."""
    root.joinpath(".env").write_text("VT_TOKEN_A=abc\n")
    root.joinpath(".env").chmod(0o644)
    report = verify(root, "")
    result = by_name(report)["env file"]
    assert result.status == "warn"
    assert "mode 0644" in result.detail
    assert f"chmod 600 {root / '.env'}" in result.detail
    assert report.status == "pass"


def test_env_file_missing_with_declared_keys_warns(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With keys declared and no .env file, the env file check warns."""
    monkeypatch.setenv("VT_PLAIN_VALUE", "anything-goes")
    report = verify(
        root,
        """
        [keys.thing]
        provider = "custom"
        env = "VT_PLAIN_VALUE"
        """,
    )
    result = by_name(report)["env file"]
    assert result.status == "warn"
    assert result.detail.startswith("missing")


def test_env_file_check_absent_without_keys_or_env_file(root: Path) -> None:
    """No keys and no .env file: there is no env file check."""
    assert "env file" not in by_name(verify(root, ""))


# files: service directories


def test_service_directory_missing_fails(root: Path) -> None:
    """A service whose directory does not exist fails its directory check."""
    report = verify(
        root,
        """
        [services.worker]
        command = "sleep 1000"
        directory = "work/here"
        """,
    )
    result = by_name(report)["worker directory"]
    assert (result.status, result.detail) == ("fail", "does not exist")
    assert result.target == str(root / "work" / "here")
    assert result.section == "files"
    assert report.status == "fail"


def test_service_directory_present_passes(root: Path) -> None:
    """A service whose directory exists passes its directory check."""
    (root / "work").mkdir()
    report = verify(
        root,
        """
        [services.worker]
        command = "sleep 1000"
        directory = "work"
        """,
    )
    assert by_name(report)["worker directory"].status == "pass"
    assert report.status == "pass"


def test_service_directory_that_is_a_file_fails(root: Path) -> None:
    """A service directory that names a regular file fails."""
    (root / "work").write_text("not a folder")
    report = verify(
        root,
        """
        [services.worker]
        command = "sleep 1000"
        directory = "work"
        """,
    )
    assert by_name(report)["worker directory"].status == "fail"


# keys


def test_required_key_missing_fails(root: Path) -> None:
    """A required key that is set nowhere fails, naming the variable."""
    report = verify(
        root,
        """
        [keys.openai]
        provider = "openai"
        env = "VT_ABSENT_OPENAI"
        """,
    )
    result = by_name(report)["key openai"]
    assert (result.status, result.detail) == ("fail", "VT_ABSENT_OPENAI is not set")
    assert result.section == "keys"
    assert result.target == "openai"
    assert report.status == "fail"


def test_malformed_short_key_fails_and_is_fully_masked(root: Path) -> None:
    """A short value of the wrong shape fails and is shown only as the mask."""
    report = verify(
        root,
        """
        [keys.openai]
        provider = "openai"
        env = "VT_OPENAI"
        """,
        env="VT_OPENAI=nope\n",
    )
    result = by_name(report)["key openai"]
    assert result.status == "fail"
    assert "is not shaped like a key of openai" in result.detail
    assert MASK in result.detail
    assert "nope" not in result.detail


def test_malformed_long_key_fails_showing_only_its_ends(root: Path) -> None:
    """A long value of the wrong shape fails; only its first 4 and last 2 characters show."""
    value = "pk-definitely-not-openai-9876543210"
    report = verify(
        root,
        """
        [keys.openai]
        provider = "openai"
        env = "VT_OPENAI"
        """,
        env=f"VT_OPENAI={value}\n",
    )
    result = by_name(report)["key openai"]
    assert result.status == "fail"
    assert "pk-d…10" in result.detail
    assert value not in result.detail
    assert "definitely" not in result.detail


def test_valid_key_from_env_file_passes_masked(root: Path) -> None:
    """A value of the provider's shape passes, masked, saying it came from .env."""
    value = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1"
    report = verify(
        root,
        """
        [keys.openai]
        provider = "openai"
        env = "VT_OPENAI"
        """,
        env=f"VT_OPENAI={value}\n",
    )
    result = by_name(report)["key openai"]
    assert result.status == "pass"
    assert result.detail == "VT_OPENAI set (sk-A…K1, from .env)"
    assert value not in result.detail


def test_valid_key_from_process_environment_says_so(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key set in the process environment is reported as coming from the environment."""
    monkeypatch.setenv("VT_HF", "hf_" + "x" * 34)
    report = verify(
        root,
        """
        [keys.hf]
        provider = "huggingface"
        env = "VT_HF"
        """,
    )
    result = by_name(report)["key hf"]
    assert result.status == "pass"
    assert result.detail.endswith("from environment)")


def test_key_variable_defaults_to_the_key_name(root: Path) -> None:
    """Without env, the key's own name is the variable looked up."""
    report = verify(
        root,
        """
        [keys.VT_GH_TOKEN]
        provider = "github"
        """,
    )
    assert by_name(report)["key VT_GH_TOKEN"].detail == "VT_GH_TOKEN is not set"


def test_optional_key_missing_is_skipped(root: Path) -> None:
    """An optional key that is not set is a skip, and does not fail verify."""
    report = verify(
        root,
        """
        [keys.hf]
        provider = "huggingface"
        env = "VT_ABSENT_HF"
        required = false
        """,
    )
    result = by_name(report)["key hf"]
    assert result.status == "skip"
    assert "(optional)" in result.detail
    assert report.status == "pass"


def test_key_of_unknown_provider_passes_any_value(root: Path) -> None:
    """A custom provider without a format accepts any non-empty value."""
    report = verify(
        root,
        """
        [keys.internal]
        provider = "custom"
        env = "VT_INTERNAL"
        """,
        env="VT_INTERNAL=whatever\n",
    )
    assert by_name(report)["key internal"].status == "pass"


def test_empty_required_key_fails_as_not_set(root: Path) -> None:
    """A key set to the empty string counts as not set."""
    report = verify(
        root,
        """
        [keys.openai]
        provider = "openai"
        env = "VT_OPENAI"
        """,
        env="VT_OPENAI=\n",
    )
    assert by_name(report)["key openai"].detail == "VT_OPENAI is not set"


# ports


def test_port_mentioned_in_command_passes(root: Path) -> None:
    """A service port that appears in its command passes the port-used check."""
    port = free_port()
    report = verify(
        root,
        f"""
        [services.api]
        command = "sleep {{port}}"
        port = {port}
        """,
    )
    result = by_name(report)["api port used"]
    assert result.status == "pass"
    assert result.target == f"api:{port}"
    assert result.section == "ports"


def test_port_mentioned_in_environment_passes(root: Path) -> None:
    """A service port that appears in its environment passes the port-used check."""
    port = free_port()
    report = verify(
        root,
        f"""
        [services.api]
        command = "sleep 1000"
        port = {port}
        environment = {{ LISTEN = "127.0.0.1:{{port}}" }}
        """,
    )
    assert by_name(report)["api port used"].status == "pass"


def test_port_absent_from_command_and_environment_warns(root: Path) -> None:
    """A port that neither the command nor the environment mentions warns, not fails."""
    port = free_port()
    report = verify(
        root,
        f"""
        [services.api]
        command = "sleep 1000"
        port = {port}
        """,
    )
    result = by_name(report)["api port used"]
    assert result.status == "warn"
    assert str(port) in result.detail
    assert report.status == "pass"


def test_free_port_passes(root: Path) -> None:
    """A service port nothing listens on passes the port-free check."""
    port = free_port()
    report = verify(
        root,
        f"""
        [services.api]
        command = "sleep {{port}}"
        port = {port}
        """,
    )
    result = by_name(report)["api port free"]
    assert (result.status, result.detail) == ("pass", f"port {port} is free")
    assert result.target == f"127.0.0.1:{port}"


def test_port_held_by_a_listening_socket_fails(root: Path, listener: int) -> None:
    """A service port another process already listens on fails the port-free check."""
    report = verify(
        root,
        f"""
        [services.api]
        command = "sleep {{port}}"
        port = {listener}
        """,
    )
    result = by_name(report)["api port free"]
    assert result.status == "fail"
    assert "already in use" in result.detail
    assert report.status == "fail"


def test_service_without_port_has_no_port_checks(root: Path) -> None:
    """A service without a port gets no port checks."""
    report = verify(
        root,
        """
        [services.worker]
        command = "sleep 1000"
        """,
    )
    assert section(report, "ports") == []


# disk


def _free_percent(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.free / usage.total


def test_disk_below_no_threshold_passes(root: Path) -> None:
    """The project root's filesystem passes when its free share is above both thresholds."""
    report = verify(root, "")
    (result,) = section(report, "disk")
    assert result.status == "pass"
    assert result.kind == "disk"
    assert result.target == str(root)
    assert result.detail.endswith("GiB)")
    assert "% free" in result.detail


def test_disk_under_warning_threshold_warns(root: Path) -> None:
    """A free share under warn_free_percent but above fail_free_percent warns."""
    warn_at = min(_free_percent(root) + 1, 100)
    report = verify(
        root,
        f"""
        [monitoring.disk]
        warn_free_percent = {warn_at}
        fail_free_percent = 0
        """,
        calm_disk=False,
    )
    (result,) = section(report, "disk")
    assert result.status == "warn"
    assert f"below {warn_at:g}%" in result.detail
    assert report.status == "pass"


def test_disk_under_failure_threshold_fails(root: Path) -> None:
    """A free share under fail_free_percent fails verify."""
    fail_at = min(_free_percent(root) + 1, 100)
    report = verify(
        root,
        f"""
        [monitoring.disk]
        warn_free_percent = 100
        fail_free_percent = {fail_at}
        """,
        calm_disk=False,
    )
    (result,) = section(report, "disk")
    assert result.status == "fail"
    assert report.status == "fail"


def test_disk_checks_every_configured_path_and_the_backup_destination(root: Path) -> None:
    """Each monitoring.disk path is checked, plus the nearest existing folder of the backup."""
    data = root / "data"
    data.mkdir()
    report = verify(
        root,
        f"""
        [monitoring.disk]
        paths = ["{data}", "{{project.root}}"]
        warn_free_percent = 0
        fail_free_percent = 0

        [backup]
        destination = "{root}/not/yet/there"
        paths = ["{data}"]
        """,
        calm_disk=False,
    )
    targets = [result.target for result in section(report, "disk")]
    assert targets == [str(data), str(root)]


# backup


def test_backup_destination_existing_and_writable_passes(root: Path) -> None:
    """An existing, writable backup destination passes."""
    (root / "backups").mkdir()
    report = verify(
        root,
        f"""
        [backup]
        destination = "{root}/backups"
        paths = ["{root}"]
        """,
    )
    result = by_name(report)["backup destination writable"]
    assert (result.status, result.detail) == ("pass", "exists and is writable")
    assert result.section == "backup"


def test_backup_destination_to_be_created_under_writable_folder_passes(root: Path) -> None:
    """A destination that does not exist yet passes when its nearest folder is writable."""
    report = verify(
        root,
        f"""
        [backup]
        destination = "{root}/later/backups"
        redis = "redis://127.0.0.1:1/0"
        """,
    )
    result = by_name(report)["backup destination writable"]
    assert result.status == "pass"
    assert result.detail == f"will be created under {root}, which is writable"


def test_backup_destination_under_a_regular_file_fails(root: Path) -> None:
    """A destination below a regular file can never be created, and fails."""
    blocker = root / "blocker"
    blocker.write_text("a file, not a folder")
    report = verify(
        root,
        f"""
        [backup]
        destination = "{blocker}/backups"
        paths = ["{root}"]
        """,
    )
    result = by_name(report)["backup destination writable"]
    assert result.status == "fail"
    assert str(blocker) in result.detail
    assert report.status == "fail"


def test_backup_destination_under_an_executable_regular_file_fails(root: Path) -> None:
    """A destination below a regular file fails even when that file has execute bits."""
    blocker = root / "blocker.sh"
    blocker.write_text("#!/bin/sh\n")
    blocker.chmod(0o755)
    report = verify(
        root,
        f"""
        [backup]
        destination = "{blocker}/backups"
        paths = ["{root}"]
        """,
    )
    assert by_name(report)["backup destination writable"].status == "fail"


def test_backup_check_absent_when_nothing_is_backed_up(root: Path) -> None:
    """Without backup paths or redis, there is no backup check."""
    assert section(verify(root, "[backup]\ndestination = '/nowhere/at/all'\n"), "backup") == []


# gpu


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has an NVIDIA driver")
def test_gpu_required_fails_without_a_gpu(root: Path) -> None:
    """gpu.require on a machine without a GPU fails, saying what is missing."""
    report = verify(root, "[gpu]\nrequire = true\n")
    result = by_name(report)["GPU present"]
    assert result.status == "fail"
    assert result.section == "gpu"
    if importlib.util.find_spec("pynvml") is None:
        assert "opsctl[gpu]" in result.detail
    else:
        assert "NVML" in result.detail or "no usable GPU" in result.detail
    assert report.status == "fail"


def test_gpu_check_absent_when_not_required(root: Path) -> None:
    """Without gpu.require there is no GPU check."""
    assert section(verify(root, "[gpu]\nrequire = false\n"), "gpu") == []


# memory bank


def test_memory_bank_required_without_folder_fails(root: Path) -> None:
    """A required memory bank whose folder is missing fails with the command to create it."""
    report = verify(root, "[memory_bank]\nrequired = true\n")
    result = by_name(report)["memory bank active"]
    assert result.status == "fail"
    assert "memory-bank init" in result.detail
    assert result.target == str(root / "memory-bank")


def test_memory_bank_required_with_missing_files_fails_naming_them(root: Path) -> None:
    """A required memory bank missing some profile files fails, naming exactly those."""
    folder = root / "memory-bank"
    folder.mkdir()
    for name in ROO_FILES[:3]:
        (folder / name).write_text("# notes\n")
    report = verify(root, "[memory_bank]\nrequired = true\n")
    result = by_name(report)["memory bank active"]
    assert result.status == "fail"
    assert result.detail == f"inactive: missing or unreadable {ROO_FILES[3]}, {ROO_FILES[4]}"
    assert report.status == "fail"


def test_memory_bank_required_with_all_roo_files_passes(root: Path) -> None:
    """A required memory bank with every roo-profile file passes."""
    folder = root / "bank"
    folder.mkdir()
    for name in ROO_FILES:
        (folder / name).write_text("# notes\n")
    report = verify(root, '[memory_bank]\nrequired = true\npath = "bank"\n')
    result = by_name(report)["memory bank active"]
    assert (result.status, result.detail) == ("pass", "active: 5 files (roo profile)")
    assert result.section == "memory-bank"


def test_memory_bank_extra_files_are_required_too(root: Path) -> None:
    """Files added to the profile must be present as well."""
    folder = root / "memory-bank"
    folder.mkdir()
    for name in ROO_FILES:
        (folder / name).write_text("# notes\n")
    report = verify(root, '[memory_bank]\nrequired = true\nfiles = ["runbook.md"]\n')
    detail = by_name(report)["memory bank active"].detail
    assert detail == "inactive: missing or unreadable runbook.md"


def test_memory_bank_check_absent_when_not_required(root: Path) -> None:
    """A memory bank that is not required is not checked."""
    assert section(verify(root, "[memory_bank]\nrequired = false\n"), "memory-bank") == []


def test_builtin_checks_carry_builtin_and_section_tags(root: Path) -> None:
    """Every built-in check is tagged 'builtin' and its section."""
    (root / "memory-bank").mkdir()
    report = verify(
        root,
        """
        [keys.hf]
        provider = "huggingface"
        env = "VT_ABSENT_HF"
        required = false
        [memory_bank]
        required = true
        """,
    )
    for result in report.checks:
        assert result.tags == ("builtin", result.section), result.name


def test_backup_age_warns_without_a_backup_then_passes_after_a_run(root: Path) -> None:
    """No backup yet is a warning (it must not stop `up`); a fresh one passes; once older
    than backup.max_age_hours it warns again, naming the limit.
    """
    data = root / "data"
    data.mkdir()
    (data / "a.txt").write_text("payload")
    toml = f"""
        [backup]
        destination = "{root}/backups"
        paths = ["{data}"]
        max_age_hours = {{hours}}
        """
    first = by_name(verify(root, toml.format(hours=24)))["newest backup age"]
    assert (first.status, first.detail) == ("warn", "no complete backup yet: run opsctl backup run")

    assert run_cli("-c", str(root / "opsctl.toml"), "backup", "run").exit_code == 0
    fresh = by_name(verify(root, toml.format(hours=24)))["newest backup age"]
    assert fresh.status == "pass"
    assert fresh.detail.startswith("newest complete backup ")

    stale = by_name(verify(root, toml.format(hours=1e-9)))["newest backup age"]
    assert stale.status == "warn"
    assert "more than backup.max_age_hours (1e-09)" in stale.detail


def test_backup_age_is_not_checked_when_nothing_is_backed_up(root: Path) -> None:
    report = verify(root, "")
    assert "newest backup age" not in by_name(report)
