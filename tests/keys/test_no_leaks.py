"""No full secret in any output of any keys command, on success or failure.

Canary secrets, shaped like each provider's keys, are planted in the .env file and in the
process environment; every keys command runs, and stdout, stderr and every file under the
state folder are scanned for them.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys._fake import FakeProvider, Reply, env_lines, fake_provider
from tests.support import CliResult, free_port, run_cli, write_project

CANARIES = {
    "T_SLACK_BOT_TOKEN": "xoxb-9090909090-8080808080-CanarySlackBotQzx7",
    "T_SLACK_HOOK": "https://hooks.slack.com/services/TCANARY1/BCANARY2/CanaryWebhookPathQzx7",
    "T_GH": "ghp_CanaryGithubQzx7CanaryGithubQzx7CanaryGh",
    "T_OPENAI_KEY": "sk-CanaryOpenAiQzx7CanaryOpenAiQzx7",
    "T_ANTHROPIC": "sk-ant-CanaryAnthropicQzx7Canary0000",
    "T_HF": "hf_CanaryHuggingFaceQzx7CanaryHuggingFace",
    "T_POLY": "CanaryPolygonQzx7Canary",
    "T_ALPACA_ID": "PKCANARYQZX70000AAAA",
    "T_ALPACA_SECRET": "CanaryAlpacaSecret/Qzx7+CanaryAlpacaSecret",
    "T_REDIS_PASS": "CanaryRedisPasswordQzx7",
    "T_CUSTOM": "CanaryCustomQzx7Canary",
}
# Set in the process environment, shadowing a different canary in .env.
ENVIRONMENT_CANARIES = {
    "T_OPENAI_KEY": "sk-CanaryFromEnvironmentQzx7CanaryEnv",
    "T_GH": "github_pat_CanaryFromEnvironmentQzx7_CanaryEnvironment",
}
NEW_CANARY = "sk-CanaryNewlySetQzx7CanaryNewlySet"
BAD_CANARY = "CanaryMalformedQzx7-not-shaped-like-anything"
ALL_CANARIES = [*CANARIES.values(), *ENVIRONMENT_CANARIES.values(), NEW_CANARY, BAD_CANARY]


def keys_toml(url: str, redis_port: int) -> str:
    def key(name: str, provider: str, env: str, extra: str = "") -> str:
        return (
            f'\n[keys.{name}]\nprovider = "{provider}"\nenv = "{env}"\n'
            f'base_url = "{url}"\ntimeout_seconds = 2\n{extra}'
        )

    return (
        key("slack_bot", "slack_bot", "T_SLACK_BOT_TOKEN")
        + key("slack_webhook", "slack_webhook", "T_SLACK_HOOK")
        + key("github", "github", "T_GH")
        + key("openai", "openai", "T_OPENAI_KEY")
        + key("anthropic", "anthropic", "T_ANTHROPIC")
        + key("huggingface", "huggingface", "T_HF")
        + key("polygon", "polygon", "T_POLY")
        + key("alpaca", "alpaca", "T_ALPACA_ID", 'secret_env = "T_ALPACA_SECRET"\n')
        + f'\n[keys.redis]\nprovider = "redis"\nenv = "T_REDIS_PASS"\n'
        f'base_url = "redis://127.0.0.1:{redis_port}"\ntimeout_seconds = 1\n'
        + key("custom", "custom", "T_CUSTOM")
        + f'[keys.custom.verify]\nurl = "{url}/custom"\nauth = "query"\n'
        'template = "{key}"\n'
    )


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with fake_provider() as fake:
        yield fake


class Scanner:
    """Runs keys commands and checks each one's output for canaries."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config
        self.runs: list[tuple[tuple[str, ...], CliResult]] = []

    def run(self, *args: str, stdin: str = "") -> CliResult:
        saved = sys.stdin
        sys.stdin = io.StringIO(stdin)
        try:
            result = run_cli("-c", str(self.config), *args)
        finally:
            sys.stdin = saved
        self.runs.append((args, result))
        self.assert_clean(args, result)
        return result

    def assert_clean(self, args: tuple[str, ...], result: CliResult) -> None:
        for canary in ALL_CANARIES:
            assert canary not in result.stdout, (args, canary, result.stdout)
            assert canary not in result.stderr, (args, canary, result.stderr)

    def assert_state_clean(self) -> None:
        state = self.root / ".opsctl"
        files = [path for path in state.rglob("*") if path.is_file()]
        for path in files:
            data = path.read_bytes()
            for canary in ALL_CANARIES:
                assert canary.encode() not in data, (path, canary)


def make_scanner(root: Path, url: str, monkeypatch: pytest.MonkeyPatch, env: str) -> Scanner:
    for name, value in ENVIRONMENT_CANARIES.items():
        monkeypatch.setenv(name, value)
    config = write_project(root, keys_toml(url, free_port()), env=env)
    return Scanner(root, config)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, '{"ok": true, "team": "T", "user": "U"}'),
        Reply(401, '{"ok": false, "error": "invalid_auth"}'),
        Reply(429, "{}", headers={"Retry-After": "5"}),
        Reply(500, "<html>boom</html>", "text/html"),
    ],
    ids=["valid", "invalid", "rate-limited", "failing"],
)
def test_every_keys_command_keeps_canaries_hidden(
    tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch, reply: Reply
) -> None:
    server.answer(reply)
    root = tmp_path / "project"
    scanner = make_scanner(root, server.url, monkeypatch, env_lines(CANARIES))

    scanner.run("keys", "status")
    scanner.run("keys", "status", "--json")
    scanner.run("-v", "keys", "verify")
    scanner.run("keys", "verify", "--json")
    scanner.run("--debug", "keys", "verify", "openai", "github", "polygon", "alpaca")
    scanner.run("keys", "verify", "no_such_key")
    scanner.run("--debug", "keys", "verify", "no_such_key")
    scanner.run("keys", "status", "--json")  # now with recorded verdicts

    assert scanner.run("keys", "set", "openai", "--stdin", stdin=NEW_CANARY).exit_code == 0
    assert scanner.run("keys", "set", "openai", "--stdin", stdin=BAD_CANARY).exit_code == 2
    failed = scanner.run("--debug", "keys", "set", "github", "--stdin", stdin=BAD_CANARY)
    assert failed.exit_code == 2
    assert "Traceback" in failed.stderr
    scanner.run("--debug", "keys", "set", "T_NEW", "--stdin", stdin=BAD_CANARY + "${HOME}")
    scanner.run("keys", "set", "openai")  # no --stdin, no terminal
    scanner.run("keys", "setup")
    scanner.run("--debug", "keys", "setup")
    scanner.run("keys", "unset", "T_HF")
    scanner.run("keys", "unset", "T_HF")
    scanner.run("keys", "status")
    scanner.run("-q", "keys", "status")
    scanner.assert_state_clean()
    assert len(server.seen()) >= 8


def test_a_bad_env_line_keeps_canaries_hidden(
    tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    broken = (
        env_lines(CANARIES)
        + f"T_BROKEN {CANARIES['T_OPENAI_KEY']} no equals sign\n"
        + f"T_UNTERMINATED='{CANARIES['T_GH']}\n"
    )
    scanner = make_scanner(root, server.url, monkeypatch, broken)
    before = (root / ".env").read_bytes()

    for args in [
        ("keys", "status"),
        ("keys", "status", "--json"),
        ("keys", "verify", "--json"),
        ("--debug", "keys", "verify"),
        ("keys", "unset", "T_HF"),
        ("--debug", "keys", "unset", "T_HF"),
        ("--debug", "-v", "keys", "status"),
    ]:
        scanner.run(*args)
    result = scanner.run("keys", "set", "openai", "--stdin", stdin=NEW_CANARY)
    assert result.exit_code == 2
    assert "cannot parse" in result.stderr
    result = scanner.run("--debug", "keys", "set", "openai", "--stdin", stdin=NEW_CANARY)
    assert result.exit_code == 2
    assert (root / ".env").read_bytes() == before
    scanner.assert_state_clean()


def test_unexpected_failures_keep_canaries_hidden(
    tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    scanner = make_scanner(root, server.url, monkeypatch, env_lines(CANARIES))
    # The records' folder cannot be created: recording verdicts fails after the requests.
    (root / ".opsctl").mkdir()
    (root / ".opsctl" / "keys").write_text("not a folder\n")
    for args in [("keys", "verify"), ("--debug", "keys", "verify", "--json")]:
        result = scanner.run(*args)
        assert result.exit_code != 0
        assert "error:" in result.stderr
    # The .env path is a folder: writing fails.
    env = root / ".env"
    env.unlink()
    env.mkdir()
    result = scanner.run("--debug", "keys", "set", "openai", "--stdin", stdin=NEW_CANARY)
    assert result.exit_code != 0
    assert "Traceback" in result.stderr
