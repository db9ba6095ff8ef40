"""The whole bank as one text to paste into an assistant, cut to a token budget.

The rule, when a budget is given: every file's text outside entries (headings, prose)
is kept; then entries are taken newest first, across all files (entries without a valid
timestamp count as oldest; among equal times, the later in its file first); an entry that
does not fit is left out and the next one is tried. Kept entries appear in their files'
own order, and each file with left-out entries ends with a note saying how many. If the
text outside entries alone is over the budget, the text is cut at the budget.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from opsctl.config import Project
from opsctl.memory_bank._bank import (
    CHARS_PER_TOKEN,
    bank_folder,
    bank_zone,
    estimate_tokens,
    read_file,
)
from opsctl.memory_bank._parse import split_lines
from opsctl.memory_bank._profiles import expected_files

_CUT_NOTE = "\n[cut here: the token budget is reached]\n"


@dataclass(frozen=True)
class _Block:
    file_index: int
    start: int
    end: int
    timestamp: datetime | None
    tokens: int


@dataclass
class ShownBank:
    """The text, its estimated tokens, and what was left out per file."""

    text: str
    tokens: int
    omitted: dict[str, int] = field(default_factory=dict)


def show_bank(project: Project, *, budget_tokens: int | None = None) -> ShownBank:
    """Return the bank as one text, within ``budget_tokens`` when given (see module doc)."""
    folder = bank_folder(project)
    zone = bank_zone(project)
    names = [name for name in _file_order(project, folder) if (folder / name).is_file()]
    files: list[tuple[str, list[str]]] = []
    blocks: list[_Block] = []
    for index, name in enumerate(names):
        text, parsed = read_file(folder / name, zone=zone)
        lines = split_lines(text)
        files.append((name, lines))
        boundaries = sorted(
            {e.line for e in parsed.entries} | {h.line for h in parsed.headings} | {len(lines) + 1}
        )
        for entry in parsed.entries:
            end = boundaries[bisect.bisect_right(boundaries, entry.line)]
            block_text = "\n".join(lines[entry.line - 1 : end - 1])
            blocks.append(
                _Block(index, entry.line, end, entry.timestamp, estimate_tokens(block_text) + 1)
            )

    header = f"# Memory bank of {project.name} ({project.config.memory_bank.profile} profile)\n"
    text, omitted = _assemble(header, files, blocks, set(range(len(blocks))))
    if budget_tokens is not None and estimate_tokens(text) > budget_tokens:
        keep = _choose(files, blocks, header, budget_tokens)
        text, omitted = _assemble(header, files, blocks, keep)
    if budget_tokens is not None and estimate_tokens(text) > budget_tokens:
        text = _cut(text, budget_tokens)
    return ShownBank(text=text, tokens=estimate_tokens(text), omitted=omitted)


def _cut(text: str, budget_tokens: int) -> str:
    room = budget_tokens * CHARS_PER_TOKEN
    if room <= len(_CUT_NOTE):
        return text[:room]
    return text[: room - len(_CUT_NOTE)] + _CUT_NOTE


def _file_order(project: Project, folder: Path) -> list[str]:
    expected = list(expected_files(project.config.memory_bank))
    others = (
        sorted(p.name for p in folder.glob("*.md") if p.name not in expected)
        if folder.is_dir()
        else []
    )
    return expected + others


def _choose(
    files: list[tuple[str, list[str]]], blocks: list[_Block], header: str, budget: int
) -> set[int]:
    """Take entries newest first within ``budget``, room kept for the note of each file that
    loses entries; a file that turns out to lose none gives its note's room back.
    """
    frame_text, _ = _assemble(header, files, blocks, set(), notes=False)
    frame = estimate_tokens(frame_text)
    order = sorted(
        range(len(blocks)),
        key=lambda i: (_epoch(blocks[i].timestamp), blocks[i].start),
        reverse=True,
    )
    noted = set(range(len(files)))
    keep: set[int] = set()
    for _ in range(len(files) + 1):
        keep = set()
        remaining = budget - frame - sum(_note_tokens(len(blocks)) for _ in noted)
        for index in order:
            if blocks[index].tokens <= remaining:
                keep.add(index)
                remaining -= blocks[index].tokens
        losing = {blocks[i].file_index for i in range(len(blocks)) if i not in keep}
        if losing == noted:
            break
        noted = losing
    return keep


def _note(count: int) -> str:
    return f"[{count} older entries left out]\n"


def _note_tokens(count: int) -> int:
    return estimate_tokens(_note(count))


def _epoch(timestamp: datetime | None) -> float:
    """Seconds since the epoch; a missing timestamp sorts as oldest."""
    return timestamp.timestamp() if timestamp is not None else float("-inf")


def _assemble(
    header: str,
    files: list[tuple[str, list[str]]],
    blocks: list[_Block],
    keep: set[int],
    *,
    notes: bool = True,
) -> tuple[str, dict[str, int]]:
    parts = [header]
    omitted: dict[str, int] = {}
    for file_index, (name, lines) in enumerate(files):
        dropped = [b for i, b in enumerate(blocks) if b.file_index == file_index and i not in keep]
        skip = {number for block in dropped for number in range(block.start, block.end)}
        body = "\n".join(
            line for number, line in enumerate(lines, start=1) if number not in skip
        ).strip("\n")
        parts.append(f"\n===== {name} =====\n{body}\n")
        if dropped and notes:
            omitted[name] = len(dropped)
            parts.append(_note(len(dropped)))
    return "".join(parts), omitted
