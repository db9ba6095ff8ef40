"""`opsctl verify` through the real CLI: exit codes, selection, JSON, JUnit, TAP; and `up`."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import CliResult, free_port, kill_supervisord, run_cli, write_project

CALM_DISK = """
[monitoring.disk]
warn_free_percent = 0
fail_free_percent = 0
"""

PASSING = """
[[verify.checks]]
name = "home set"
kind = "env"
variable = "HOME"
tags = ["shell"]

[[verify.checks]]
name = "true runs"
kind = "command"
argv = ["true"]
tags = ["tools"]
"""

MISSING_KEY = """
[keys.openai]
provider = "openai"
env = "VT_ABSENT_OPENAI"
"""

CHECK_KEYS = {"name", "kind", "target", "status", "severity", "duration_ms", "detail", "section"}


def warning_only(port: int) -> str:
    """A service whose port its command never mentions: a warning and nothing worse."""
    return f"""
    [services.api]
    command = "sleep 1000"
    port = {port}
    """


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def project(root: Path, toml: str, *, env: str | None = None) -> str:
    return str(write_project(root, toml + CALM_DISK, env=env))


def verify(config: str, *args: str) -> CliResult:
    return run_cli("-c", config, "verify", *args)


def verify_json(config: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = verify(config, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def read_junit(path: Path) -> ET.Element:
    """Parse a JUnit file this test run wrote itself."""
    return ET.parse(path).getroot()  # noqa: S314 (the file is opsctl's own output)


def names(report: dict[str, Any]) -> list[str]:
    return [check["name"] for check in report["checks"]]


# exit codes


def test_verify_all_passing_exits_0(root: Path) -> None:
    """A ready project exits 0 and says verify pass."""
    result = verify(project(root, PASSING))
    assert result.exit_code == 0, result.output
    assert "verify pass" in result.stdout
    assert "home set" in result.stdout


def test_verify_failed_check_exits_1_and_names_it(root: Path) -> None:
    """A failed check exits 1; the table names it and its detail."""
    result = verify(project(root, PASSING + MISSING_KEY))
    assert result.exit_code == 1
    assert "verify fail" in result.stdout
    assert "key openai" in result.stdout
    assert "VT_ABSENT_OPENAI is not set" in result.stdout


def test_verify_warnings_only_exits_0_without_strict(root: Path) -> None:
    """Only warnings: exit 0 without --strict."""
    config = project(root, warning_only(free_port()))
    code, report = verify_json(config)
    assert code == 0
    assert report["status"] == "pass"
    assert report["summary"]["warn"] == 1
    assert report["strict"] is False


def test_verify_warnings_only_exits_3_with_strict(root: Path) -> None:
    """Only warnings: exit 3 with --strict."""
    config = project(root, warning_only(free_port()))
    assert verify(config, "--strict").exit_code == 3
    code, report = verify_json(config, "--strict")
    assert code == 3
    assert report["strict"] is True


def test_verify_strict_from_config_exits_3_on_warnings(root: Path) -> None:
    """[verify] strict = true makes warnings exit 3 without the flag."""
    config = project(root, warning_only(free_port()) + "\n[verify]\nstrict = true\n")
    code, report = verify_json(config)
    assert code == 3
    assert report["strict"] is True


def test_verify_strict_with_failure_still_exits_1(root: Path) -> None:
    """A failure exits 1 even with --strict and warnings present."""
    config = project(root, warning_only(free_port()) + MISSING_KEY)
    assert verify(config, "--strict").exit_code == 1


def test_verify_strict_counts_failed_warning_severity_check_as_warning(root: Path) -> None:
    """A failed check of severity warning is a warning: --strict exits 3, else 0."""
    config = project(
        root,
        """
        [[verify.checks]]
        name = "optional flag"
        kind = "file"
        path = "feature.flag"
        severity = "warning"
        """,
    )
    assert verify(config).exit_code == 0
    assert verify(config, "--strict").exit_code == 3


def test_verify_invalid_config_exits_2_naming_the_file(root: Path) -> None:
    """A config with an unknown key exits 2 naming the file, and runs no check."""
    config = project(root, "[verify]\nstrictt = true\n")
    result = verify(config, "--json")
    assert result.exit_code == 2
    assert "opsctl.toml" in result.stderr
    assert result.stdout == ""


# selection


def test_verify_only_by_name_section_and_tag(root: Path) -> None:
    """--only selects by check name, by section and by tag, and can be repeated."""
    config = project(root, PASSING + MISSING_KEY)
    code, report = verify_json(config, "--only", "home set")
    assert (code, names(report)) == (0, ["home set"])
    code, report = verify_json(config, "--only", "keys")
    assert (code, names(report)) == (1, ["key openai"])
    code, report = verify_json(config, "--only", "tools")
    assert (code, names(report)) == (0, ["true runs"])
    _, report = verify_json(config, "--only", "tools", "--only", "shell")
    assert names(report) == ["home set", "true runs"]


def test_verify_skip_by_name_section_and_tag(root: Path) -> None:
    """--skip leaves out by name, section or tag; skipping the failure makes verify pass."""
    config = project(root, PASSING + MISSING_KEY)
    code, report = verify_json(config, "--skip", "key openai")
    assert code == 0
    assert "key openai" not in names(report)
    code, report = verify_json(config, "--skip", "keys", "--skip", "checks")
    assert code == 0
    assert {check["section"] for check in report["checks"]} == {"config", "files", "disk"}
    _, report = verify_json(config, "--skip", "builtin")
    assert names(report) == ["home set", "true runs"]


def test_verify_only_matching_nothing_exits_2_listing_sections(root: Path) -> None:
    """--only that matches no check exits 2 with a message listing the sections."""
    config = project(root, PASSING)
    result = verify(config, "--only", "nothing-like-this")
    assert result.exit_code == 2
    assert "nothing-like-this" in result.stderr
    for label in ("config", "disk", "checks", "builtin", "shell", "tools"):
        assert label in result.stderr
    assert "verify" not in result.stdout


# JSON


def test_verify_json_is_one_document_with_the_documented_shape(root: Path) -> None:
    """--json prints exactly one JSON document: the report with every documented field."""
    config = project(root, PASSING + MISSING_KEY)
    result = verify(config, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    assert {"status", "checks", "summary", "started_at", "duration_ms"} <= set(report)
    assert report["status"] == "fail"
    assert set(report["summary"]) == {"pass", "warn", "fail", "skip"}
    assert sum(report["summary"].values()) == len(report["checks"])
    assert report["summary"]["fail"] == 1
    assert report["started_at"].endswith("Z")
    started = datetime.fromisoformat(report["started_at"].replace("Z", "+00:00"))
    assert started.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60
    assert isinstance(report["duration_ms"], int)
    assert report["duration_ms"] >= 0
    for check in report["checks"]:
        assert {*CHECK_KEYS, "tags"} <= set(check)
        assert check["status"] in {"pass", "warn", "fail", "skip"}
        assert check["severity"] in {"error", "warning"}
        assert isinstance(check["duration_ms"], int)
        assert isinstance(check["tags"], list)
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name["home set"]["tags"] == ["shell"]
    assert by_name["home set"]["kind"] == "env"
    assert by_name["key openai"]["section"] == "keys"
    assert by_name["key openai"]["status"] == "fail"


def test_verify_json_passing_report_status_is_pass(root: Path) -> None:
    """A ready project's JSON report has status pass and no failures."""
    code, report = verify_json(project(root, PASSING))
    assert code == 0
    assert report["status"] == "pass"
    assert report["summary"]["fail"] == 0


def test_verify_never_prints_a_secret_value_in_full(root: Path, tmp_path: Path) -> None:
    """A badly formed value is masked in the table, JSON, TAP and JUnit outputs."""
    value = "live-0123456789-abcdefXYZ"
    config = project(
        root,
        """
        [[verify.checks]]
        kind = "env"
        variable = "VT_SERVICE_VALUE"
        pattern = "test-[0-9]+"

        [keys.openai]
        provider = "openai"
        env = "VT_SERVICE_VALUE"
        """,
        env=f"VT_SERVICE_VALUE={value}\n",
    )
    junit = tmp_path / "out" / "junit.xml"
    as_json = verify(config, "--json")
    details = " ".join(check["detail"] for check in json.loads(as_json.stdout)["checks"])
    outputs = [
        verify(config).output,
        details,
        verify(config, "--format", "tap", "--junit", str(junit)).output,
        junit.read_text(),
    ]
    for text in outputs:
        assert "live…YZ" in text
    for text in [*outputs, as_json.output]:
        assert value not in text
        assert "0123456789" not in text


def test_verify_quiet_table_shows_only_problems(root: Path) -> None:
    """-q lists only failed and warning checks."""
    result = run_cli("-q", "-c", project(root, PASSING + MISSING_KEY), "verify")
    assert result.exit_code == 1
    assert "key openai" in result.stdout
    assert "home set" not in result.stdout
    assert "config valid" not in result.stdout


def test_verify_table_shows_attempts_of_a_retried_check(root: Path) -> None:
    """A check that needed several attempts says so in the table."""
    config = project(
        root,
        f"""
        [[verify.checks]]
        name = "never up"
        kind = "tcp"
        port = {free_port()}
        retries = 2
        retry_delay_seconds = 0.05
        """,
    )
    result = verify(config, "--only", "never up")
    assert result.exit_code == 1
    assert "(after 3 attempts)" in result.stdout


# JUnit


MARKUP_OUTPUT = """printf '%s\\n' '<error code="7"> & it'"'"'s broken </error>'; exit 1"""


def junit_project(root: Path) -> str:
    return project(
        root,
        PASSING
        + MISSING_KEY
        + warning_only(free_port())
        + f"""
        [[verify.checks]]
        name = 'markup <"&">'
        kind = "command"
        argv = ["sh", "-c", {json.dumps(MARKUP_OUTPUT)}]

        [keys.hf]
        provider = "huggingface"
        env = "VT_ABSENT_HF"
        required = false
        """,
    )


def test_verify_junit_file_structure_and_counts(root: Path, tmp_path: Path) -> None:
    """--junit writes a <testsuites> whose totals equal its suites' sums, and one case per
    check with classname, name and time.
    """
    config = junit_project(root)
    out = tmp_path / "reports" / "verify.xml"
    code, report = verify_json(config, "--junit", str(out))
    assert code == 1
    top = read_junit(out)
    assert top.tag == "testsuites"
    suites = top.findall("testsuite")
    assert [suite.get("name") for suite in suites] == list(
        dict.fromkeys(check["section"] for check in report["checks"])
    )
    for attribute in ("tests", "failures", "errors", "skipped"):
        assert int(top.get(attribute, "x")) == sum(int(s.get(attribute, "x")) for s in suites)
    float(top.get("time", "x"))
    assert int(top.get("tests", "x")) == len(report["checks"])
    for suite in suites:
        for attribute in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp"):
            assert suite.get(attribute) is not None, attribute
        datetime.fromisoformat(suite.get("timestamp", "x"))
        float(suite.get("time", "x"))
        assert int(suite.get("tests", "x")) == len(suite.findall("testcase"))
    testcases = list(top.iter("testcase"))
    expected = [
        check["name"]
        for suite in suites
        for check in report["checks"]
        if check["section"] == suite.get("name")
    ]
    assert [case.get("name") for case in testcases] == expected
    for case in testcases:
        assert case.get("classname", "").startswith("opsctl.verify.")
        assert float(case.get("time", "x")) >= 0


def test_verify_junit_failures_skips_and_warnings(root: Path, tmp_path: Path) -> None:
    """Failed checks carry <failure message>, skipped ones <skipped>; warnings are failures
    only with --strict.
    """
    config = junit_project(root)
    out = tmp_path / "verify.xml"
    _, report = verify_json(config, "--junit", str(out))
    by_name = {check["name"]: check for check in report["checks"]}
    cases = {case.get("name"): case for case in read_junit(out).iter("testcase")}

    failure = cases["key openai"].find("failure")
    assert failure is not None
    assert failure.get("message") == by_name["key openai"]["detail"]
    skipped = cases["key hf"].find("skipped")
    assert skipped is not None
    assert cases["key hf"].find("failure") is None
    assert cases["api port used"].find("failure") is None
    assert cases["home set"].find("failure") is None

    verify(config, "--strict", "--junit", str(out))
    strict_cases = {case.get("name"): case for case in read_junit(out).iter("testcase")}
    warned = strict_cases["api port used"].find("failure")
    assert warned is not None
    assert warned.get("type") == "warn"
    assert strict_cases["home set"].find("failure") is None


def test_verify_junit_is_well_formed_with_markup_in_details(root: Path, tmp_path: Path) -> None:
    """Details holding <, &, > and quotes leave the JUnit file well-formed, text intact."""
    config = junit_project(root)
    out = tmp_path / "verify.xml"
    _, report = verify_json(config, "--junit", str(out))
    detail = next(c["detail"] for c in report["checks"] if c["name"] == 'markup <"&">')
    assert '<error code="7"> & it\'s broken </error>' in detail
    case = next(c for c in read_junit(out).iter("testcase") if c.get("name") == 'markup <"&">')
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == detail


def test_verify_junit_is_written_atomically(root: Path, tmp_path: Path) -> None:
    """The JUnit file replaces the old one whole, leaving no temporary file beside it."""
    folder = tmp_path / "ci"
    folder.mkdir()
    out = folder / "junit.xml"
    out.write_text("stale, not xml")
    config = junit_project(root)
    verify(config, "--junit", str(out))
    assert sorted(path.name for path in folder.iterdir()) == ["junit.xml"]
    read_junit(out)
    verify(config, "--only", "config", "--junit", str(out))
    assert sorted(path.name for path in folder.iterdir()) == ["junit.xml"]
    assert read_junit(out).get("tests") == "1"
    assert out.stat().st_mode & 0o777 == 0o644


def test_verify_junit_with_json_keeps_stdout_one_document(root: Path, tmp_path: Path) -> None:
    """--junit with --json still prints one JSON document, and the file holds the same checks."""
    out = tmp_path / "verify.xml"
    result = verify(project(root, PASSING), "--json", "--junit", str(out))
    report = json.loads(result.stdout)
    assert int(read_junit(out).get("tests", "x")) == len(report["checks"])


# TAP


def test_verify_tap_output(root: Path) -> None:
    """--format tap prints the TAP header, a plan of 1..N, numbered lines, SKIP and YAML."""
    config = junit_project(root)
    _, report = verify_json(config)
    result = verify(config, "--format", "tap")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "TAP version 13"
    count = len(report["checks"])
    assert lines[1] == f"1..{count}"
    tests = [line for line in lines if re.match(r"^(ok|not ok) \d+ - ", line)]
    assert len(tests) == count
    numbers = [int(line.split(" - ")[0].split()[-1]) for line in tests]
    assert numbers == list(range(1, count + 1))

    skip = next(line for line in tests if "key hf" in line)
    assert skip.startswith("ok ")
    assert "# SKIP" in skip
    failed = next(line for line in lines if line.startswith("not ok") and "key openai" in line)
    after = lines[lines.index(failed) + 1 :]
    assert after[0] == "  ---"
    end = after.index("  ...")
    assert "  status: fail" in after[:end]
    assert any(line.startswith("  message: ") for line in after[:end])
    warned = next(line for line in tests if "api port used" in line)
    assert warned.startswith("ok ")


def test_verify_tap_with_strict_marks_warnings_not_ok(root: Path) -> None:
    """With --strict, a warning is a not ok line and verify exits 3."""
    config = project(root, warning_only(free_port()))
    result = verify(config, "--format", "tap", "--strict")
    assert result.exit_code == 3
    assert any(
        line.startswith("not ok") and "api port used" in line for line in result.stdout.splitlines()
    )


# up


def up_project(root: Path) -> str:
    return project(
        root,
        """
        [services.sleeper]
        command = "sleep 1000"
        start_seconds = 0
        """
        + MISSING_KEY,
    )


def test_up_refuses_to_start_when_verify_fails(root: Path, stack_dirs: list[Path]) -> None:
    """up exits 1 before starting anything when verify fails, and points to --skip-verify."""
    config = up_project(root)
    stack_dirs.append(root / ".opsctl")
    try:
        result = run_cli("-c", config, "up")
        assert result.exit_code == 1
        assert "Refusing to start" in result.stderr
        assert "--skip-verify" in result.stderr
        assert "key openai" in result.stdout
        assert not (root / ".opsctl" / "run" / "supervisord.pid").exists()
    finally:
        run_cli("-c", config, "down")
        kill_supervisord(root / ".opsctl")


def test_up_json_refusal_reports_the_verify_result(root: Path, stack_dirs: list[Path]) -> None:
    """up --json that refuses prints one JSON document with ok false and the verify report."""
    config = up_project(root)
    stack_dirs.append(root / ".opsctl")
    try:
        result = run_cli("-c", config, "up", "--json")
        assert result.exit_code == 1
        data = json.loads(result.stdout)
        assert data["ok"] is False
        assert data["services"] == []
        assert data["verify"]["status"] == "fail"
        assert not (root / ".opsctl" / "run" / "supervisord.pid").exists()
    finally:
        run_cli("-c", config, "down")
        kill_supervisord(root / ".opsctl")


def test_up_skip_verify_starts_and_says_so(root: Path, stack_dirs: list[Path]) -> None:
    """up --skip-verify starts despite a failing verify and says on stderr it skipped it;
    verify then checks the running stack's supervisord.conf.
    """
    config = up_project(root)
    state = root / ".opsctl"
    stack_dirs.append(state)
    try:
        result = run_cli("-c", config, "up", "--skip-verify")
        assert result.exit_code == 0, result.output
        assert "Skipping readiness verification" in result.stderr
        assert (state / "run" / "supervisord.pid").exists()
        status = json.loads(run_cli("-c", config, "status", "--json").stdout)
        assert status["services"][0]["state"] == "RUNNING"

        code, report = verify_json(config, "--only", "files")
        conf = next(c for c in report["checks"] if c["name"] == "supervisord.conf up to date")
        assert conf["status"] == "pass"
        assert conf["severity"] == "warning"
        assert code == 0
    finally:
        down = run_cli("-c", config, "down")
        kill_supervisord(state)
    assert down.exit_code == 0, down.output
