"""`opsctl verify --push-gateway / --textfile` through the real CLI and a real Pushgateway."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.pushgateway import Pushgateway
from tests.support import free_port, run_cli, write_project

CHECKS = """
[monitoring.disk]
warn_free_percent = 0
fail_free_percent = 0

[[verify.checks]]
name = "home set"
kind = "env"
variable = "HOME"

[[verify.checks]]
name = "true runs"
kind = "command"
argv = ["true"]
"""

FAILING = """
[[verify.checks]]
name = "false runs"
kind = "command"
argv = ["false"]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_verify_pushes_its_verdict_to_the_gateway(root: Path, pushgateway: Pushgateway) -> None:
    """A passing run pushes success 1, the counts per status and a timestamp."""
    config = str(write_project(root, CHECKS))

    result = run_cli("-c", config, "verify", "--json", "--push-gateway", pushgateway.url)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (success,) = pushgateway.samples("opsctl_verify_success")
    assert success.value == 1
    assert success.labels == {"job": "verify", "instance": socket.gethostname()}
    counts = {s.labels["status"]: s.value for s in pushgateway.samples("opsctl_verify_checks")}
    assert counts == {status: float(n) for status, n in report["summary"].items()}
    assert counts["pass"] >= 2
    (stamp,) = pushgateway.samples("opsctl_verify_last_run_timestamp_seconds")
    assert stamp.value > 1_700_000_000


def test_failing_verify_pushes_success_0_and_keeps_exit_1(
    root: Path, pushgateway: Pushgateway
) -> None:
    """A failed check is pushed as success 0 and a fail count; the exit code stays 1."""
    config = str(write_project(root, CHECKS + FAILING))

    result = run_cli("-c", config, "verify", "--push-gateway", pushgateway.url)

    assert result.exit_code == 1
    assert [s.value for s in pushgateway.samples("opsctl_verify_success")] == [0]
    counts = {s.labels["status"]: s.value for s in pushgateway.samples("opsctl_verify_checks")}
    assert counts["fail"] == 1


def test_gateway_and_textfile_default_from_the_monitoring_section(
    root: Path, pushgateway: Pushgateway
) -> None:
    """Without options, [monitoring].pushgateway_url and textfile_dir (relative to the
    project) are used.
    """
    (root / "textfiles").mkdir()
    monitoring = (
        f'[monitoring]\npushgateway_url = "{pushgateway.url}"\ntextfile_dir = "textfiles"\n'
    )
    config = str(write_project(root, monitoring + CHECKS))

    result = run_cli("-c", config, "verify", "-q")

    assert result.exit_code == 0, result.output
    assert [s.value for s in pushgateway.samples("opsctl_verify_success")] == [1]
    text = (root / "textfiles" / "opsctl_verify.prom").read_text()
    names = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    assert {"opsctl_verify_success", "opsctl_verify_checks"} <= names


def test_unreachable_gateway_turns_a_pass_into_exit_1_with_a_clear_message(root: Path) -> None:
    """Publishing is part of the job: a refused push after a pass exits 1, naming the URL."""
    config = str(write_project(root, CHECKS))
    url = f"http://ops:topsecret-pw@127.0.0.1:{free_port()}"

    result = run_cli("-c", config, "verify", "--json", "--push-gateway", url)

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "pass"
    assert "Pushgateway at http://127.0.0.1:" in result.stderr
    assert "refused" in result.stderr
    assert "topsecret" not in result.output
    assert "Traceback" not in result.output


def test_unreachable_gateway_after_a_failed_verify_keeps_exit_1(root: Path) -> None:
    """A failed verify keeps its own exit code and still reports the publishing problem."""
    config = str(write_project(root, CHECKS + FAILING))

    result = run_cli("-c", config, "verify", "--push-gateway", f"http://127.0.0.1:{free_port()}")

    assert result.exit_code == 1
    assert "refused" in result.stderr


def test_malformed_gateway_url_exits_2_before_any_check(root: Path) -> None:
    """A URL that is not http(s) is a usage error; no check runs."""
    config = str(write_project(root, CHECKS))

    result = run_cli("-c", config, "verify", "--json", "--push-gateway", "ftp://127.0.0.1:1")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Pushgateway URL 'ftp://127.0.0.1:1' is not valid" in result.stderr


def test_missing_textfile_folder_exits_1_naming_it(root: Path) -> None:
    """--textfile into a folder that does not exist fails clearly and creates nothing."""
    config = str(write_project(root, CHECKS))
    missing = root / "nope"

    result = run_cli("-c", config, "verify", "-q", "--textfile", str(missing))

    assert result.exit_code == 1
    assert f"Textfile folder '{missing}' does not exist" in result.stderr
    assert not missing.exists()
