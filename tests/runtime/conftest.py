"""Fixtures that start real stacks under a real supervisord, and always take them down."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import CliResult, kill_supervisord, run_cli, write_project

PYTHON = sys.executable


@dataclass
class StackProject:
    """A project folder with its config, driven through the real CLI."""

    root: Path
    config: Path

    @property
    def state_dir(self) -> Path:
        return self.root / ".opsctl"

    def cli(self, *args: str) -> CliResult:
        return run_cli("-c", str(self.config), *args)

    def status(self) -> dict[str, dict[str, object]]:
        result = self.cli("status", "--json")
        assert result.exit_code == 0, result.output
        return {row["name"]: row for row in json.loads(result.stdout)["services"]}

    def pid(self, service: str) -> int:
        pid = self.status()[service]["pid"]
        assert isinstance(pid, int), f"{service} has no pid"
        return pid


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., StackProject]]:
    """Create stack projects in temporary folders; each is taken down after the test."""
    made: list[StackProject] = []

    def make(toml: str, *, env: str | None = None, name: str = "stack") -> StackProject:
        root = tmp_path / name
        project = StackProject(root=root, config=write_project(root, toml, env=env))
        made.append(project)
        return project

    yield make
    for project in made:
        project.cli("down")
        kill_supervisord(project.state_dir)
