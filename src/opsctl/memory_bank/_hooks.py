"""Make assistants activate the bank at the start of every session.

- ``.roomodes`` (Roo Code): a project custom mode, ``memory-bank``, whose instructions
  are to run ``opsctl memory-bank activate`` first and read every file it lists. Other
  modes in the file are kept.
- ``.clinerules`` (Cline): rules Cline reads with every task. If ``.clinerules`` is a
  folder, opsctl writes its own file in it; if it is a file, opsctl keeps its own block
  between two marker lines and leaves the rest as it was.
- a shell snippet (optional): a function that activates the bank when a shell starts in
  the project, for people who source it from their shell's start-up file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsctl._files import write_atomic
from opsctl.config import Project
from opsctl.errors import UsageError
from opsctl.memory_bank._profiles import expected_files

MODE_SLUG = "memory-bank"
_BEGIN = "<!-- opsctl memory-bank: begin -->"
_END = "<!-- opsctl memory-bank: end -->"


def _instructions(project: Project) -> str:
    files = ", ".join(expected_files(project.config.memory_bank))
    folder = project.config.memory_bank.path
    return (
        "At the start of every session, run `opsctl memory-bank activate` in the project root "
        f"and read every file it lists from `{folder}/` ({files}). Begin your first answer with "
        "the status line it printed, [MEMORY BANK: ACTIVE] or [MEMORY BANK: INACTIVE]. When a "
        "decision is made or work is finished, record it with "
        '`opsctl memory-bank log FILE "Title" --body "..."` rather than editing timestamps by hand.'
    )


def install_roomodes(project: Project) -> Path:
    """Add or update the ``memory-bank`` mode in ``.roomodes``, keeping the other modes."""
    path = project.root / ".roomodes"
    data: dict[str, Any] = {"customModes": []}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            message = f"{path} is not valid JSON ({error}); fix it or move it away first."
            raise UsageError(message) from None
        if not isinstance(data, dict) or not isinstance(data.get("customModes", []), list):
            message = f"{path} has no 'customModes' list; fix it or move it away first."
            raise UsageError(message)
    mode = {
        "slug": MODE_SLUG,
        "name": "Memory Bank",
        "roleDefinition": "You keep this project's memory bank loaded and up to date.",
        "customInstructions": _instructions(project),
        "groups": ["read", "edit", "command"],
    }
    modes = [
        m
        for m in data.get("customModes", [])
        if not (isinstance(m, dict) and m.get("slug") == MODE_SLUG)
    ]
    data["customModes"] = [*modes, mode]
    write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o644)
    return path


def install_clinerules(project: Project) -> Path:
    """Write opsctl's rules for Cline, in the folder form or as a marked block."""
    target = project.root / ".clinerules"
    block = f"{_BEGIN}\n# Memory bank\n\n{_instructions(project)}\n{_END}\n"
    if target.is_dir():
        path = target / "opsctl-memory-bank.md"
        write_atomic(path, block, mode=0o644)
        return path
    try:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as error:
        message = f"{target} cannot be read as UTF-8 text ({error}); fix it or move it away first."
        raise UsageError(message) from None
    start = current.find(_BEGIN)
    end = current.find(_END, start) if start >= 0 else -1
    if start >= 0 and end >= 0:
        text = current[:start] + block.rstrip("\n") + current[end + len(_END) :]
        text += "" if text.endswith("\n") else "\n"
    else:
        text = (
            current
            + ("\n" if current and not current.endswith("\n") else "")
            + ("\n" if current else "")
            + block
        )
    write_atomic(target, text, mode=0o644)
    return target


def install_shell_snippet(project: Project) -> Path:
    """Write a snippet to source from a shell's start-up file; return its path."""
    path = project.state_dir / "memory-bank" / "activate.sh"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = str(project.root).replace("'", "'\\''")
    snippet = (
        "# Activates the memory bank when a shell starts in this project.\n"
        f"# Add to ~/.bashrc or ~/.zshrc:  . '{path}'\n"
        "opsctl_memory_bank() {\n"
        f"    case \"$PWD/\" in '{root}'/*) opsctl memory-bank activate -q ;; esac\n"
        "}\n"
        "opsctl_memory_bank\n"
    )
    write_atomic(path, snippet, mode=0o644)
    return path
