"""find_line: the line of opsctl.toml where a key path is written."""

from __future__ import annotations

import textwrap

from opsctl.config._locate import find_line

TABLES = textwrap.dedent(
    """\
    [project]
    name = "demo"

    [services.redis]
    command = "sleep 100"
    port = 7001

    [services.web]  # the front end
    command = "sleep 100"
    port = 7002
    depends_on = ["redis"]

    [services.web.environment]
    "API_TOKEN" = "x"
    PLAIN = "y"
    """
)

ARRAYS = textwrap.dedent(
    """\
    [services.api]
    command = "sleep 100"

    [[services.api.health]]
    kind = "tcp"
    port = 7001

    [[services.api.health]]
    kind = "http"
    url = "http://127.0.0.1:7001/"

    [[verify.checks]]
    kind = "disk"

    [[services.api.health]]
    kind = "command"
    argv = ["true"]
    """
)

DOTTED = textwrap.dedent(
    """\
    runtime.up_timeout_seconds = 30
    services.cache.command = "sleep 100"
    services.cache.port = 7003

    [services]
    web.command = "sleep 100"
    web.port = 7004
    "quoted".port = 7005

    [monitoring]
    disk.warn_free_percent = 20
    """
)


def test_find_line_key_in_table_returns_key_line() -> None:
    """A key written under its table header is found on its own line."""
    assert find_line(TABLES, ("services", "redis", "port")) == 6
    assert find_line(TABLES, ("services", "web", "port")) == 10
    assert find_line(TABLES, ("project", "name")) == 2


def test_find_line_table_path_returns_header_line() -> None:
    """A path naming a table answers the table's header line, comments after it allowed."""
    assert find_line(TABLES, ("services", "redis")) == 4
    assert find_line(TABLES, ("services", "web")) == 8


def test_find_line_key_absent_from_table_returns_header_line() -> None:
    """A key missing from a table written in the file answers the table's header."""
    assert find_line(TABLES, ("services", "redis", "depends_on")) == 4


def test_find_line_list_index_returns_line_of_list_key() -> None:
    """A path into an inline array answers the line of the array's key."""
    assert find_line(TABLES, ("services", "web", "depends_on", 0)) == 11


def test_find_line_quoted_key_in_subtable_returns_key_line() -> None:
    """A quoted key in a sub-table is matched without its quotes."""
    assert find_line(TABLES, ("services", "web", "environment", "API_TOKEN")) == 14
    assert find_line(TABLES, ("services", "web", "environment", "PLAIN")) == 15


def test_find_line_unknown_top_level_path_returns_none() -> None:
    """A path that shares nothing with the file gives None."""
    assert find_line(TABLES, ("gpu", "require")) is None
    assert find_line("", ("services", "redis", "port")) is None


def test_find_line_array_of_tables_counts_each_entry() -> None:
    """Each [[...]] header is its own index, so index 1 is the second entry's lines."""
    assert find_line(ARRAYS, ("services", "api", "health", 0)) == 4
    assert find_line(ARRAYS, ("services", "api", "health", 0, "port")) == 6
    assert find_line(ARRAYS, ("services", "api", "health", 1)) == 8
    assert find_line(ARRAYS, ("services", "api", "health", 1, "url")) == 10


def test_find_line_array_of_tables_interleaved_keeps_separate_counts() -> None:
    """Another array between two entries does not disturb the count of the first."""
    assert find_line(ARRAYS, ("verify", "checks", 0, "kind")) == 13
    assert find_line(ARRAYS, ("services", "api", "health", 2)) == 15
    assert find_line(ARRAYS, ("services", "api", "health", 2, "argv")) == 17


def test_find_line_array_entry_missing_key_returns_entry_header() -> None:
    """A key not written in an array entry answers that entry's header line."""
    assert find_line(ARRAYS, ("services", "api", "health", 1, "method")) == 8


def test_find_line_array_index_beyond_entries_falls_back_to_parent() -> None:
    """An index past the written entries answers the parent table, not a wrong entry."""
    assert find_line(ARRAYS, ("services", "api", "health", 7, "kind")) == 1


def test_find_line_top_level_dotted_key_returns_its_line() -> None:
    """A dotted key outside any table is matched on all its parts."""
    assert find_line(DOTTED, ("runtime", "up_timeout_seconds")) == 1
    assert find_line(DOTTED, ("services", "cache", "command")) == 2
    assert find_line(DOTTED, ("services", "cache", "port")) == 3


def test_find_line_dotted_key_inside_table_returns_its_line() -> None:
    """A dotted key under a table header is matched as header plus key parts."""
    assert find_line(DOTTED, ("services", "web", "port")) == 7
    assert find_line(DOTTED, ("services", "quoted", "port")) == 8
    assert find_line(DOTTED, ("monitoring", "disk", "warn_free_percent")) == 11


def test_find_line_key_written_only_inside_longer_header_returns_that_header() -> None:
    """A table named only as the first part of a longer header is found on that header."""
    text = '[servicse.redis]\ncommand = "sleep 100"\n'
    assert find_line(text, ("servicse",)) == 1


def test_find_line_misspelt_array_of_tables_returns_its_header() -> None:
    """A misspelt [[...]] name is found on its own header, not on the parent table's."""
    text = '[services.redis]\ncommand = "sleep 100"\n\n[[services.redis.helth]]\nkind = "tcp"\n'
    assert find_line(text, ("services", "redis", "helth")) == 4
