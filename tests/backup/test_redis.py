"""Redis backups against real redis-server processes: snapshot, flush, restore, compare."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.backup._helpers import BackupProject
from tests.runtime.conftest import StackProject
from tests.support import RedisServer, free_port, start_redis, write_project

MakeStack = Callable[..., StackProject]


def fill(client: Any) -> None:
    """Keys of every common type, in two databases, one with a TTL."""
    client.set("greeting", "hello")
    client.set(b"binary", bytes(range(256)))
    client.hset("user:1", mapping={"name": "Ada", "role": "admin"})
    client.rpush("queue", "a", "b", "c")
    client.sadd("tags", "x", "y")
    client.zadd("scores", {"p": 1.5, "q": 2.0})
    client.set("session", "s", ex=86400)
    client.execute_command("SELECT", 1)
    client.set("other-db", "yes")
    client.execute_command("SELECT", 0)


def read_value(client: Any, key: bytes) -> object:
    kind = client.type(key)
    if kind == b"string":
        return client.get(key)
    if kind == b"hash":
        return client.hgetall(key)
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"set":
        return client.smembers(key)
    return client.zrange(key, 0, -1, withscores=True)


def contents(port: int, password: str | None = None) -> dict[tuple[int, bytes], object]:
    """Every key of every database with its type, value and whether it expires."""
    found: dict[tuple[int, bytes], object] = {}
    for db in (0, 1):
        client = redis.Redis(port=port, db=db, password=password)
        for key in client.scan_iter():
            found[(db, key)] = (client.type(key), read_value(client, key), client.pttl(key) > 0)
        client.close()
    return found


REDIS_FLAGS = "--save '' --appendonly no"


def redis_stack_toml(port: int, data: Path, extra: str = "") -> str:
    return f"""
        [services.redis]
        command = "redis-server --port {{port}} --bind 127.0.0.1 --dir {data} {REDIS_FLAGS}"
        port = {port}
        [[services.redis.health]]
        kind = "redis"

        [backup]
        redis = "redis"
        {extra}
    """


def test_backup_flush_restore_gives_the_same_keys_and_values(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """The stack's Redis: back up, FLUSHALL, restore in place: every key and value is back,
    TTLs too, and the replaced snapshot is kept beside the new one.
    """
    port, data = free_port(), tmp_path / "redis-data"
    data.mkdir()
    stack = make_stack(redis_stack_toml(port, data))
    assert stack.cli("up").exit_code == 0
    client = redis.Redis(port=port)
    fill(client)
    before = contents(port)

    run = stack.cli("backup", "run", "--json")
    assert run.exit_code == 0, run.output
    backup = json.loads(run.stdout)
    metadata = backup["sources"][0]["metadata"]
    assert metadata["method"] == "host"
    assert metadata["keys"] == 8
    client.flushall()
    client.set("written-after", "1")
    restore = stack.cli("backup", "restore", backup["id"], "--yes", "--json")

    assert restore.exit_code == 0, restore.output
    outcome = json.loads(restore.stdout)["sources"][0]
    assert outcome["status"] == "pass"
    assert "8 keys after the restore, 8 at backup time" in outcome["detail"]
    assert contents(port) == before
    assert redis.Redis(port=port).ttl("session") > 80000
    assert list(data.glob(f"dump.rdb.before-restore-{backup['id']}"))


def test_restore_dry_run_leaves_redis_running_untouched(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """--dry-run says it would stop the service and swap the file, and does neither."""
    port, data = free_port(), tmp_path / "redis-data"
    data.mkdir()
    stack = make_stack(redis_stack_toml(port, data))
    assert stack.cli("up").exit_code == 0
    fill(redis.Redis(port=port))
    backup_id = json.loads(stack.cli("backup", "run", "--json").stdout)["id"]
    redis.Redis(port=port).flushall()
    pid = stack.pid("redis")

    result = stack.cli("backup", "restore", backup_id, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would stop redis" in result.stdout
    assert stack.pid("redis") == pid
    assert redis.Redis(port=port).dbsize() == 0


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    started: list[RedisServer] = []
    yield started
    for server in started:
        server.stop()


def url_project(root: Path, server: RedisServer) -> BackupProject:
    password = f'\n[redis]\npassword = "{server.password}"\n' if server.password else ""
    config = write_project(root, f'[backup]\nredis = "{server.url}"\n{password}')
    return BackupProject(root, config)


def load_rdb(rdb: Path, servers: list[RedisServer]) -> int:
    """Start a fresh redis-server on ``rdb``; return its port."""
    server = start_redis(rdb.parent, extra=["--dbfilename", rdb.name])
    servers.append(server)
    return server.port


@pytest.mark.parametrize("diskless", ["yes", "no"])
def test_without_file_access_the_snapshot_comes_over_the_network(
    tmp_path: Path, servers: list[RedisServer], diskless: str
) -> None:
    """With CONFIG disabled (no way to find the file), the snapshot is fetched like
    redis-cli --rdb, sized or diskless, with a password; it loads into a fresh Redis.
    """
    server = start_redis(
        tmp_path / "source",
        password="s3cret-pass-word",
        extra=["--rename-command", "CONFIG", "", "--repl-diskless-sync", diskless],
    )
    servers.append(server)
    fill(server.client())
    project = url_project(tmp_path / "proj", server)

    run = project.cli("backup", "run", "--json")
    assert run.exit_code == 0, run.output
    assert "s3cret-pass-word" not in run.stdout
    assert json.loads(run.stdout)["sources"][0]["metadata"]["method"] == "network"
    restore = project.cli("backup", "restore", "latest", "--to", str(tmp_path / "out"))
    assert restore.exit_code == 0, restore.output

    port = load_rdb(tmp_path / "out" / "redis" / "dump.rdb", servers)
    assert contents(port) == contents(server.port, server.password)


def test_a_save_already_running_is_waited_out_and_followed_by_ours(
    tmp_path: Path, servers: list[RedisServer]
) -> None:
    """A BGSAVE started by someone else before the run may predate it: the run waits for
    it, saves again, and so holds a key written after that other save began.
    """
    server = start_redis(tmp_path / "source")
    servers.append(server)
    client = server.client()
    for index in range(2000):
        client.set(f"key:{index}", index)
    client.config_set("rdb-key-save-delay", 1000)  # 1 ms a key: the save takes about 2 s
    client.bgsave()
    client.set("late", "after their save began")
    project = url_project(tmp_path / "proj", server)

    client.config_set("rdb-key-save-delay", 0)
    run = project.cli("backup", "run", "--json")

    assert run.exit_code == 0, run.output
    assert int(client.info("persistence")["rdb_saves"]) >= 2
    project.cli("backup", "restore", "latest", "--to", str(tmp_path / "out"))
    port = load_rdb(tmp_path / "out" / "redis" / "dump.rdb", servers)
    assert redis.Redis(port=port).get("late") == b"after their save began"


def test_a_failing_background_save_fails_the_run_clearly(
    tmp_path: Path, servers: list[RedisServer]
) -> None:
    """When Redis cannot write its snapshot the run exits 1, says so, and lists nothing."""
    server = start_redis(tmp_path / "source")
    servers.append(server)
    server.client().set("k", "v")
    (tmp_path / "source" / "dump.rdb").mkdir()  # the rename onto it fails in Redis
    project = url_project(tmp_path / "proj", server)

    run = project.cli("backup", "run")

    assert run.exit_code == 1
    assert "last background save failed" in run.stderr
    assert "Traceback" not in run.output
    assert project.listed() == []


def test_restore_in_place_into_a_redis_that_is_no_service_is_refused(
    tmp_path: Path, servers: list[RedisServer]
) -> None:
    """opsctl cannot stop a Redis it does not run: it says to use --to, exit 2."""
    server = start_redis(tmp_path / "source")
    servers.append(server)
    server.client().set("k", "v")
    project = url_project(tmp_path / "proj", server)
    assert project.cli("backup", "run").exit_code == 0

    result = project.cli("backup", "restore", "latest", "--yes")

    assert result.exit_code == 2
    assert "--to DIR" in result.stderr
    assert server.client().get("k") == b"v"


def test_a_redis_that_does_not_answer_fails_the_run(tmp_path: Path) -> None:
    """A Redis that is down: exit 1 naming it, nothing committed."""
    root = tmp_path / "proj"
    config = write_project(root, f'[backup]\nredis = "redis://127.0.0.1:{free_port()}/0"\n')
    project = BackupProject(root, config)

    run = project.cli("backup", "run")

    assert run.exit_code == 1
    assert "Redis at redis://127.0.0.1:" in run.stderr
    assert project.listed() == []


def test_restore_into_a_stack_that_is_down_says_to_start_it(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    """With the stack down, an in-place Redis restore exits 1 and says what to do."""
    port, data = free_port(), tmp_path / "redis-data"
    data.mkdir()
    stack = make_stack(redis_stack_toml(port, data))
    assert stack.cli("up").exit_code == 0
    fill(redis.Redis(port=port))
    assert stack.cli("backup", "run").exit_code == 0
    assert stack.cli("down").exit_code == 0

    result = stack.cli("backup", "restore", "latest", "--yes")

    assert result.exit_code == 1
    assert "does not answer" in result.stderr
    assert "opsctl up" in result.stderr
    assert "Traceback" not in result.output


def test_a_password_in_the_url_query_is_never_shown(
    tmp_path: Path, servers: list[RedisServer]
) -> None:
    """``?password=`` in backup.redis: the run's JSON, the manifest, an error and config
    show carry it masked only.
    """
    secret = "S3cr3t-query-pw"
    server = start_redis(tmp_path / "source", password=secret)
    servers.append(server)
    root = tmp_path / "proj"
    url = f"redis://127.0.0.1:{server.port}/0?password={secret}"
    config = write_project(root, f'[backup]\nredis = "{url}"\n')
    project = BackupProject(root, config)

    run = project.cli("backup", "run", "--json")
    shown = project.cli("config", "show")
    server.stop()
    failed = project.cli("backup", "run")

    assert run.exit_code == 0, run.output
    assert failed.exit_code == 1
    manifests = "".join(path.read_text() for path in project.backups.glob("*.json"))
    for text in (run.output, manifests, failed.output, shown.output):
        assert secret not in text
    assert "password=********" in run.stdout
