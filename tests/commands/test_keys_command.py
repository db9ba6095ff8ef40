"""`opsctl keys` through the real CLI: status, verify, set, unset, and setup off a terminal."""

from __future__ import annotations

import io
import json
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsctl.secrets import mask
from tests.keys._fake import (
    ALPACA_ID,
    ALPACA_SECRET,
    GITHUB,
    OPENAI,
    POLYGON,
    FakeProvider,
    Reply,
    env_lines,
    fake_provider,
)
from tests.support import CliResult, run_cli, write_project

OPENAI_ENV = OPENAI.replace("test", "fromenv")


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with fake_provider() as fake:
        yield fake


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def keys_toml(url: str) -> str:
    return f"""
    [keys.openai]
    provider = "openai"
    env = "T_OPENAI"
    description = "Embeddings for search"
    base_url = "{url}"

    [keys.github]
    provider = "github"
    env = "T_GITHUB"
    base_url = "{url}/gh"

    [keys.polygon]
    provider = "polygon"
    env = "T_POLYGON"
    required = false
    base_url = "{url}/poly"
    """


def project(root: Path, url: str, env: dict[str, str] | None = None) -> str:
    text = env_lines(env) if env is not None else None
    return str(write_project(root, keys_toml(url), env=text))


def keys(config: str, *args: str, stdin: str | None = None) -> CliResult:
    if stdin is None:
        return run_cli("-c", config, "keys", *args)
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return run_cli("-c", config, "keys", *args)
    finally:
        sys.stdin = saved


def keys_json(config: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = keys(config, *args, "--json")
    return result.exit_code, json.loads(result.stdout)


def rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["keys"]}


@pytest.fixture(autouse=True)
def no_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard input is not a terminal in these tests (as in CI)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


# --- status ------------------------------------------------------------------------------


def test_status_table_shows_source_and_masked_values(
    root: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_OPENAI", OPENAI_ENV)
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    result = keys(config, "status")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for column in ("KEY", "PROVIDER", "VARIABLE", "SOURCE", "VALUE", "FORMAT", "LAST CHECK"):
        assert column in lines["KEY"]
    assert "environment" in lines["openai"]
    assert mask(OPENAI_ENV) in lines["openai"]
    assert ".env" in lines["github"]
    assert mask(GITHUB) in lines["github"]
    assert "not set" in lines["polygon"]
    for secret in (OPENAI, OPENAI_ENV, GITHUB):
        assert secret not in result.output
    assert server.seen() == []


def test_status_json(root: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_OPENAI", OPENAI_ENV)
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    code, report = keys_json(config, "status")
    assert code == 0
    by_name = rows(report)
    assert list(by_name) == ["openai", "github", "polygon"]
    assert by_name["openai"] == {
        "name": "openai",
        "provider": "openai",
        "variable": "T_OPENAI",
        "required": True,
        "present": True,
        "source": "environment",
        "value": mask(OPENAI_ENV),
        "format_ok": True,
        "last_verification": None,
    }
    assert by_name["github"]["source"] == ".env"
    assert by_name["github"]["value"] == mask(GITHUB)
    assert by_name["polygon"]["present"] is False
    assert by_name["polygon"]["value"] is None
    assert by_name["polygon"]["format_ok"] is None


def test_status_shows_the_last_verification_until_the_value_changes(
    root: Path, server: FakeProvider
) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    assert keys(config, "verify").exit_code == 0
    _, report = keys_json(config, "status")
    last = rows(report)["openai"]["last_verification"]
    assert last["status"] == "valid"
    assert last["checked_at"].endswith("Z")
    table = keys(config, "status").stdout
    assert "valid" in next(line for line in table.splitlines() if line.startswith("openai"))

    assert keys(config, "set", "T_OPENAI", "--stdin", stdin=OPENAI + "new\n").exit_code == 0
    _, report = keys_json(config, "status")
    assert rows(report)["openai"]["last_verification"] is None
    assert rows(report)["github"]["last_verification"]["status"] == "valid"


def test_status_exits_1_when_a_required_key_is_missing(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI})
    result = keys(config, "status")
    assert result.exit_code == 1
    assert "missing" in next(line for line in result.stdout.splitlines() if "github" in line)


def test_status_exits_1_when_a_required_key_is_malformed(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": "not-a-github-token"})
    code, report = keys_json(config, "status")
    assert code == 1
    assert rows(report)["github"]["format_ok"] is False


def test_status_ignores_a_malformed_optional_key(root: Path, server: FakeProvider) -> None:
    env = {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB, "T_POLYGON": "short"}
    config = project(root, server.url, env)
    code, report = keys_json(config, "status")
    assert code == 0
    assert rows(report)["polygon"]["format_ok"] is False
    assert rows(report)["polygon"]["value"] == "********"


# --- verify ------------------------------------------------------------------------------


def test_verify_all_valid_exits_0(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    result = keys(config, "verify")
    assert result.exit_code == 0, result.output
    assert {r.path for r in server.seen()} == {"/v1/models", "/gh/user"}
    table = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "valid" in table["openai"]
    assert "missing" in table["polygon"]
    assert OPENAI not in result.output


def test_verify_only_rate_limited_exits_3(root: Path, server: FakeProvider) -> None:
    server.answer(Reply(429, "{}", headers={"Retry-After": "30"}), path="/gh/user")
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    code, report = keys_json(config, "verify")
    assert code == 3
    results = rows(report)
    assert results["github"]["status"] == "rate-limited"
    assert "30" in results["github"]["detail"]
    assert results["openai"]["status"] == "valid"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(401, "{}"), "invalid"),
        (Reply(403, "{}"), "forbidden"),
        (Reply(500, "{}"), "unreachable"),
        (Reply(200, "<html>proxy</html>", "text/html"), "unreachable"),
    ],
)
def test_verify_failures_exit_1(
    root: Path, server: FakeProvider, reply: Reply, status: str
) -> None:
    server.answer(Reply(429, "{}"), path="/gh/user")
    server.answer(reply, path="/v1/models")
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    code, report = keys_json(config, "verify")
    assert code == 1
    assert rows(report)["openai"]["status"] == status


def test_verify_bad_format_exits_1_and_sends_nothing(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": "nope", "T_GITHUB": GITHUB})
    code, report = keys_json(config, "verify", "openai")
    assert code == 1
    assert rows(report)["openai"]["status"] == "bad-format"
    assert server.seen() == []


def test_verify_missing_required_exits_1(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI})
    code, report = keys_json(config, "verify")
    assert code == 1
    assert rows(report)["github"]["status"] == "missing"


def test_verify_json_shape(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    code, report = keys_json(config, "verify")
    assert code == 0
    assert list(rows(report)) == ["openai", "github", "polygon"]
    for row in report["keys"]:
        assert set(row) == {"name", "provider", "status", "detail", "checked_at", "duration_ms"}
        assert isinstance(row["duration_ms"], int)


def test_verify_selected_keys_by_name_or_variable(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    code, report = keys_json(config, "verify", "T_GITHUB")
    assert code == 0
    assert list(rows(report)) == ["github"]
    assert [r.path for r in server.seen()] == ["/gh/user"]
    code, report = keys_json(config, "verify", "openai", "T_OPENAI")
    assert list(rows(report)) == ["openai"]


def test_verify_unknown_key_exits_2(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    result = keys(config, "verify", "openai", "nope")
    assert result.exit_code == 2
    assert "'nope'" in result.stderr
    assert "openai, github, polygon" in result.stderr
    assert result.stdout == ""
    assert server.seen() == []


# --- set and unset -----------------------------------------------------------------------


def env_file(root: Path) -> Path:
    return root / ".env"


def test_set_from_stdin_adds_then_updates(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    env_file(root).chmod(0o600)
    result = keys(config, "set", "openai", "--stdin", stdin=OPENAI + "\n")
    assert result.exit_code == 0, result.output
    assert "added T_OPENAI" in result.stderr
    assert "fixed" not in result.stderr
    assert OPENAI not in result.output
    assert env_file(root).read_text() == env_lines({"T_GITHUB": GITHUB, "T_OPENAI": OPENAI})
    assert stat.S_IMODE(env_file(root).stat().st_mode) == 0o600

    result = keys(config, "set", "T_OPENAI", "--stdin", stdin=OPENAI + "x")
    assert result.exit_code == 0
    assert "updated T_OPENAI" in result.stderr
    _, report = keys_json(config, "status")
    assert rows(report)["openai"]["value"] == mask(OPENAI + "x")


def test_set_creates_a_missing_env_file_private(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url)
    assert keys(config, "set", "github", "--stdin", stdin=GITHUB).exit_code == 0
    assert env_file(root).read_text() == f"T_GITHUB='{GITHUB}'\n"
    assert stat.S_IMODE(env_file(root).stat().st_mode) == 0o600


def test_set_reports_a_fixed_mode(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    env_file(root).chmod(0o644)
    result = keys(config, "set", "openai", "--stdin", stdin=OPENAI)
    assert result.exit_code == 0
    assert "0644" in result.stderr
    assert stat.S_IMODE(env_file(root).stat().st_mode) == 0o600


def test_set_notes_a_shadowing_environment_variable(
    root: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_OPENAI", OPENAI_ENV)
    config = project(root, server.url, {})
    result = keys(config, "set", "openai", "--stdin", stdin=OPENAI)
    assert result.exit_code == 0
    assert "takes precedence" in result.stderr
    assert OPENAI_ENV not in result.output


def test_set_with_a_bad_format_exits_2_and_writes_nothing(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    before = env_file(root).read_bytes()
    result = keys(config, "set", "openai", "--stdin", stdin="this-is-not-an-openai-key")
    assert result.exit_code == 2
    assert "not shaped like a key of openai" in result.stderr
    assert "--force" in result.stderr
    assert "this-is-not-an-openai-key" not in result.output
    assert env_file(root).read_bytes() == before


def test_set_with_a_bad_format_creates_no_file(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url)
    assert keys(config, "set", "openai", "--stdin", stdin="bad").exit_code == 2
    assert not env_file(root).exists()


def test_set_force_stores_a_malformed_value(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {})
    result = keys(config, "set", "openai", "--stdin", "--force", stdin="my-proxy-key")
    assert result.exit_code == 0, result.output
    assert env_file(root).read_text() == "T_OPENAI='my-proxy-key'\n"


def test_set_an_undeclared_variable(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {})
    assert keys(config, "set", "EXTRA_SETTING", "--stdin", stdin="a b # c").exit_code == 0
    assert env_file(root).read_text() == "EXTRA_SETTING='a b # c'\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "empty value"), ("\n", "empty value"), ("abc${HOME}def", "${...}")],
)
def test_set_refuses_some_values(
    root: Path, server: FakeProvider, value: str, message: str
) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    before = env_file(root).read_bytes()
    result = keys(config, "set", "EXTRA", "--stdin", stdin=value)
    assert result.exit_code == 2
    assert message in result.stderr
    assert env_file(root).read_bytes() == before


def test_set_without_stdin_off_a_terminal_exits_2(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {})
    result = keys(config, "set", "openai")
    assert result.exit_code == 2
    assert "--stdin" in result.stderr


def test_set_stops_at_a_malformed_env_line(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    broken = env_file(root).read_bytes() + b"this line is broken\nT_LAST=1\n"
    env_file(root).write_bytes(broken)
    result = keys(config, "set", "openai", "--stdin", stdin=OPENAI)
    assert result.exit_code == 2
    assert "line 2" in result.stderr
    assert env_file(root).read_bytes() == broken
    result = keys(config, "unset", "T_LAST")
    assert result.exit_code == 2
    assert env_file(root).read_bytes() == broken


def test_unset(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    result = keys(config, "unset", "openai")
    assert result.exit_code == 0
    assert "removed T_OPENAI" in result.stderr
    assert env_file(root).read_text() == env_lines({"T_GITHUB": GITHUB})
    result = keys(config, "unset", "openai")
    assert result.exit_code == 0
    assert "T_OPENAI was not in" in result.stderr
    assert keys(config, "status").exit_code == 1


# --- setup off a terminal ----------------------------------------------------------------


def test_setup_without_a_terminal_stops_at_once_with_a_hint(
    root: Path, server: FakeProvider
) -> None:
    config = project(root, server.url, {"T_GITHUB": GITHUB})
    before = env_file(root).read_bytes()
    begin = time.monotonic()
    result = keys(config, "setup")
    assert time.monotonic() - begin < 2
    assert result.exit_code == 2
    assert "not" in result.stderr
    assert "terminal" in result.stderr
    assert "keys set NAME --stdin" in result.stderr
    assert env_file(root).read_bytes() == before
    assert server.seen() == []


def test_polygon_value_is_never_printed(root: Path, server: FakeProvider) -> None:
    config = project(root, server.url, {"T_OPENAI": OPENAI, "T_GITHUB": GITHUB})
    assert keys(config, "set", "polygon", "--stdin", stdin=POLYGON).exit_code == 0
    result = keys(config, "verify", "polygon")
    assert result.exit_code == 0
    assert POLYGON not in result.output
    assert server.seen()[0].query["apiKey"] == [POLYGON]


ALPACA_TOML = """
[keys.alpaca]
provider = "alpaca"
env = "T_ALPACA_ID"
secret_env = "T_ALPACA_SECRET"
"""


@pytest.mark.parametrize("secret_set", [True, False], ids=["secret-set", "secret-missing"])
def test_set_checks_the_format_of_a_pair_key_id(root: Path, secret_set: bool) -> None:
    env = env_lines({"T_ALPACA_SECRET": ALPACA_SECRET}) if secret_set else ""
    config = str(write_project(root, ALPACA_TOML, env=env))
    before = env_file(root).read_bytes()
    result = keys(config, "set", "alpaca", "--stdin", stdin="lower-case-is-not-an-id")
    assert result.exit_code == 2, result.output
    assert env_file(root).read_bytes() == before


def test_set_checks_the_format_of_a_pair_secret(root: Path) -> None:
    config = str(write_project(root, ALPACA_TOML, env=env_lines({"T_ALPACA_ID": ALPACA_ID})))
    before = env_file(root).read_bytes()
    result = keys(config, "set", "T_ALPACA_SECRET", "--stdin", stdin="not a secret!")
    assert result.exit_code == 2, result.output
    assert env_file(root).read_bytes() == before
    result = keys(config, "set", "T_ALPACA_SECRET", "--stdin", stdin=ALPACA_SECRET)
    assert result.exit_code == 0
