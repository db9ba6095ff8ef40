"""Names of every environment variable opsctl reads, in one place."""

CONFIG = "OPSCTL_CONFIG"
"""Path of the ``opsctl.toml`` to use when ``--config`` is not given."""

DEBUG = "OPSCTL_DEBUG"
"""Set to 1 to show tracebacks, like ``--debug``."""

OVERRIDE_PREFIX = "OPSCTL_"
"""Prefix of variables that override config keys: ``OPSCTL_RUNTIME__UP_TIMEOUT_SECONDS=60``."""

OVERRIDE_SEPARATOR = "__"
"""Separator between the key path parts of an override variable."""

NO_COLOR = "NO_COLOR"
"""Disables colour in human output (https://no-color.org)."""
