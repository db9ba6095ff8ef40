"""Benchmarks, run by hand: ``python bench/cli_startup.py``."""
