"""``Project.redis()``: where the stack's own Redis answers, from ``[redis]`` or the services."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.config._project import RedisTarget
from opsctl.errors import ConfigError
from tests.support import write_project

SLEEPER = 'command = "sleep 60"\n'


def target(tmp_path: Path, toml: str) -> RedisTarget | None:
    return load_project(write_project(tmp_path, toml), environ={}).redis()


def test_explicit_url_wins_with_its_password(tmp_path: Path) -> None:
    toml = f"""
    [redis]
    url = "redis://127.0.0.1:7001/2"
    password = "pw-explicit"
    [services.redis]
    {SLEEPER}port = 7002
    """
    assert target(tmp_path, toml) == RedisTarget("redis://127.0.0.1:7001/2", "pw-explicit")


def test_named_service_gives_its_port(tmp_path: Path) -> None:
    toml = f"""
    [redis]
    service = "cache"
    [services.cache]
    {SLEEPER}port = 7003
    [services.redis]
    {SLEEPER}port = 7004
    """
    assert target(tmp_path, toml) == RedisTarget("redis://127.0.0.1:7003/0", None)


def test_service_called_redis_is_the_default(tmp_path: Path) -> None:
    toml = f"""
    [services.redis]
    {SLEEPER}port = 7005
    """
    assert target(tmp_path, toml) == RedisTarget("redis://127.0.0.1:7005/0", None)


def test_only_service_with_a_redis_check_is_taken_with_the_checks_password(
    tmp_path: Path,
) -> None:
    toml = f"""
    [services.store]
    {SLEEPER}port = 7006
    [[services.store.health]]
    kind = "redis"
    password = "pw-from-check"
    [services.api]
    {SLEEPER}port = 7007
    """
    assert target(tmp_path, toml) == RedisTarget("redis://127.0.0.1:7006/0", "pw-from-check")


def test_two_candidates_and_no_choice_give_none(tmp_path: Path) -> None:
    toml = f"""
    [services.one]
    {SLEEPER}port = 7008
    [[services.one.health]]
    kind = "redis"
    [services.two]
    {SLEEPER}port = 7009
    [[services.two.health]]
    kind = "redis"
    """
    assert target(tmp_path, toml) is None


def test_unknown_service_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    toml = f"""
    [redis]
    service = "nope"
    [services.redis]
    {SLEEPER}port = 7010
    """
    with pytest.raises(ConfigError) as caught:
        target(tmp_path, toml)
    assert "redis.service" in str(caught.value)
    assert "nope" in str(caught.value)


def test_redis_password_is_scrubbed_once_the_config_is_loaded(tmp_path: Path) -> None:
    from opsctl.secrets import scrub

    target(tmp_path, '[redis]\nurl = "redis://127.0.0.1:7011/0"\npassword = "plain-pw-7011"\n')
    assert "plain-pw-7011" not in scrub("auth failed with plain-pw-7011")
