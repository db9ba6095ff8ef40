"""JUnit XML and TAP renderings of verify reports."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from opsctl.checks import CheckResult, Report
from opsctl.checks.formats import to_junit, to_tap

STARTED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def result(
    name: str,
    status: str,
    *,
    section: str = "checks",
    severity: str = "error",
    detail: str = "",
    target: str = "t",
    duration_ms: int = 12,
) -> CheckResult:
    return CheckResult(
        name=name,
        kind="test",
        target=target,
        status=status,  # type: ignore[arg-type]
        severity=severity,
        duration_ms=duration_ms,
        detail=detail or f"{name} is {status}",
        section=section,
    )


def report(*results: CheckResult, status: str = "fail") -> Report:
    return Report(status=status, checks=list(results), started_at=STARTED, duration_ms=1534)


MIXED = report(
    result("config valid", "pass", section="config", duration_ms=1),
    result("env file", "warn", section="files", detail="mode 0644 lets others read it"),
    result("web directory", "fail", section="files", detail="does not exist"),
    result("key hf", "skip", section="keys", detail="VT_HF is not set (optional)"),
    result("api", "pass", duration_ms=250),
    result("cache", "fail", severity="warning", detail="no answer"),
    result("db", "fail", detail="refused", target="127.0.0.1:5432"),
)


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode())  # noqa: S314 (the text is opsctl's own output)


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in root.iter("testcase")}


# JUnit


def test_junit_starts_with_xml_declaration_and_parses() -> None:
    """The JUnit document has an XML declaration and parses."""
    xml = to_junit(MIXED)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    assert parse(xml).tag == "testsuites"


def test_junit_has_one_suite_per_section_in_order() -> None:
    """Each section becomes one test suite, in the order sections first appear."""
    root = parse(to_junit(MIXED))
    assert [suite.get("name") for suite in root.findall("testsuite")] == [
        "config",
        "files",
        "keys",
        "checks",
    ]


def test_junit_root_totals_equal_the_sums_over_suites() -> None:
    """The root's tests, failures, errors and skipped are the sums over its suites."""
    for strict in (False, True):
        root = parse(to_junit(MIXED, strict=strict))
        suites = root.findall("testsuite")
        for attribute in ("tests", "failures", "errors", "skipped"):
            total = sum(int(suite.get(attribute, "x")) for suite in suites)
            assert int(root.get(attribute, "x")) == total, (attribute, strict)
        assert int(root.get("tests", "0")) == len(MIXED.checks)
        assert float(root.get("time", "x")) == 1.534


def test_junit_suite_attributes_and_counts() -> None:
    """Each suite carries name, counts, time and a timestamp; counts match its cases."""
    root = parse(to_junit(MIXED))
    for suite in root.findall("testsuite"):
        for attribute in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp"):
            assert suite.get(attribute) is not None, attribute
        assert suite.get("timestamp") == "2024-05-06T07:08:09"
        suite_cases = suite.findall("testcase")
        assert int(suite.get("tests", "x")) == len(suite_cases)
        assert int(suite.get("failures", "x")) == sum(
            case.find("failure") is not None for case in suite_cases
        )
        assert int(suite.get("skipped", "x")) == sum(
            case.find("skipped") is not None for case in suite_cases
        )
        float(suite.get("time", "x"))
    checks = next(s for s in root.findall("testsuite") if s.get("name") == "checks")
    assert checks.get("time") == f"{(250 + 12 + 12) / 1000:.3f}"


def test_junit_testcase_attributes() -> None:
    """Every test case has a classname naming its section, its check name and a time."""
    root = parse(to_junit(MIXED))
    for suite in root.findall("testsuite"):
        for case in suite.findall("testcase"):
            assert case.get("classname") == f"opsctl.verify.{suite.get('name')}"
            assert case.get("name")
            float(case.get("time", "x"))
    assert cases(root)["api"].get("time") == "0.250"


def test_junit_failed_check_is_a_failure_with_message() -> None:
    """A failed error check is a <failure> whose message is the detail."""
    case = cases(parse(to_junit(MIXED)))["db"]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "refused"
    assert failure.get("type") == "fail"
    assert failure.text == "127.0.0.1:5432: refused"


def test_junit_skipped_check_is_skipped() -> None:
    """A skipped check carries <skipped> with the detail, and no failure."""
    case = cases(parse(to_junit(MIXED)))["key hf"]
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "VT_HF is not set (optional)"
    assert case.find("failure") is None


def test_junit_warnings_pass_without_strict() -> None:
    """Without strict, warnings (and failed warning-severity checks) are not failures."""
    root = parse(to_junit(MIXED))
    for name in ("env file", "cache"):
        case = cases(root)[name]
        assert case.find("failure") is None, name
        out = case.find("system-out")
        assert out is not None
        assert out.text is not None
        assert out.text.startswith("warn: ")
    assert root.get("failures") == "2"


def test_junit_warnings_are_failures_with_strict() -> None:
    """With strict, warnings and failed warning-severity checks become failures."""
    root = parse(to_junit(MIXED, strict=True))
    for name in ("env file", "cache"):
        failure = cases(root)[name].find("failure")
        assert failure is not None, name
        assert failure.get("type") == "warn"
    assert root.get("failures") == "4"
    assert root.get("skipped") == "1"


def test_junit_passing_check_has_system_out_only() -> None:
    """A passing check has no failure or skipped element."""
    case = cases(parse(to_junit(MIXED)))["api"]
    assert case.find("failure") is None
    assert case.find("skipped") is None
    out = case.find("system-out")
    assert out is not None
    assert out.text == "pass: api is pass"


def test_junit_escapes_markup_in_names_details_and_targets() -> None:
    """Details, names and targets with <, &, > and quotes stay well-formed and round-trip."""
    detail = """exit code 1, expected 0: <b a="1">it's & done</b> ]]> \"\""""
    name = "odd <name> & \"quoted\" 'too'"
    target = "sh -c 'echo <x> && exit 1'"
    xml = to_junit(report(result(name, "fail", detail=detail, target=target)))
    case = cases(parse(xml))[name]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == detail
    assert failure.text == f"{target}: {detail}"


def test_junit_of_empty_report_is_valid() -> None:
    """A report without checks renders an empty <testsuites> with zero counts."""
    root = parse(to_junit(report(status="pass")))
    assert root.findall("testsuite") == []
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("0", "0", "0")


# TAP


def tap_lines(text: str) -> list[str]:
    assert text.endswith("\n")
    return text.splitlines()


def test_tap_header_and_plan() -> None:
    """TAP starts with its version line and a plan of 1..N for N checks."""
    lines = tap_lines(to_tap(MIXED))
    assert lines[0] == "TAP version 13"
    assert lines[1] == f"1..{len(MIXED.checks)}"


def test_tap_test_lines_are_numbered_in_order() -> None:
    """Every check has one ok / not ok line, numbered 1..N in report order."""
    lines = tap_lines(to_tap(MIXED))
    tests = [line for line in lines if re.match(r"^(ok|not ok) \d+ ", line)]
    numbers = [int(re.match(r"^(?:ok|not ok) (\d+) ", line).group(1)) for line in tests]  # type: ignore[union-attr]
    assert numbers == list(range(1, len(MIXED.checks) + 1))
    assert tests[0] == "ok 1 - config: config valid"
    assert tests[2] == "not ok 3 - files: web directory"
    assert tests[6] == "not ok 7 - checks: db"


def test_tap_skip_directive() -> None:
    """A skipped check is ok with a SKIP directive and its reason."""
    lines = tap_lines(to_tap(MIXED))
    assert "ok 4 - keys: key hf # SKIP VT_HF is not set (optional)" in lines


def test_tap_yaml_block_after_failure() -> None:
    """A failed check is followed by a YAML block with its status, target and message."""
    lines = tap_lines(to_tap(MIXED))
    start = lines.index("not ok 7 - checks: db")
    block = lines[start + 1 : start + 8]
    assert block[0] == "  ---"
    assert block[-1] == "  ..."
    assert "  status: fail" in block
    assert "  severity: error" in block
    assert '  target: "127.0.0.1:5432"' in block
    assert '  message: "refused"' in block
    assert "  duration_ms: 12" in block


def test_tap_passing_check_has_no_yaml_block() -> None:
    """A passing check is a single ok line."""
    lines = tap_lines(to_tap(MIXED))
    index = lines.index("ok 5 - checks: api")
    assert lines[index + 1] == "ok 6 - checks: cache"


def test_tap_warnings_are_ok_without_strict_and_not_ok_with_it() -> None:
    """Warnings are ok (with a YAML block) unless strict makes them not ok."""
    relaxed = tap_lines(to_tap(MIXED))
    assert "ok 2 - files: env file" in relaxed
    assert "ok 6 - checks: cache" in relaxed
    assert relaxed[relaxed.index("ok 2 - files: env file") + 1] == "  ---"
    strict = tap_lines(to_tap(MIXED, strict=True))
    assert "not ok 2 - files: env file" in strict
    assert "not ok 6 - checks: cache" in strict


def test_tap_message_with_quotes_and_newlines_is_one_yaml_line() -> None:
    """A message with quotes and a newline stays on one quoted YAML line."""
    detail = 'bad "value"\nsecond line'
    lines = tap_lines(to_tap(report(result("q", "fail", detail=detail))))
    assert f"  message: {json.dumps(detail)}" in lines
    assert not any(line == "second line" for line in lines)


def test_tap_hash_in_description_is_escaped() -> None:
    """A '#' in a check name is escaped so it does not start a directive."""
    lines = tap_lines(to_tap(report(result("issue #12", "pass"), status="pass")))
    assert lines[2] == "ok 1 - checks: issue \\#12"


def test_tap_of_empty_report_plans_zero_tests() -> None:
    """A report without checks is a plan of 1..0."""
    assert to_tap(report(status="pass")) == "TAP version 13\n1..0\n"
