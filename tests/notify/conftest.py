"""Fixtures for notification tests: the Slack stand-in and projects pointed at it.

No test here may reach Slack: the variables a developer may have exported are removed,
and every project names the stand-in's URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsctl.config import Project, load_project
from tests.slack_server import SlackServer
from tests.support import write_project

# Fast retries, so that failure scenarios take a fraction of a second.
FAST = """
[notify]
timeout_seconds = 1.0
backoff_seconds = 0.02
retry_cap_seconds = 5.0
max_total_seconds = 20.0
"""


@pytest.fixture(autouse=True)
def no_real_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's shell points a test at the real Slack."""
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A running Slack stand-in on 127.0.0.1."""
    with SlackServer() as server:
        yield server


ProjectFactory = Callable[..., Project]


@pytest.fixture
def make_project(tmp_path: Path, slack: SlackServer) -> ProjectFactory:
    """Build a project whose notifications go to the stand-in.

    ``via="webhook"`` (default) or ``"bot"``; ``extra`` is appended to ``[notify]``;
    ``env`` adds lines to ``.env``.
    """

    def make(
        *, via: str = "webhook", extra: str = "", env: str = "", name: str = "proj"
    ) -> Project:
        root = tmp_path / name
        toml = FAST + f'slack_api_url = "{slack.api_url}"\n' + extra
        lines = [env] if env else []
        if via == "webhook":
            lines.append(f"SLACK_WEBHOOK_URL={slack.webhook_url}")
        elif via == "bot":
            toml += f'slack_channel = "{slack.channel}"\n'
            lines.append(f"SLACK_BOT_TOKEN={slack.bot_token}")
        path = write_project(root, toml, env="\n".join(lines) + "\n")
        return load_project(path)

    return make
