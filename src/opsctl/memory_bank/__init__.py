"""The memory bank: a folder of markdown files that people and assistants keep as context."""

from opsctl.memory_bank._profiles import PROFILES, expected_files

__all__ = ["PROFILES", "expected_files"]
