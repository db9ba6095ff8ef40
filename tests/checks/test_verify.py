"""User checks from [[verify.checks]], retries, deadlines and selection, through run_verify."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsctl.checks import Check, CheckResult, Outcome, Report
from opsctl.checks.verify import run_verify, select_checks, verify_checks, verify_exit_code
from opsctl.config import Project, load_project
from opsctl.errors import ExitCode, UsageError
from opsctl.runtime import get_runtime
from opsctl.secrets import MASK
from tests.support import free_port, write_project

CALM_DISK = """
[monitoring.disk]
warn_free_percent = 0
fail_free_percent = 0
"""

SLOW_SECONDS = 0.4


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        routes: dict[str, tuple[int, bytes]] = {
            "/ok": (200, b"service ready, build 1234"),
            "/busy": (503, b"<html>busy</html>"),
            "/json": (
                200,
                json.dumps(
                    {"status": {"state": "ready", "workers": 4}, "shards": ["a", "b"]}
                ).encode(),
            ),
            "/slow": (200, b"late but fine"),
        }
        if self.path == "/slow":
            time.sleep(SLOW_SECONDS)
        status, body = routes.get(self.path, (404, b"no such page"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    """A local HTTP server on 127.0.0.1; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def load(root: Path, checks_toml: str, *, env: str | None = None) -> Project:
    return load_project(write_project(root, checks_toml + CALM_DISK, env=env))


def user_checks(root: Path, checks_toml: str, *, env: str | None = None) -> dict[str, CheckResult]:
    """Run only the [[verify.checks]] of the config; return results by name."""
    project = load(root, checks_toml, env=env)
    report = run_verify(project, get_runtime(project), only=["checks"])
    return {result.name: result for result in report.checks}


def one(root: Path, check_toml: str, *, env: str | None = None) -> CheckResult:
    """Run the single [[verify.checks]] entry ``check_toml`` (without its header)."""
    (result,) = user_checks(root, "[[verify.checks]]\n" + check_toml, env=env).values()
    return result


# file


def test_file_check_existing_file_passes_with_mode_and_size(root: Path) -> None:
    """An existing file passes, reporting its mode and size."""
    target = root / "settings.ini"
    target.write_text("[main]\n")
    target.chmod(0o640)
    result = one(root, 'kind = "file"\npath = "settings.ini"\n')
    assert result.status == "pass"
    assert result.detail == "present, mode 0640, 7 bytes"
    assert result.target == str(target)
    assert result.name == "file settings.ini"
    assert result.section == "checks"
    assert result.kind == "file"


def test_file_check_missing_file_fails(root: Path) -> None:
    """A missing file fails."""
    result = one(root, 'kind = "file"\npath = "nowhere.txt"\n')
    assert (result.status, result.detail) == ("fail", "does not exist")


def test_file_check_exists_false(root: Path) -> None:
    """exists = false passes when absent and fails when present."""
    assert one(root, 'kind = "file"\npath = "stop.flag"\nexists = false\n').status == "pass"
    (root / "stop.flag").touch()
    result = one(root, 'kind = "file"\npath = "stop.flag"\nexists = false\n')
    assert (result.status, result.detail) == ("fail", "exists, but must not")


def test_file_check_mode(root: Path) -> None:
    """A file passes with the expected mode and fails with another, naming both."""
    target = root / "secret.key"
    target.write_text("k")
    target.chmod(0o600)
    assert one(root, f'kind = "file"\npath = "{target}"\nmode = "0600"\n').status == "pass"
    assert one(root, f'kind = "file"\npath = "{target}"\nmode = "600"\n').status == "pass"
    target.chmod(0o644)
    result = one(root, f'kind = "file"\npath = "{target}"\nmode = "0600"\n')
    assert (result.status, result.detail) == ("fail", "mode 0644, expected 0600")


def test_file_check_owner_by_name_or_uid(root: Path) -> None:
    """The owner matches by user name or by uid; another owner fails."""
    target = root / "owned"
    target.write_text("x")
    uid = os.stat(target).st_uid
    name = pwd.getpwuid(uid).pw_name
    assert one(root, f'kind = "file"\npath = "owned"\nowner = "{name}"\n').status == "pass"
    assert one(root, f'kind = "file"\npath = "owned"\nowner = "{uid}"\n').status == "pass"
    result = one(root, 'kind = "file"\npath = "owned"\nowner = "no-such-owner"\n')
    assert (result.status, result.detail) == ("fail", f"owned by {name}, expected no-such-owner")


def test_file_check_contains(root: Path) -> None:
    """A file passes when it contains the text and fails when it does not."""
    (root / "app.conf").write_text("mode=production\nworkers=4\n")
    ok = one(root, 'kind = "file"\npath = "app.conf"\ncontains = "mode=production"\n')
    assert ok.status == "pass"
    bad = one(root, 'kind = "file"\npath = "app.conf"\ncontains = "mode=debug"\n')
    assert (bad.status, bad.detail) == ("fail", "does not contain 'mode=debug'")


def test_file_check_contains_on_a_folder_fails(root: Path) -> None:
    """contains on a folder fails: a folder holds no text."""
    (root / "folder").mkdir()
    result = one(root, 'kind = "file"\npath = "folder"\ncontains = "x"\n')
    assert result.status == "fail"
    assert "not a regular file" in result.detail


# env


def test_env_check_set_in_env_file_passes_masked(root: Path) -> None:
    """A variable set in .env passes; its value is masked."""
    result = one(
        root,
        'kind = "env"\nvariable = "VT_SERVICE_VALUE"\n',
        env="VT_SERVICE_VALUE=abcdefghijklmnop\n",
    )
    assert (result.status, result.detail) == ("pass", "set (abcd…op)")
    assert result.target == "VT_SERVICE_VALUE"
    assert result.name == "env VT_SERVICE_VALUE"


def test_env_check_set_in_process_environment_passes(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable set only in the process environment passes."""
    monkeypatch.setenv("VT_FROM_PROCESS", "short")
    result = one(root, 'kind = "env"\nvariable = "VT_FROM_PROCESS"\n')
    assert (result.status, result.detail) == ("pass", f"set ({MASK})")


def test_env_check_not_set_fails(root: Path) -> None:
    """A variable set nowhere fails."""
    result = one(root, 'kind = "env"\nvariable = "VT_NOT_SET_ANYWHERE"\n')
    assert (result.status, result.detail) == ("fail", "not set")


def test_env_check_set_false(root: Path) -> None:
    """set = false passes when the variable is unset and fails when it is set."""
    spec = 'kind = "env"\nvariable = "VT_DEBUG_MODE"\nset = false\n'
    assert one(root, spec).status == "pass"
    assert one(root, spec, env="VT_DEBUG_MODE=1\n").status == "fail"


def test_env_check_pattern_match_passes(root: Path) -> None:
    """A value matching the whole pattern passes."""
    result = one(
        root,
        'kind = "env"\nvariable = "VT_REGION"\npattern = "[a-z]{2}-[a-z]+-[0-9]"\n',
        env="VT_REGION=eu-west-1\n",
    )
    assert result.status == "pass"


def test_env_check_pattern_mismatch_fails_without_printing_the_value(root: Path) -> None:
    """A value not matching the pattern fails; the detail shows it only masked."""
    value = "live-0123456789-abcdefXYZ"
    result = one(
        root,
        'kind = "env"\nvariable = "VT_SERVICE_VALUE"\npattern = "test-[0-9]+"\n',
        env=f"VT_SERVICE_VALUE={value}\n",
    )
    assert result.status == "fail"
    assert "does not match /test-[0-9]+/" in result.detail
    assert "live…YZ" in result.detail
    assert value not in result.detail
    assert "0123456789" not in result.detail


def test_env_check_pattern_must_match_the_whole_value(root: Path) -> None:
    """A pattern matching only part of the value fails."""
    result = one(
        root,
        'kind = "env"\nvariable = "VT_PORT_TEXT"\npattern = "[0-9]+"\n',
        env="VT_PORT_TEXT=8080x\n",
    )
    assert result.status == "fail"


def test_env_check_not_secret_shows_the_value(root: Path) -> None:
    """With secret = false the value is shown as it is."""
    result = one(
        root,
        'kind = "env"\nvariable = "VT_LOG_LEVEL"\nsecret = false\n',
        env="VT_LOG_LEVEL=info\n",
    )
    assert result.detail == "set ('info')"


# tcp


def test_tcp_check_listening_port_passes(root: Path, silent_port: int) -> None:
    """A tcp check of a port that accepts connections passes."""
    result = one(root, f'kind = "tcp"\nport = {silent_port}\n')
    assert result.status == "pass"
    assert result.target == f"127.0.0.1:{silent_port}"


def test_tcp_check_closed_port_fails(root: Path) -> None:
    """A tcp check of a port nothing listens on fails, naming the address."""
    port = free_port()
    result = one(root, f'kind = "tcp"\nport = {port}\n')
    assert result.status == "fail"
    assert f"127.0.0.1:{port}" in result.detail
    assert result.attempts == 1


# http


def test_http_check_expected_status_passes(root: Path, http_base: str) -> None:
    """An endpoint answering 200 passes a default http check."""
    result = one(root, f'kind = "http"\nurl = "{http_base}/ok"\n')
    assert result.status == "pass"
    assert result.detail.startswith("status 200 in ")
    assert result.target == f"GET {http_base}/ok"


def test_http_check_other_status_fails_with_body_excerpt(root: Path, http_base: str) -> None:
    """Another status fails, naming it, what was expected and the start of the body."""
    result = one(root, f'kind = "http"\nurl = "{http_base}/busy"\n')
    assert result.status == "fail"
    assert result.detail == "status 503, expected 200: <html>busy</html>"


def test_http_check_expect_status_list_and_single_value(root: Path, http_base: str) -> None:
    """expect_status accepts a list of codes or one code."""
    listed = one(root, f'kind = "http"\nurl = "{http_base}/busy"\nexpect_status = [200, 503]\n')
    assert listed.status == "pass"
    single = one(root, f'kind = "http"\nurl = "{http_base}/missing"\nexpect_status = 404\n')
    assert single.status == "pass"


def test_http_check_body_contains(root: Path, http_base: str) -> None:
    """body_contains passes when the body holds the text and fails when it does not."""
    url = f"{http_base}/ok"
    assert one(root, f'kind = "http"\nurl = "{url}"\nbody_contains = "ready"\n').status == "pass"
    result = one(root, f'kind = "http"\nurl = "{url}"\nbody_contains = "degraded"\n')
    assert (result.status, result.detail) == ("fail", "status 200, but the body lacks 'degraded'")


def test_http_check_body_regex(root: Path, http_base: str) -> None:
    """body_regex passes when the body matches and fails when it does not."""
    url = f"{http_base}/ok"
    passing = one(root, f'kind = "http"\nurl = "{url}"\nbody_regex = \'build [0-9]{{4}}$\'\n')
    assert passing.status == "pass"
    failing = one(root, f'kind = "http"\nurl = "{url}"\nbody_regex = \'^error\'\n')
    assert failing.status == "fail"
    assert "does not match /^error/" in failing.detail


def test_http_check_json_field_equals(root: Path, http_base: str) -> None:
    """json_field walks objects and lists; json_equals compares the value found."""
    url = f"{http_base}/json"
    checks = user_checks(
        root,
        f"""
        [[verify.checks]]
        name = "state ready"
        kind = "http"
        url = "{url}"
        json_field = "status.state"
        json_equals = "ready"

        [[verify.checks]]
        name = "workers"
        kind = "http"
        url = "{url}"
        json_field = "status.workers"
        json_equals = 4

        [[verify.checks]]
        name = "second shard"
        kind = "http"
        url = "{url}"
        json_field = "shards.1"
        json_equals = "b"

        [[verify.checks]]
        name = "field present"
        kind = "http"
        url = "{url}"
        json_field = "status"

        [[verify.checks]]
        name = "wrong value"
        kind = "http"
        url = "{url}"
        json_field = "status.state"
        json_equals = "stopped"

        [[verify.checks]]
        name = "no such field"
        kind = "http"
        url = "{url}"
        json_field = "status.uptime"

        [[verify.checks]]
        name = "not json"
        kind = "http"
        url = "{http_base}/ok"
        json_field = "status"
        """,
    )
    for name in ("state ready", "workers", "second shard", "field present"):
        assert checks[name].status == "pass", (name, checks[name].detail)
    assert checks["wrong value"].status == "fail"
    assert "'ready', expected 'stopped'" in checks["wrong value"].detail
    assert checks["no such field"].status == "fail"
    assert "no field 'status.uptime'" in checks["no such field"].detail
    assert checks["not json"].status == "fail"
    assert "not JSON" in checks["not json"].detail


def test_http_check_max_latency(root: Path, http_base: str) -> None:
    """A response slower than max_latency_ms fails; within the bound it passes."""
    url = f"{http_base}/slow"
    checks = user_checks(
        root,
        f"""
        [[verify.checks]]
        name = "tight"
        kind = "http"
        url = "{url}"
        max_latency_ms = 100

        [[verify.checks]]
        name = "loose"
        kind = "http"
        url = "{url}"
        max_latency_ms = 5000
        """,
    )
    assert checks["tight"].status == "fail"
    assert "over the 100 ms bound" in checks["tight"].detail
    assert checks["tight"].duration_ms >= SLOW_SECONDS * 1000
    assert checks["loose"].status == "pass"


def test_http_check_refused_connection_fails(root: Path) -> None:
    """An http check of a port nothing listens on fails with the request error."""
    result = one(root, f'kind = "http"\nurl = "http://127.0.0.1:{free_port()}/"\n')
    assert result.status == "fail"
    assert result.detail.startswith("request failed")


def test_http_endpoint_that_never_answers_fails_at_its_timeout(
    root: Path, silent_port: int
) -> None:
    """An endpoint that accepts and never answers fails at the check's timeout, not later."""
    project = load(
        root,
        f"""
        [[verify.checks]]
        kind = "http"
        url = "http://127.0.0.1:{silent_port}/health"
        timeout_seconds = 0.6
        """,
    )
    runtime = get_runtime(project)
    begin = time.monotonic()
    report = run_verify(project, runtime, only=["checks"])
    elapsed = time.monotonic() - begin
    (result,) = report.checks
    assert result.status == "fail"
    assert "0.6 s" in result.detail
    assert 0.55 <= elapsed < 1.3
    assert 550 <= result.duration_ms < 1200


# command


def test_command_check_exit_code(root: Path) -> None:
    """A command passes on the expected exit code and fails on another, quoting its output."""
    checks = user_checks(
        root,
        """
        [[verify.checks]]
        name = "true"
        kind = "command"
        argv = ["true"]

        [[verify.checks]]
        name = "exit 3"
        kind = "command"
        argv = ["sh", "-c", "echo broken pipe; exit 3"]

        [[verify.checks]]
        name = "exit 3 expected"
        kind = "command"
        argv = ["sh", "-c", "exit 3"]
        expect_exit = 3
        """,
    )
    assert (checks["true"].status, checks["true"].detail) == ("pass", "exit code 0")
    assert checks["exit 3"].status == "fail"
    assert checks["exit 3"].detail == "exit code 3, expected 0: broken pipe"
    assert checks["exit 3 expected"].status == "pass"


def test_command_check_output_regex_and_contains(root: Path) -> None:
    """output_regex and output_contains judge the output of a command that exits 0."""
    checks = user_checks(
        root,
        """
        [[verify.checks]]
        name = "regex ok"
        kind = "command"
        argv = ["sh", "-c", "echo 'version 3.11.4'"]
        output_regex = 'version 3\\.1[0-9]'

        [[verify.checks]]
        name = "regex bad"
        kind = "command"
        argv = ["sh", "-c", "echo 'version 2.7.18'"]
        output_regex = 'version 3\\.'

        [[verify.checks]]
        name = "contains bad"
        kind = "command"
        argv = ["sh", "-c", "echo ready"]
        output_contains = "steady"
        """,
    )
    assert checks["regex ok"].status == "pass"
    assert checks["regex bad"].status == "fail"
    assert "does not match /version 3\\./" in checks["regex bad"].detail
    assert checks["contains bad"].status == "fail"
    assert "lacks 'steady'" in checks["contains bad"].detail


def test_command_check_over_its_timeout_is_killed(root: Path) -> None:
    """A command still running at its timeout fails and is killed there."""
    begin = time.monotonic()
    result = one(root, 'kind = "command"\nargv = ["sleep", "30"]\ntimeout_seconds = 0.5\n')
    assert result.status == "fail"
    assert result.detail == "still running after 0.5 s; killed"
    assert time.monotonic() - begin < 2.5


# disk


def test_disk_user_check_thresholds(root: Path) -> None:
    """A user disk check passes above its thresholds and fails under fail_free_percent."""
    usage = shutil.disk_usage(root)
    above = min(100.0 * usage.free / usage.total + 1, 100)
    checks = user_checks(
        root,
        f"""
        [[verify.checks]]
        name = "roomy"
        kind = "disk"
        path = "{root}"
        warn_free_percent = 0
        fail_free_percent = 0

        [[verify.checks]]
        name = "cramped"
        kind = "disk"
        path = "{root}"
        warn_free_percent = 100
        fail_free_percent = {above}

        [[verify.checks]]
        name = "nowhere"
        kind = "disk"
        path = "{root}/no/such/folder"
        """,
    )
    assert checks["roomy"].status == "pass"
    assert checks["cramped"].status == "fail"
    assert f"below {above:g}%" in checks["cramped"].detail
    assert checks["nowhere"].status == "fail"


# retries


def test_retried_tcp_check_passes_once_the_port_listens(root: Path) -> None:
    """A tcp check with retries passes when its port starts listening after a while."""
    port = free_port()
    project = load(
        root,
        f"""
        [[verify.checks]]
        name = "late listener"
        kind = "tcp"
        port = {port}
        retries = 20
        retry_delay_seconds = 0.1
        timeout_seconds = 0.5
        """,
    )
    listening = threading.Event()
    done = threading.Event()

    def listen_later() -> None:
        time.sleep(0.5)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen(4)
            listening.set()
            done.wait(10)

    thread = threading.Thread(target=listen_later, daemon=True)
    thread.start()
    try:
        report = run_verify(project, get_runtime(project), only=["checks"])
    finally:
        done.set()
        thread.join(5)
    (result,) = report.checks
    assert listening.is_set()
    assert result.status == "pass"
    assert result.attempts > 1
    assert result.duration_ms >= 400
    assert report.status == "pass"


def test_retried_check_that_never_gets_ready_fails_after_all_attempts(root: Path) -> None:
    """A check that never passes fails after retries + 1 attempts, with the delays between."""
    port = free_port()
    result = one(
        root,
        f'kind = "tcp"\nport = {port}\nretries = 3\nretry_delay_seconds = 0.1\n',
    )
    assert result.status == "fail"
    assert result.attempts == 4
    assert result.duration_ms >= 300


def test_passing_check_with_retries_makes_one_attempt(root: Path, silent_port: int) -> None:
    """A check that passes at once is not retried."""
    result = one(root, f'kind = "tcp"\nport = {silent_port}\nretries = 5\n')
    assert (result.status, result.attempts) == ("pass", 1)


# concurrency, order, severity


def test_checks_run_concurrently_and_keep_config_order(root: Path) -> None:
    """Six half-second commands finish together, reported in config order."""
    body = "".join(
        f'[[verify.checks]]\nname = "nap {i}"\nkind = "command"\nargv = ["sleep", "0.5"]\n'
        for i in range(6)
    )
    project = load(root, body)
    begin = time.monotonic()
    report = run_verify(project, get_runtime(project), only=["checks"])
    elapsed = time.monotonic() - begin
    assert [result.name for result in report.checks] == [f"nap {i}" for i in range(6)]
    assert all(result.status == "pass" for result in report.checks)
    assert elapsed < 1.5


def test_verify_checks_puts_builtins_first_then_user_checks(root: Path) -> None:
    """verify_checks lists built-in checks first, then the user's in config order."""
    project = load(
        root,
        """
        [[verify.checks]]
        name = "second"
        kind = "env"
        variable = "HOME"
        [[verify.checks]]
        name = "first"
        kind = "env"
        variable = "HOME"
        """,
    )
    names = [check.name for check in verify_checks(project, get_runtime(project))]
    assert names[0] == "config valid"
    assert names[-2:] == ["second", "first"]


def test_failed_error_check_fails_the_report(root: Path) -> None:
    """One failed check of severity error makes the report fail and the exit code 1."""
    project = load(
        root,
        """
        [[verify.checks]]
        kind = "file"
        path = "required.txt"
        """,
    )
    report = run_verify(project, get_runtime(project))
    assert report.status == "fail"
    assert verify_exit_code(report, strict=False) == ExitCode.FAILED


def test_failed_warning_check_leaves_the_report_passing(root: Path) -> None:
    """A failed check of severity warning does not fail the report."""
    project = load(
        root,
        """
        [[verify.checks]]
        kind = "file"
        path = "optional.txt"
        severity = "warning"
        """,
    )
    report = run_verify(project, get_runtime(project))
    assert report.status == "pass"
    assert verify_exit_code(report, strict=False) == ExitCode.OK


def test_report_dict_has_the_documented_shape(root: Path) -> None:
    """The report serialises with status, checks, summary, started_at in UTC and duration."""
    project = load(root, f'[[verify.checks]]\nkind = "tcp"\nport = {free_port()}\ntags = ["net"]\n')
    data = run_verify(project, get_runtime(project)).to_dict()
    assert set(data) == {"status", "checks", "summary", "started_at", "duration_ms"}
    assert data["status"] == "fail"
    assert set(data["summary"]) == {"pass", "warn", "fail", "skip"}
    assert sum(data["summary"].values()) == len(data["checks"])
    assert data["started_at"].endswith("Z")
    user = data["checks"][-1]
    assert user["tags"] == ["net"]
    assert user["section"] == "checks"
    assert user["attempts"] == 1


# selection


def _fake(name: str, section: str, *tags: str) -> Check:
    return Check(
        name=name,
        kind="test",
        target=name,
        probe=lambda _t: Outcome("pass", ""),
        section=section,
        tags=tags,
    )


CANDIDATES = [
    _fake("config valid", "config", "builtin", "config"),
    _fake("key openai", "keys", "builtin", "keys"),
    _fake("api reachable", "checks", "network"),
    _fake("db reachable", "checks", "network", "db"),
    _fake("schema file", "checks"),
]


def _names(checks: list[Check]) -> list[str]:
    return [check.name for check in checks]


def test_select_only_by_name_section_and_tag() -> None:
    """--only keeps checks whose name, section or tag matches, in their order."""
    assert _names(select_checks(CANDIDATES, only=["schema file"])) == ["schema file"]
    assert _names(select_checks(CANDIDATES, only=["keys"])) == ["key openai"]
    assert _names(select_checks(CANDIDATES, only=["network"])) == ["api reachable", "db reachable"]
    assert _names(select_checks(CANDIDATES, only=["builtin", "db"])) == [
        "config valid",
        "key openai",
        "db reachable",
    ]


def test_select_skip_by_name_section_and_tag() -> None:
    """--skip drops checks whose name, section or tag matches."""
    assert "schema file" not in _names(select_checks(CANDIDATES, skip=["schema file"]))
    assert _names(select_checks(CANDIDATES, skip=["checks"])) == ["config valid", "key openai"]
    assert _names(select_checks(CANDIDATES, skip=["network", "builtin"])) == ["schema file"]


def test_select_only_and_skip_together() -> None:
    """--skip applies after --only."""
    assert _names(select_checks(CANDIDATES, only=["checks"], skip=["db"])) == [
        "api reachable",
        "schema file",
    ]


def test_select_without_filters_keeps_everything() -> None:
    """No --only and no --skip keeps every check."""
    assert _names(select_checks(CANDIDATES)) == _names(CANDIDATES)


def test_select_only_matching_nothing_raises_usage_error_listing_sections() -> None:
    """--only matching nothing is a usage error that lists the sections and tags."""
    with pytest.raises(UsageError) as caught:
        select_checks(CANDIDATES, only=["nonsense"])
    message = caught.value.message
    assert "nonsense" in message
    for label in ("checks", "config", "keys", "network", "db", "builtin"):
        assert label in message
    assert caught.value.exit_code == ExitCode.USAGE


def test_run_verify_only_filters_builtin_and_user_checks(root: Path) -> None:
    """run_verify runs only the selected checks."""
    project = load(
        root,
        """
        [[verify.checks]]
        name = "home set"
        kind = "env"
        variable = "HOME"
        tags = ["shell"]
        """,
    )
    runtime = get_runtime(project)
    assert [r.name for r in run_verify(project, runtime, only=["shell"]).checks] == ["home set"]
    assert [r.section for r in run_verify(project, runtime, only=["config"]).checks] == ["config"]
    skipped = run_verify(project, runtime, skip=["builtin"])
    assert [r.name for r in skipped.checks] == ["home set"]


def test_empty_report_summary_is_all_zero() -> None:
    """A report without checks counts zero for every status."""
    from opsctl.checks import utc_now

    report = Report(status="pass", checks=[], started_at=utc_now(), duration_ms=0)
    assert report.summary == {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
