"""Hooks that make assistants activate the bank: .roomodes, .clinerules, a shell snippet."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from opsctl.errors import UsageError
from opsctl.memory_bank import install_clinerules, install_roomodes, install_shell_snippet
from tests.memory_bank._helpers import make_project

BEGIN = "<!-- opsctl memory-bank: begin -->"
END = "<!-- opsctl memory-bank: end -->"
OTHER_MODE = {
    "slug": "reviewer",
    "name": "Reviewer",
    "roleDefinition": "You review code.",
    "groups": ["read"],
}


# .roomodes


def test_roomodes_is_created_with_one_memory_bank_mode(tmp_path: Path) -> None:
    """A fresh .roomodes is JSON with a single memory-bank mode that runs activate."""
    project = make_project(tmp_path)
    path = install_roomodes(project)
    assert path == tmp_path / ".roomodes"
    data = json.loads(path.read_text())
    assert [mode["slug"] for mode in data["customModes"]] == ["memory-bank"]
    mode = data["customModes"][0]
    assert "opsctl memory-bank activate" in mode["customInstructions"]
    assert "[MEMORY BANK: ACTIVE]" in mode["customInstructions"]
    assert "`memory-bank/`" in mode["customInstructions"]
    assert "decisionLog.md" in mode["customInstructions"]
    assert set(mode) >= {"slug", "name", "roleDefinition", "customInstructions", "groups"}


def test_roomodes_keeps_other_modes_and_keys(tmp_path: Path) -> None:
    """An existing mode and top-level key survive; the memory-bank mode is added after them."""
    project = make_project(tmp_path)
    (tmp_path / ".roomodes").write_text(json.dumps({"customModes": [OTHER_MODE], "note": 1}))
    data = json.loads(install_roomodes(project).read_text())
    assert data["customModes"][0] == OTHER_MODE
    assert [mode["slug"] for mode in data["customModes"]] == ["reviewer", "memory-bank"]
    assert data["note"] == 1


def test_roomodes_second_install_updates_instead_of_duplicating(tmp_path: Path) -> None:
    """Installing twice, with a changed profile between, leaves one up-to-date mode."""
    make_project(tmp_path)
    (tmp_path / ".roomodes").write_text(json.dumps({"customModes": [OTHER_MODE]}))
    install_roomodes(make_project(tmp_path))
    install_roomodes(make_project(tmp_path, 'profile = "cline"'))
    data = json.loads((tmp_path / ".roomodes").read_text())
    slugs = [mode["slug"] for mode in data["customModes"]]
    assert slugs == ["reviewer", "memory-bank"]
    assert "techContext.md" in data["customModes"][1]["customInstructions"]


def test_roomodes_install_is_idempotent_byte_for_byte(tmp_path: Path) -> None:
    """A second install with the same settings writes the same bytes."""
    project = make_project(tmp_path)
    first = install_roomodes(project).read_bytes()
    assert install_roomodes(project).read_bytes() == first


@pytest.mark.parametrize(
    "content",
    ['{"customModes": [', "not json at all", '{"customModes": {"slug": "x"}}', "[1, 2]"],
)
def test_roomodes_that_cannot_be_merged_are_refused_and_left_untouched(
    tmp_path: Path, content: str
) -> None:
    """Invalid JSON or a file without a customModes list is a usage error; bytes unchanged."""
    project = make_project(tmp_path)
    path = tmp_path / ".roomodes"
    path.write_text(content)
    with pytest.raises(UsageError, match=r"\.roomodes"):
        install_roomodes(project)
    assert path.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".roomodes")) == [
        ".roomodes"
    ]


# .clinerules


def test_clinerules_is_created_as_a_marked_block(tmp_path: Path) -> None:
    """Without a .clinerules file, one is written holding just opsctl's marked block."""
    project = make_project(tmp_path, 'profile = "cline"')
    path = install_clinerules(project)
    text = path.read_text()
    assert path == tmp_path / ".clinerules"
    assert text.startswith(BEGIN + "\n")
    assert text.endswith(END + "\n")
    assert "opsctl memory-bank activate" in text
    assert "projectbrief.md" in text


def test_clinerules_keeps_user_lines_around_the_block(tmp_path: Path) -> None:
    """User rules before the block stay; a rerun replaces only the block, keeping lines after."""
    project = make_project(tmp_path)
    path = tmp_path / ".clinerules"
    path.write_text("# My rules\n- use tabs")
    install_clinerules(project)
    first = path.read_text()
    assert first.startswith("# My rules\n- use tabs\n\n" + BEGIN)
    assert first.count(BEGIN) == 1
    path.write_text(first + "\n- a rule added later\n")
    install_clinerules(make_project(tmp_path, 'profile = "cline"'))
    second = path.read_text()
    assert second.count(BEGIN) == 1
    assert second.count(END) == 1
    assert second.startswith("# My rules\n- use tabs\n\n" + BEGIN)
    assert second.endswith(END + "\n\n- a rule added later\n")
    assert "techContext.md" in second


def test_clinerules_rerun_is_byte_identical(tmp_path: Path) -> None:
    """Installing twice into a file with user rules gives the same bytes both times."""
    project = make_project(tmp_path)
    (tmp_path / ".clinerules").write_text("keep me\n")
    first = install_clinerules(project).read_bytes()
    assert install_clinerules(project).read_bytes() == first
    assert first.startswith(b"keep me\n\n")


def test_clinerules_folder_gets_its_own_file_and_other_files_are_kept(tmp_path: Path) -> None:
    """When .clinerules is a folder, opsctl writes one file in it and touches no other."""
    project = make_project(tmp_path)
    folder = tmp_path / ".clinerules"
    folder.mkdir()
    (folder / "style.md").write_text("tabs\n")
    path = install_clinerules(project)
    assert path == folder / "opsctl-memory-bank.md"
    assert BEGIN in path.read_text()
    assert (folder / "style.md").read_text() == "tabs\n"
    assert sorted(p.name for p in folder.iterdir()) == ["opsctl-memory-bank.md", "style.md"]


# Shell snippet


def test_shell_snippet_lives_in_the_state_folder_and_names_the_command(tmp_path: Path) -> None:
    """The snippet is under .opsctl, runs activate quietly and names the project root."""
    project = make_project(tmp_path)
    path = install_shell_snippet(project)
    assert path == tmp_path / ".opsctl" / "memory-bank" / "activate.sh"
    text = path.read_text()
    assert "opsctl memory-bank activate -q" in text
    assert str(tmp_path) in text
    assert not (tmp_path / "memory-bank").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_snippet_activates_only_inside_the_project(tmp_path: Path) -> None:
    """Sourced in bash, the snippet calls opsctl inside the root (even with a quote in its
    name) and not outside it.
    """
    root = tmp_path / "it's a project"
    project = make_project(root)
    snippet = install_shell_snippet(project)
    (root / "sub").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = 'opsctl() { echo "CALLED $*"; }\ncd "$1" && . "$2"\n'
    inside_run = subprocess.run(
        ["bash", "-c", script, "bash", str(root / "sub"), str(snippet)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    outside_run = subprocess.run(
        ["bash", "-c", script, "bash", str(outside), str(snippet)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert inside_run.stdout == "CALLED memory-bank activate -q\n"
    assert outside_run.stdout == ""
