"""verify_keys: what is sent and what is not, custom providers, Redis AUTH, the records."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.config import Project
from opsctl.keys import KeyResult, key_states, last_verification, load_records, verify_keys
from tests.keys._fake import (
    GITHUB,
    OPENAI,
    FakeProvider,
    Reply,
    env_lines,
    fake_provider,
    make_project,
)
from tests.support import free_port, wait_for

REDIS_PASSWORD = "redis-Pass-0123456789-secret"


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with fake_provider() as fake:
        yield fake


def statuses(project: Project) -> dict[str, str]:
    return {result.name: result.status for result in verify_all(project)}


def test_resolution_prefers_the_environment_and_names_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_BOTH", OPENAI + "env")
    toml = """
    [keys.both]
    provider = "openai"
    env = "T_BOTH"
    [keys.file_only]
    provider = "openai"
    env = "T_FILE_ONLY"
    [keys.nowhere]
    provider = "openai"
    env = "T_NOWHERE"
    """
    env = env_lines({"T_BOTH": OPENAI + "file", "T_FILE_ONLY": OPENAI})
    states = {s.name: s for s in key_states(make_project(tmp_path / "p", toml, env=env))}
    assert (states["both"].value, states["both"].source) == (OPENAI + "env", "environment")
    assert (states["file_only"].value, states["file_only"].source) == (OPENAI, ".env")
    assert (states["nowhere"].value, states["nowhere"].source) == (None, None)
    assert not states["nowhere"].present


def test_bad_format_and_missing_keys_send_no_request(tmp_path: Path, server: FakeProvider) -> None:
    toml = f"""
    [keys.malformed]
    provider = "openai"
    env = "T_MALFORMED"
    base_url = "{server.url}"
    [keys.absent]
    provider = "github"
    env = "T_ABSENT"
    base_url = "{server.url}"
    [keys.stricter]
    provider = "openai"
    env = "T_STRICTER"
    format = "sk-[a-z]{{5}}"
    base_url = "{server.url}"
    """
    env = env_lines({"T_MALFORMED": "not-an-openai-key", "T_STRICTER": OPENAI})
    project = make_project(tmp_path / "p", toml, env=env)
    results = {r.name: r for r in verify_keys(project, key_states(project))}
    assert results["malformed"].status == "bad-format"
    assert "no request sent" in results["malformed"].detail
    assert results["absent"].status == "missing"
    assert "T_ABSENT" in results["absent"].detail
    assert results["stricter"].status == "bad-format"
    assert server.seen() == []


def test_keys_are_verified_concurrently(tmp_path: Path, server: FakeProvider) -> None:
    server.answer(Reply(delay_seconds=0.5))
    toml = "".join(
        f"""
    [keys.k{index}]
    provider = "openai"
    env = "T_K{index}"
    base_url = "{server.url}"
    """
        for index in range(6)
    )
    env = env_lines({f"T_K{index}": OPENAI + str(index) for index in range(6)})
    project = make_project(tmp_path / "p", toml, env=env)
    begin = time.monotonic()
    assert set(statuses(project).values()) == {"valid"}
    assert time.monotonic() - begin < 1.5
    assert len(server.seen()) == 6


def custom_toml(url: str, verify: str, *, extra: str = "", template: str = "{key}") -> str:
    """A custom provider aimed at ``url``.

    In opsctl.toml ``{...}`` is a config placeholder and ``{{``/``}}`` literal braces, so the
    helper writes the key template escaped; the documented unescaped form has its own tests.
    """
    template_line = f'template = "{template}"' if template else ""
    return f"""
    [keys.custom]
    provider = "custom"
    env = "T_CUSTOM"
    secret_env = "T_CUSTOM_SECRET"
    format = "ck_[a-z0-9]{{{{12}}}}"
    {extra}
    [keys.custom.verify]
    url = "{url}/v2/check"
    {template_line}
    {verify}
    """


CUSTOM_ENV = env_lines({"T_CUSTOM": "ck_abc123def456", "T_CUSTOM_SECRET": "shh-secret-part"})


def verify_custom(tmp_path: Path, toml: str) -> str:
    project = make_project(tmp_path / "p", toml, env=CUSTOM_ENV)
    return statuses(project)["custom"]


def test_custom_provider_with_a_header_from_a_template(
    tmp_path: Path, server: FakeProvider
) -> None:
    verify = 'method = "POST"\nauth = "header"\nheader = "X-Auth"'
    toml = custom_toml(server.url, verify, template="Token {key}:{secret}")
    assert verify_custom(tmp_path, toml) == "valid"
    [seen] = server.seen()
    assert (seen.method, seen.path) == ("POST", "/v2/check")
    assert seen.headers["x-auth"] == "Token ck_abc123def456:shh-secret-part"
    assert "authorization" not in seen.headers


@pytest.mark.parametrize(
    "template",
    ["{key}", ""],
    ids=["documented-template", "default-template"],
)
def test_custom_provider_as_documented_loads_and_verifies(
    tmp_path: Path, server: FakeProvider, template: str
) -> None:
    """docs/keys.md writes ``template = "{key}"``, and the default template is ``{key}``."""
    verify = 'auth = "header"\nheader = "X-Api-Key"'
    assert verify_custom(tmp_path, custom_toml(server.url, verify, template=template)) == "valid"
    [seen] = server.seen()
    assert seen.headers["x-api-key"] == "ck_abc123def456"


def test_custom_provider_with_bearer_auth(tmp_path: Path, server: FakeProvider) -> None:
    assert verify_custom(tmp_path, custom_toml(server.url, "")) == "valid"
    [seen] = server.seen()
    assert (seen.method, seen.path) == ("GET", "/v2/check")
    assert seen.headers["authorization"] == "Bearer ck_abc123def456"


def test_custom_provider_with_a_query_parameter(tmp_path: Path, server: FakeProvider) -> None:
    verify = 'auth = "query"\nquery_param = "token"'
    assert verify_custom(tmp_path, custom_toml(server.url, verify)) == "valid"
    [seen] = server.seen()
    assert seen.query == {"token": ["ck_abc123def456"]}
    assert "authorization" not in seen.headers


def test_custom_provider_with_basic_auth(tmp_path: Path, server: FakeProvider) -> None:
    assert verify_custom(tmp_path, custom_toml(server.url, 'auth = "basic"')) == "valid"
    [seen] = server.seen()
    expected = base64.b64encode(b"ck_abc123def456:shh-secret-part").decode()
    assert seen.headers["authorization"] == f"Basic {expected}"


def test_custom_provider_base_url_replaces_scheme_host_and_prefixes_the_path(
    tmp_path: Path, server: FakeProvider
) -> None:
    with fake_provider() as elsewhere:
        toml = custom_toml(elsewhere.url, "", extra=f'base_url = "{server.url}/gateway/"')
        assert verify_custom(tmp_path, toml) == "valid"
        assert elsewhere.seen() == []
    [seen] = server.seen()
    assert seen.path == "/gateway/v2/check"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(204, "", "text/plain"), "valid"),
        (Reply(200, "fine", "text/plain"), "valid"),
        (Reply(404, "{}"), "invalid"),
        (Reply(401, "{}"), "invalid"),
        (Reply(402, "{}"), "forbidden"),
        (Reply(403, "{}"), "unreachable"),
        (Reply(503, "{}", headers={"Retry-After": "9"}), "rate-limited"),
        (Reply(500, "{}"), "unreachable"),
    ],
)
def test_custom_provider_status_lists(
    tmp_path: Path, server: FakeProvider, reply: Reply, status: str
) -> None:
    verify = """
    valid = [200, 204]
    invalid = [401, 404]
    forbidden = [402]
    rate_limited = [429, 503]
    expect_json = false
    """
    server.answer(reply)
    assert verify_custom(tmp_path, custom_toml(server.url, verify)) == status


def test_custom_provider_expecting_json_refuses_an_html_success(
    tmp_path: Path, server: FakeProvider
) -> None:
    server.answer(Reply(200, "<html>login</html>", "text/html"))
    assert verify_custom(tmp_path, custom_toml(server.url, "")) == "unreachable"


def test_custom_provider_without_a_request_is_skipped(tmp_path: Path) -> None:
    toml = """
    [keys.custom]
    provider = "custom"
    env = "T_CUSTOM"
    """
    project = make_project(tmp_path / "p", toml, env="T_CUSTOM=anything-at-all\n")
    assert statuses(project) == {"custom": "skipped"}


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--requirepass", REDIS_PASSWORD]
    process = subprocess.Popen(argv, cwd=folder, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port), timeout_seconds=10, message="redis-server listening")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def redis_project(tmp_path: Path, port: int, password: str, *, name: str = "p") -> Project:
    toml = f"""
    [keys.redis]
    provider = "redis"
    env = "T_REDIS_PASSWORD"
    base_url = "redis://127.0.0.1:{port}"
    timeout_seconds = 2
    """
    return make_project(tmp_path / name, toml, env=env_lines({"T_REDIS_PASSWORD": password}))


def test_redis_password_against_a_real_redis(tmp_path: Path, redis_port: int) -> None:
    good = verify_all(redis_project(tmp_path, redis_port, REDIS_PASSWORD))[0]
    assert good.status == "valid", good.detail
    bad = verify_all(redis_project(tmp_path, redis_port, "wrong-password", name="q"))[0]
    assert bad.status == "invalid", bad.detail
    assert REDIS_PASSWORD not in bad.detail


def test_redis_found_through_the_redis_service(tmp_path: Path, redis_port: int) -> None:
    toml = f"""
    [services.redis]
    command = "redis-server --port {{port}}"
    port = {redis_port}
    [keys.redis]
    provider = "redis"
    env = "T_REDIS_PASSWORD"
    """
    env = env_lines({"T_REDIS_PASSWORD": REDIS_PASSWORD})
    assert statuses(make_project(tmp_path / "p", toml, env=env)) == {"redis": "valid"}


def test_redis_with_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    project = redis_project(tmp_path, free_port(), REDIS_PASSWORD)
    assert statuses(project) == {"redis": "unreachable"}


def test_redis_without_service_or_base_url_is_skipped(tmp_path: Path) -> None:
    toml = """
    [keys.redis]
    provider = "redis"
    env = "T_REDIS_PASSWORD"
    """
    env = env_lines({"T_REDIS_PASSWORD": REDIS_PASSWORD})
    assert statuses(make_project(tmp_path / "p", toml, env=env)) == {"redis": "skipped"}


def verify_all(project: Project) -> list[KeyResult]:
    return verify_keys(project, key_states(project))


def test_records_carry_a_fingerprint_and_no_secret(tmp_path: Path, server: FakeProvider) -> None:
    root = tmp_path / "p"
    toml = f"""
    [keys.openai]
    provider = "openai"
    env = "T_OPENAI"
    base_url = "{server.url}"
    [keys.github]
    provider = "github"
    env = "T_GITHUB"
    base_url = "{server.url}"
    """
    project = make_project(root, toml, env=env_lines({"T_OPENAI": OPENAI, "T_GITHUB": GITHUB}))
    results = verify_keys(project, key_states(project))
    assert {r.status for r in results} == {"valid"}

    records = load_records(project)
    assert set(records) == {"openai", "github"}
    for record in records.values():
        assert re.fullmatch(r"[0-9a-f]{16}", record["fingerprint"])
        assert record["status"] == "valid"
        assert record["checked_at"].endswith("Z")
    assert records["openai"]["fingerprint"] != records["github"]["fingerprint"]
    states = {s.name: s for s in key_states(project)}
    last = last_verification(project, states["openai"])
    assert last is not None
    assert last["status"] == "valid"

    for path in project.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert OPENAI.encode() not in data, path
            assert GITHUB.encode() not in data, path
    records_file = project.state_dir / "keys" / "verifications.json"
    assert json.loads(records_file.read_text()) == records

    # A new value for one key forgets that key's verdict, and only that one.
    changed = make_project(
        root, toml, env=env_lines({"T_OPENAI": OPENAI + "changed", "T_GITHUB": GITHUB})
    )
    states = {s.name: s for s in key_states(changed)}
    assert last_verification(changed, states["openai"]) is None
    assert last_verification(changed, states["github"]) is not None


def test_a_failing_verdict_is_recorded_too(tmp_path: Path, server: FakeProvider) -> None:
    server.answer(Reply(401, "{}"))
    toml = f"""
    [keys.openai]
    provider = "openai"
    env = "T_OPENAI"
    base_url = "{server.url}"
    [keys.absent]
    provider = "openai"
    env = "T_ABSENT"
    """
    project = make_project(tmp_path / "p", toml, env=env_lines({"T_OPENAI": OPENAI}))
    verify_keys(project, key_states(project))
    records = load_records(project)
    assert records["openai"]["status"] == "invalid"
    assert "absent" not in records


def test_an_unreadable_records_file_counts_as_none(tmp_path: Path) -> None:
    toml = """
    [keys.openai]
    provider = "openai"
    env = "T_OPENAI"
    """
    project = make_project(tmp_path / "p", toml, env=env_lines({"T_OPENAI": OPENAI}))
    records_file = project.state_dir / "keys" / "verifications.json"
    records_file.parent.mkdir(parents=True)
    records_file.write_text("{not json")
    assert load_records(project) == {}
    assert last_verification(project, key_states(project)[0]) is None
