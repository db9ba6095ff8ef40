"""verify's checks that reach other subsystems: keys verified live, the Docker Engine and
image, and the memory bank's activity.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.keys._fake import OPENAI, Reply, fake_provider
from tests.support import run_cli, write_project


def verify_json(config: Path, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = run_cli("-c", str(config), "verify", "--json", *args)
    report = json.loads(result.stdout)
    return result.exit_code, {check["name"]: check for check in report["checks"]}


def test_online_verifies_keys_with_their_provider(tmp_path: Path) -> None:
    """--online sends the key to its provider: valid passes, rejected fails; offline it doesn't."""
    with fake_provider() as provider:
        config = write_project(
            tmp_path,
            f'[keys.OPENAI_API_KEY]\nprovider = "openai"\nbase_url = "{provider.url}"\n',
            env=f"OPENAI_API_KEY={OPENAI}\n",
        )
        code, checks = verify_json(config, "--only", "keys", "--online")
        assert code == 0
        assert checks["key OPENAI_API_KEY"]["status"] == "pass"
        assert [seen.path for seen in provider.seen()] == ["/v1/models"]

        provider.answer(Reply(status=401, body='{"error": "bad key"}'))
        code, checks = verify_json(config, "--only", "keys", "--online")
        assert code == 1
        assert checks["key OPENAI_API_KEY"]["detail"].startswith("invalid")

        code, _ = verify_json(config, "--only", "keys")
        assert code == 0
        assert len(provider.seen()) == 2
    assert OPENAI not in json.dumps(checks)


def test_docker_runtime_checks_engine_and_image(tmp_path: Path) -> None:
    """With the docker runtime, an unreachable engine fails both docker checks."""
    config = write_project(
        tmp_path,
        '[runtime]\nkind = "docker"\nhost = "unix:///nonexistent/docker.sock"\n'
        '[services.a]\ncommand = "sleep 1"\n',
    )
    code, checks = verify_json(config, "--only", "docker")
    assert code == 1
    assert checks["docker engine reachable"]["status"] == "fail"
    assert "unix:///nonexistent/docker.sock" in checks["docker engine reachable"]["detail"]
    assert checks["image present"]["status"] == "fail"


def test_local_runtime_has_no_docker_checks(tmp_path: Path) -> None:
    """The docker checks exist only for the docker runtime."""
    config = write_project(tmp_path, '[services.a]\ncommand = "sleep 1"\n')
    result = run_cli("-c", str(config), "verify", "--only", "docker")
    assert result.exit_code == 2


def test_required_memory_bank_is_active_fresh_or_stale(tmp_path: Path) -> None:
    """A required bank passes when active and fresh, warns when stale, fails when inactive."""
    config = write_project(
        tmp_path, '[memory_bank]\nrequired = true\ntimestamps = "utc"\nstale_after_days = 1\n'
    )
    code, checks = verify_json(config, "--only", "memory-bank")
    assert (code, checks["memory bank active"]["status"]) == (1, "fail")

    assert run_cli("-c", str(config), "memory-bank", "init").exit_code == 0
    code, checks = verify_json(config, "--only", "memory-bank")
    assert (code, checks["memory bank active"]["status"]) == (0, "pass")

    progress = tmp_path / "memory-bank" / "progress.md"
    progress.write_text(progress.read_text() + "\n[2020-01-01 00:00:00] - Long ago\n")
    code, checks = verify_json(config, "--only", "memory-bank", "--strict")
    assert (code, checks["memory bank active"]["status"]) == (3, "warn")
    assert "progress.md" in checks["memory bank active"]["detail"]
