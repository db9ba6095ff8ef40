"""opsctl: one declarative operations command for GPU application stacks."""

__version__ = "0.1.0"
