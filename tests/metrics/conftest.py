"""Fixtures of the metrics tests: a real Pushgateway per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pushgateway import Pushgateway, running_pushgateway


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    """A real prometheus-pushgateway on a free loopback port, stopped after the test."""
    with running_pushgateway(tmp_path / "pushgateway") as gateway:
        yield gateway
