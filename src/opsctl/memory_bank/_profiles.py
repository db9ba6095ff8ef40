"""The file sets of the memory-bank conventions opsctl knows."""

from __future__ import annotations

from opsctl.config._model import MemoryBankSection

PROFILES: dict[str, tuple[str, ...]] = {
    "roo": (
        "productContext.md",
        "activeContext.md",
        "systemPatterns.md",
        "decisionLog.md",
        "progress.md",
    ),
    "cline": (
        "projectbrief.md",
        "productContext.md",
        "activeContext.md",
        "systemPatterns.md",
        "techContext.md",
        "progress.md",
    ),
}


def expected_files(section: MemoryBankSection) -> tuple[str, ...]:
    """The files the configured profile expects; ``files`` replaces or extends the profile's."""
    if section.profile == "custom":
        return tuple(section.files)
    extra = tuple(name for name in section.files if name not in PROFILES[section.profile])
    return PROFILES[section.profile] + extra
