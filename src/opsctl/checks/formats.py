"""Machine-readable report formats for CI: JUnit XML and TAP version 13."""

from __future__ import annotations

import platform
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from opsctl.checks._result import CheckResult, Report, effective_status


def to_junit(report: Report, *, strict: bool = False, suite_name: str = "opsctl verify") -> str:
    """Render ``report`` as JUnit XML: one test suite per section, one test case per check.

    A failed check is a ``<failure>``; a warning is one only with ``strict`` (else it passes
    with the warning in ``<system-out>``); a skipped check is ``<skipped>``.
    """
    sections: dict[str, list[CheckResult]] = {}
    for result in report.checks:
        sections.setdefault(result.section, []).append(result)

    timestamp = report.started_at.strftime("%Y-%m-%dT%H:%M:%S")
    root = ET.Element("testsuites", name=suite_name, time=_seconds(report.duration_ms))
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for section, results in sections.items():
        suite = ET.SubElement(
            root, "testsuite", name=section, timestamp=timestamp, hostname=platform.node()
        )
        counts = _add_cases(suite, section, results, strict=strict)
        suite.attrib.update({key: str(value) for key, value in counts.items()})
        suite.set("errors", "0")
        suite.set("time", _seconds(sum(r.duration_ms for r in results)))
        for key in totals:
            totals[key] += counts[key]
    root.attrib.update({key: str(value) for key, value in totals.items()})
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _add_cases(
    suite: ET.Element, section: str, results: Iterable[CheckResult], *, strict: bool
) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for result in results:
        counts["tests"] += 1
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"opsctl.verify.{section}",
            name=_xml_text(result.name),
            time=_seconds(result.duration_ms),
        )
        status = effective_status(result)
        if status == "fail" or (status == "warn" and strict):
            counts["failures"] += 1
            failure = ET.SubElement(case, "failure", message=_xml_text(result.detail), type=status)
            failure.text = _xml_text(f"{result.target}: {result.detail}")
        elif status == "skip":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=_xml_text(result.detail))
        else:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(f"{status}: {result.detail}")
    return counts


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Characters XML 1.0 cannot hold (control characters) as ``\\xNN``."""
    return _NOT_XML.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _line(text: str) -> str:
    """One TAP line: no line breaks that could forge a result line."""
    return " ".join(text.split("\n")).replace("\r", " ")


def _seconds(milliseconds: int) -> str:
    return f"{milliseconds / 1000:.3f}"


def to_tap(report: Report, *, strict: bool = False) -> str:
    """Render ``report`` as TAP version 13, with a YAML block for each problem."""
    lines = ["TAP version 13", f"1..{len(report.checks)}"]
    for number, result in enumerate(report.checks, start=1):
        status = effective_status(result)
        description = _line(f"{result.section}: {result.name}").replace("#", "\\#")
        if status == "skip":
            lines.append(f"ok {number} - {description} # SKIP {_line(result.detail)}")
            continue
        failed = status == "fail" or (status == "warn" and strict)
        lines.append(f"{'not ok' if failed else 'ok'} {number} - {description}")
        if status != "pass":
            lines += [
                "  ---",
                f"  status: {status}",
                f"  severity: {result.severity}",
                f"  target: {_yaml(result.target)}",
                f"  message: {_yaml(result.detail)}",
                f"  duration_ms: {result.duration_ms}",
                "  ...",
            ]
    return "\n".join(lines) + "\n"


def _yaml(text: str) -> str:
    """Quote a scalar for YAML by writing it as a JSON string, which YAML reads."""
    import json

    return json.dumps(text, ensure_ascii=False)
