"""API keys: declared in ``[keys.NAME]``, resolved from the environment and ``.env``."""

from opsctl.keys._formats import KEY_FORMATS, format_matches

__all__ = ["KEY_FORMATS", "format_matches"]
