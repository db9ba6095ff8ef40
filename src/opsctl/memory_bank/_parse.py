"""Read one memory-bank markdown file: headings, timestamped entries, loose text, findings.

An entry starts on a line ``[YYYY-MM-DD HH:MM:SS] - Title`` (the title may be bold,
``**Title**``) and runs until the next entry or heading. Timestamps carry no zone; they
are read in the zone given. A malformed, duplicate or out-of-order timestamp never stops
the parse: it becomes a finding naming its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

_ENTRY = re.compile(r"^\[(?P<stamp>[^\]\n]*)\]\s*-\s*(?P<title>.*?)\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)\s*#*\s*$")
_BOLD = re.compile(r"^\*\*(?P<inner>.+?)\*\*:?$")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Heading:
    """A markdown heading."""

    level: int
    text: str
    line: int


@dataclass(frozen=True)
class Entry:
    """One timestamped entry; ``timestamp`` is ``None`` when its stamp is malformed."""

    title: str
    timestamp: datetime | None
    line: int
    body: str
    heading: str | None


@dataclass(frozen=True)
class Finding:
    """A quality problem that does not stop the parse."""

    line: int
    kind: str
    message: str


@dataclass(frozen=True)
class ParsedFile:
    """Everything read from one file."""

    headings: list[Heading] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    loose_lines: int = 0

    @property
    def newest(self) -> datetime | None:
        """The latest timestamp of any entry, wherever it stands in the file."""
        stamps = [entry.timestamp for entry in self.entries if entry.timestamp is not None]
        return max(stamps, default=None)


def parse(text: str, *, zone: tzinfo | None) -> ParsedFile:
    """Parse a memory-bank file; timestamps are read as wall-clock times in ``zone``
    (``None``: this machine's local time, with the offset in force on each date).
    """
    headings: list[Heading] = []
    entries: list[Entry] = []
    findings: list[Finding] = []
    loose_lines = 0
    current: dict[str, object] | None = None
    body: list[str] = []

    def close() -> None:
        if current is not None:
            entries.append(Entry(body="\n".join(body).strip("\n"), **current))  # type: ignore[arg-type]

    for number, line in enumerate(split_lines(text), start=1):
        heading = _HEADING.match(line)
        entry = _ENTRY.match(line)
        if heading:
            close()
            current, body = None, []
            headings.append(Heading(len(heading["hashes"]), heading["text"], number))
        elif entry:
            close()
            body = []
            timestamp = _read_timestamp(entry["stamp"], zone=zone, line=number, findings=findings)
            current = {
                "title": _title(entry["title"]),
                "timestamp": timestamp,
                "line": number,
                "heading": headings[-1].text if headings else None,
            }
        elif current is not None:
            body.append(line)
        elif line.strip():
            loose_lines += 1
    close()

    findings += _order_findings(entries)
    findings.sort(key=lambda finding: finding.line)
    return ParsedFile(
        headings=headings, entries=entries, findings=findings, loose_lines=loose_lines
    )


def split_lines(text: str) -> list[str]:
    """Split on LF (and CRLF) only, as editors and ``grep -n`` number lines; a trailing
    line break does not start another line.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _title(raw: str) -> str:
    bold = _BOLD.match(raw)
    return bold["inner"].strip() if bold else raw


def _read_timestamp(
    stamp: str, *, zone: tzinfo | None, line: int, findings: list[Finding]
) -> datetime | None:
    try:
        naive = datetime.strptime(stamp.strip(), TIMESTAMP_FORMAT)  # noqa: DTZ007 (zone below)
        return naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()
    except (ValueError, OverflowError, OSError):
        findings.append(
            Finding(
                line,
                "malformed-timestamp",
                f"[{stamp}] is not a timestamp of the form YYYY-MM-DD HH:MM:SS",
            )
        )
        return None


def _order_findings(entries: list[Entry]) -> list[Finding]:
    findings = []
    seen: dict[datetime, int] = {}
    previous: datetime | None = None
    for entry in entries:
        if entry.timestamp is None:
            continue
        stamp = entry.timestamp.strftime(TIMESTAMP_FORMAT)
        if entry.timestamp in seen:
            message = f"[{stamp}] was already used on line {seen[entry.timestamp]}"
            findings.append(Finding(entry.line, "duplicate-timestamp", message))
        else:
            seen[entry.timestamp] = entry.line
        if previous is not None and entry.timestamp < previous:
            before = previous.strftime(TIMESTAMP_FORMAT)
            message = f"[{stamp}] is earlier than the entry before it ([{before}])"
            findings.append(Finding(entry.line, "out-of-order", message))
        previous = entry.timestamp
    return findings
