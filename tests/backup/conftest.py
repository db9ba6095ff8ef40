"""Fixtures of the backup tests: stacks under a real supervisord (shared with runtime)."""

from tests.runtime.conftest import make_stack

__all__ = ["make_stack"]
