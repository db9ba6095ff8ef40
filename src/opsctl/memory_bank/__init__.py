"""The memory bank: a folder of markdown files that people and assistants keep as context."""

from opsctl.memory_bank._bank import (
    CHARS_PER_TOKEN,
    BankReport,
    FileReport,
    bank_folder,
    bank_zone,
    estimate_tokens,
    history_file,
    inspect_bank,
    load_history,
    record_activation,
)
from opsctl.memory_bank._hooks import install_clinerules, install_roomodes, install_shell_snippet
from opsctl.memory_bank._metrics import Gauge, bank_metrics
from opsctl.memory_bank._parse import Entry, Finding, Heading, ParsedFile, parse
from opsctl.memory_bank._profiles import PROFILES, expected_files
from opsctl.memory_bank._show import ShownBank, show_bank
from opsctl.memory_bank._write import append_entry, format_entry, init_bank

__all__ = [
    "CHARS_PER_TOKEN",
    "PROFILES",
    "BankReport",
    "Entry",
    "FileReport",
    "Finding",
    "Gauge",
    "Heading",
    "ParsedFile",
    "ShownBank",
    "append_entry",
    "bank_folder",
    "bank_metrics",
    "bank_zone",
    "estimate_tokens",
    "expected_files",
    "format_entry",
    "history_file",
    "init_bank",
    "inspect_bank",
    "install_clinerules",
    "install_roomodes",
    "install_shell_snippet",
    "load_history",
    "parse",
    "record_activation",
    "show_bank",
]
