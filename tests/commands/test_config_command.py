"""`config show`, `config validate`, `config render`, and how bad configs stop every command."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsctl.runtime import StatePaths
from tests.support import run_cli, write_project

API_TOKEN = "tok-live-0123456789abcdef"
REDIS_PASSWORD = "redis-pass-5b7c9e1f"
DB_PASSWORD = "pg-pass-a1b2c3d4e5"
DOTENV_SECRET = "dotenv-key-9f8e7d6c5b4a"

SECRETS_TOML = f"""
    [services.cache]
    command = ["sleep", "100"]
    port = 7501
    environment = {{ API_TOKEN = "{API_TOKEN}", PLAIN_SETTING = "visible-value" }}

    [[services.cache.health]]
    kind = "redis"
    url = "redis://127.0.0.1:{{port}}/0"
    password = "{REDIS_PASSWORD}"

    [services.web]
    command = "python3 -m http.server {{port}} --api-key ${{SERVICE_API_KEY}}"
    port = 7502
    depends_on = ["cache"]

    [services.web.environment]
    DATABASE_URL = "postgresql://appuser:{DB_PASSWORD}@127.0.0.1:5432/appdb"
    SERVICE_API_KEY = "${{SERVICE_API_KEY}}"
"""

GOOD_TOML = """
    [project]
    name = "renderdemo"

    [services.cache]
    command = ["sleep", "100"]
    port = 7601

    [services.web]
    command = "python3 -m http.server {port}"
    port = 7602
    depends_on = ["cache"]
    stop_timeout_seconds = 17
    environment = { APP_SECRET = "${APP_SECRET}" }

    [services.worker]
    command = "sleep 100"
    depends_on = ["web"]
    stop_timeout_seconds = 33
"""


def assert_nothing_started(root: Path) -> None:
    """No state folder, supervisord pid file or socket exists for the project at ``root``."""
    paths = StatePaths(root / ".opsctl")
    assert not paths.pid_file.exists(), "supervisord pid file was written"
    assert not paths.socket_file.exists(), "supervisord socket was created"
    assert not paths.state_dir.exists(), "state folder was written"


def secret_free(output: str, *secrets: str) -> None:
    """Fail if any of ``secrets`` appears in full in ``output``."""
    for secret in secrets:
        assert secret not in output, f"secret {secret[:4]}... printed in full"


# Bad configs: every one exits 2, names file, key and line, starts and writes nothing


@dataclass(frozen=True)
class BadConfig:
    """One broken opsctl.toml and what the error about it must say."""

    toml: str
    key: str | None
    says: tuple[str, ...]


BAD_CONFIGS: dict[str, BadConfig] = {
    "malformed_toml": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"
            port = 70 01
        """,
        key=None,
        says=("not valid TOML", "line 3"),
    ),
    "unterminated_table_header": BadConfig(
        toml="""
            [services.redis
            command = "sleep 100"
        """,
        key=None,
        says=("not valid TOML", "line 1"),
    ),
    "unknown_key_typo": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"
            prot = 7001
        """,
        key="services.redis.prot",
        says=("did you mean 'port'", "line 3"),
    ),
    "unknown_key_typo_in_health_check": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"

            [[services.redis.health]]
            kind = "tcp"
            prot = 7001
        """,
        key="services.redis.health.0.prot",
        says=("did you mean 'port'", "line 6"),
    ),
    "dependency_cycle": BadConfig(
        toml="""
            [services.a]
            command = "sleep 100"
            depends_on = ["b"]

            [services.b]
            command = "sleep 100"
            depends_on = ["c"]

            [services.c]
            command = "sleep 100"
            depends_on = ["a"]
        """,
        key="services.a.depends_on",
        says=("dependency cycle", "a -> b -> c -> a", "line 3"),
    ),
    "self_dependency": BadConfig(
        toml="""
            [services.a]
            command = "sleep 100"
            depends_on = ["a"]
        """,
        key="services.a.depends_on.0",
        says=("cannot depend on itself", "line 3"),
    ),
    "two_services_one_port": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"
            port = 7001

            [services.cache]
            command = "sleep 100"
            port = 7001
        """,
        key="services.cache.port",
        says=("port 7001 is also used by service 'redis'", "line 7"),
    ),
    "executable_not_on_path": BadConfig(
        toml="""
            [services.app]
            command = "opsctl-test-no-such-program --serve"
        """,
        key="services.app.command",
        says=("opsctl-test-no-such-program", "not found on PATH", "line 2"),
    ),
    "executable_path_missing": BadConfig(
        toml="""
            [services.app]
            command = ["./bin/not-there", "--serve"]
        """,
        key="services.app.command",
        says=("./bin/not-there", "does not exist", "line 2"),
    ),
    "reference_names_nothing": BadConfig(
        toml="""
            [services.app]
            command = "sleep {services.nope.port}"
        """,
        key="services.app.command",
        says=("{services.nope.port}", "names nothing", "line 2"),
    ),
    "env_placeholder_unset": BadConfig(
        toml="""
            [services.app]
            command = "sleep 100"

            [services.app.environment]
            TARGET = "${UNSET_VAR}"
        """,
        key="services.app.environment.TARGET",
        says=("${UNSET_VAR}", "not set", "line 5"),
    ),
    "port_reference_without_port": BadConfig(
        toml="""
            [services.app]
            command = "sleep {port}"
        """,
        key="services.app.command",
        says=("{port}", "names nothing", "line 2"),
    ),
    "depends_on_unknown_service": BadConfig(
        toml="""
            [services.app]
            command = "sleep 100"
            depends_on = ["ghost"]
        """,
        key="services.app.depends_on.0",
        says=("'ghost'", "line 3"),
    ),
    "wrong_type_port": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"
            port = "six-three-seven-nine"
        """,
        key="services.redis.port",
        says=("valid integer", "line 3"),
    ),
    "wrong_type_in_health_check": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"

            [[services.redis.health]]
            kind = "tcp"
            port = "x"
        """,
        key="services.redis.health.0.port",
        says=("valid integer", "line 6"),
    ),
    "port_out_of_range": BadConfig(
        toml="""
            [services.redis]
            command = "sleep 100"
            port = 70000
        """,
        key="services.redis.port",
        says=("65535", "line 3"),
    ),
    "missing_command": BadConfig(
        toml="""
            [services.redis]
            port = 7001
        """,
        key="services.redis.command",
        says=("required key is missing", "line 1"),
    ),
    "unknown_section": BadConfig(
        toml="""
            [servicse.redis]
            command = "sleep 100"
        """,
        key="servicse",
        says=("did you mean 'services'", "line 1"),
    ),
}


@pytest.mark.parametrize("command", [["config", "validate"], ["up"]], ids=["validate", "up"])
@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_bad_config_exits_2_naming_file_and_key_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, command: list[str]
) -> None:
    """Each broken config exits 2 naming file, key path and line, with no traceback and no state."""
    monkeypatch.delenv("UNSET_VAR", raising=False)
    bad = BAD_CONFIGS[case]
    root = tmp_path / "proj"
    path = write_project(root, bad.toml)

    result = run_cli("-c", str(path), *command)

    assert result.exit_code == 2, result.output
    assert str(path.resolve()) in result.stderr
    if bad.key is not None:
        assert f"{bad.key}:" in result.stderr
    for fragment in bad.says:
        assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert_nothing_started(root)


def test_bad_config_error_says_nothing_was_started(tmp_path: Path) -> None:
    """A config error carries the hint that nothing was started or written."""
    path = write_project(tmp_path, BAD_CONFIGS["two_services_one_port"].toml)
    result = run_cli("-c", str(path), "up")
    assert result.exit_code == 2
    assert "Nothing was started or written." in result.stderr


def test_bad_config_several_problems_all_reported(tmp_path: Path) -> None:
    """Several cross-key problems are reported in one run, each with its key path."""
    path = write_project(
        tmp_path,
        """
        [services.a]
        command = "sleep 100"
        port = 7001

        [services.b]
        command = "opsctl-test-no-such-program"
        port = 7001
        """,
    )
    result = run_cli("-c", str(path), "config", "validate")
    assert result.exit_code == 2
    assert "2 configuration problems" in result.stderr
    assert "services.b.port" in result.stderr
    assert "services.b.command" in result.stderr


def test_bad_config_unknown_check_kind_does_not_print_password(tmp_path: Path) -> None:
    """A mistyped check kind is reported without printing that check's password in full."""
    path = write_project(
        tmp_path,
        f"""
        [services.cache]
        command = "sleep 100"

        [[services.cache.health]]
        kind = "rediss"
        password = "{REDIS_PASSWORD}"
        """,
    )
    result = run_cli("-c", str(path), "config", "validate")
    assert result.exit_code == 2
    assert "services.cache.health.0" in result.stderr
    assert "rediss" in result.stderr
    secret_free(result.output, REDIS_PASSWORD)


# config show


def test_config_show_json_masks_secrets_and_keeps_plain_values(tmp_path: Path) -> None:
    """show --json masks secret-named values, check passwords and URL passwords; the rest shows."""
    path = write_project(tmp_path, SECRETS_TOML, env=f"SERVICE_API_KEY={DOTENV_SECRET}\n")
    result = run_cli("-c", str(path), "config", "show", "--json")

    assert result.exit_code == 0, result.output
    secret_free(result.output, API_TOKEN, REDIS_PASSWORD, DB_PASSWORD, DOTENV_SECRET)

    document = json.loads(result.stdout)
    assert document["config_file"] == str(path.resolve())
    services = document["config"]["services"]
    cache, web = services["cache"], services["web"]
    assert cache["environment"]["PLAIN_SETTING"] == "visible-value"
    assert cache["environment"]["API_TOKEN"] != API_TOKEN
    assert cache["health"][0]["url"] == "redis://127.0.0.1:7501/0"
    assert cache["health"][0]["password"] != REDIS_PASSWORD
    database_url = web["environment"]["DATABASE_URL"]
    assert database_url.startswith("postgresql://appuser:")
    assert database_url.endswith("@127.0.0.1:5432/appdb")
    assert web["command"].startswith("python3 -m http.server 7502 --api-key ")
    notify = document["config"]["notify"]
    assert notify["slack_webhook_url_env"] == "SLACK_WEBHOOK_URL"


def test_config_show_text_masks_secrets(tmp_path: Path) -> None:
    """The TOML form of show masks the same secrets as the JSON form."""
    path = write_project(tmp_path, SECRETS_TOML, env=f"SERVICE_API_KEY={DOTENV_SECRET}\n")
    result = run_cli("-c", str(path), "config", "show")
    assert result.exit_code == 0, result.output
    secret_free(result.output, API_TOKEN, REDIS_PASSWORD, DB_PASSWORD, DOTENV_SECRET)
    assert "visible-value" in result.stdout
    assert "appuser" in result.stdout


def test_config_show_text_is_toml_matching_json(tmp_path: Path) -> None:
    """show prints TOML that parses to the same values as show --json (nulls left out)."""
    path = write_project(tmp_path, SECRETS_TOML, env=f"SERVICE_API_KEY={DOTENV_SECRET}\n")
    text = run_cli("-c", str(path), "config", "show")
    as_json = run_cli("-c", str(path), "config", "show", "--json")
    assert text.exit_code == as_json.exit_code == 0

    def without_nulls(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_nulls(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_nulls(item) for item in value]
        return value

    parsed = tomllib.loads(text.stdout)
    assert parsed == without_nulls(json.loads(as_json.stdout)["config"])


def test_config_show_json_masks_process_environment_secret_in_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret-named variable from the process environment, expanded into a command, is masked."""
    path = write_project(
        tmp_path,
        """
        [services.app]
        command = "python3 -m http.server 7701 --token ${APP_API_TOKEN}"
        """,
    )
    secret = "proc-env-token-31415926535"
    monkeypatch.setenv("APP_API_TOKEN", secret)
    result = run_cli("-c", str(path), "config", "show", "--json")
    assert result.exit_code == 0, result.output
    secret_free(result.output, secret)


def test_config_show_json_prints_only_json_on_stdout(tmp_path: Path) -> None:
    """show --json writes exactly one JSON document on stdout."""
    path = write_project(tmp_path, GOOD_TOML, env="APP_SECRET=abc\n")
    result = run_cli("-c", str(path), "config", "show", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"config_file", "root", "config"}
    assert document["root"] == str(tmp_path.resolve())


# config validate


def test_config_validate_good_config_exits_0_and_counts_services(tmp_path: Path) -> None:
    """validate on a good config exits 0, names the file and counts its services."""
    path = write_project(tmp_path, GOOD_TOML, env="APP_SECRET=abc\n")
    result = run_cli("-c", str(path), "config", "validate")
    assert result.exit_code == 0, result.output
    assert str(path.resolve()) in result.stdout
    assert "valid: 3 services" in result.stdout
    assert "Traceback" not in result.output


def test_config_validate_good_config_writes_no_state(tmp_path: Path) -> None:
    """validate reads the config and writes nothing into the project."""
    path = write_project(tmp_path, GOOD_TOML, env="APP_SECRET=abc\n")
    assert run_cli("-c", str(path), "config", "validate").exit_code == 0
    assert_nothing_started(tmp_path)


def test_config_validate_empty_file_exits_0_with_no_services(tmp_path: Path) -> None:
    """An empty opsctl.toml is valid and has no services."""
    path = write_project(tmp_path, "")
    result = run_cli("-c", str(path), "config", "validate")
    assert result.exit_code == 0, result.output
    assert "valid: 0 services" in result.stdout


# config render supervisord


def render(tmp_path: Path) -> str:
    """Render supervisord.conf for GOOD_TOML with a secret in .env; return the output."""
    secret_line = f"APP_SECRET={DOTENV_SECRET}\n"
    path = write_project(tmp_path, GOOD_TOML, env=secret_line)
    result = run_cli("-c", str(path), "config", "render", "supervisord")
    assert result.exit_code == 0, result.output
    return result.stdout


def program_sections(conf: str) -> dict[str, dict[str, str]]:
    """Parse the [program:NAME] sections of a rendered supervisord.conf."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in conf.splitlines():
        if line.startswith("[program:"):
            current = sections.setdefault(line[len("[program:") : -1], {})
        elif line.startswith("["):
            current = None
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def test_config_render_supervisord_has_one_program_per_service(tmp_path: Path) -> None:
    """render supervisord writes exactly one [program:NAME] section per service."""
    conf = render(tmp_path)
    assert set(program_sections(conf)) == {"cache", "web", "worker"}
    for name in ("cache", "web", "worker"):
        assert conf.count(f"[program:{name}]") == 1


def test_config_render_supervisord_stops_whole_process_groups(tmp_path: Path) -> None:
    """Every program stops and kills its whole process group."""
    for name, section in program_sections(render(tmp_path)).items():
        assert section.get("stopasgroup") == "true", name
        assert section.get("killasgroup") == "true", name


def test_config_render_supervisord_uses_configured_stop_timeouts(tmp_path: Path) -> None:
    """stopwaitsecs is each service's stop_timeout_seconds, the default 10 where unset."""
    sections = program_sections(render(tmp_path))
    assert sections["web"]["stopwaitsecs"] == "17"
    assert sections["worker"]["stopwaitsecs"] == "33"
    assert sections["cache"]["stopwaitsecs"] == "10"


def test_config_render_supervisord_orders_priorities_by_dependency(tmp_path: Path) -> None:
    """A service gets a higher supervisord priority number than what it depends on."""
    sections = program_sections(render(tmp_path))
    cache, web, worker = (int(sections[n]["priority"]) for n in ("cache", "web", "worker"))
    assert cache < web < worker


def test_config_render_supervisord_contains_no_dotenv_secret(tmp_path: Path) -> None:
    """The rendered supervisord.conf carries no secret value from .env."""
    conf = render(tmp_path)
    assert DOTENV_SECRET not in conf
    assert DOTENV_SECRET[:8] not in conf


def test_config_render_supervisord_output_option_writes_same_text(tmp_path: Path) -> None:
    """render -o FILE writes what render prints to stdout."""
    printed = render(tmp_path)
    target = tmp_path / "out" / "supervisord.conf"
    target.parent.mkdir()
    result = run_cli(
        "-c", str(tmp_path / "opsctl.toml"), "config", "render", "supervisord", "-o", str(target)
    )
    assert result.exit_code == 0, result.output
    assert target.read_text() == printed


def test_config_render_unknown_target_exits_2(tmp_path: Path) -> None:
    """An unknown render target is a usage error (exit 2)."""
    path = write_project(tmp_path, GOOD_TOML, env="APP_SECRET=abc\n")
    result = run_cli("-c", str(path), "config", "render", "nginx")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
