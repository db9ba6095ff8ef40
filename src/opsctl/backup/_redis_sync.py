"""Fetching a Redis snapshot over the network, the way ``redis-cli --rdb`` does: as a
replica would (``SYNC``), for when opsctl has no access to Redis's files.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from opsctl import secrets
from opsctl.errors import OperationFailedError

if TYPE_CHECKING:
    from opsctl.backup._redis import RedisSource

CONNECT_TIMEOUT_SECONDS = 30.0
TRANSFER_TIMEOUT_SECONDS = 3600.0
_EOF_MARK_BYTES = 40
_CHUNK_BYTES = 1 << 20


def fetch_over_network(source: RedisSource, path: Path) -> int:
    """Ask Redis for a snapshot as a replica would (SYNC) and write it to ``path`` (0600);
    return its size. Handles the sized and the diskless (EOF-marked) transfers.
    """
    connection = _connect(source)
    try:
        reader = connection.makefile("rb")
        _command(connection, reader, source, "REPLCONF", "rdb-only", "1", optional=True)
        connection.sendall(_encode("SYNC"))
        header = _read_header(reader, source)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            if header.startswith(b"EOF:"):
                size = _copy_until_mark(reader, out, header[4:])
            else:
                size = _copy_exactly(reader, out, int(header))
            out.flush()
            os.fsync(out.fileno())
        return size
    except (OSError, ValueError) as error:
        message = f"Could not fetch a snapshot from Redis at {source.shown_url}: {error}."
        raise OperationFailedError(secrets.scrub(message)) from None
    finally:
        connection.close()


def _connect(source: RedisSource) -> socket.socket:
    parts = urlsplit(source.url)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TRANSFER_TIMEOUT_SECONDS)
        sock.connect(parts.path)
    else:
        sock = socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=CONNECT_TIMEOUT_SECONDS
        )
        sock.settimeout(TRANSFER_TIMEOUT_SECONDS)
        if parts.scheme == "rediss":
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
    reader = sock.makefile("rb")
    if source.password:
        user = unquote(parts.username) if parts.username else None
        words = ["AUTH", user, source.password] if user else ["AUTH", source.password]
        _command(sock, reader, source, *words)
    return sock


def _command(
    sock: socket.socket, reader: IO[bytes], source: RedisSource, *words: str, optional: bool = False
) -> None:
    sock.sendall(_encode(*words))
    reply = reader.readline()
    if reply.startswith(b"-") and not optional:
        message = f"Redis at {source.shown_url} answered {words[0]} with {reply.decode().strip()}"
        raise OSError(secrets.scrub(message))


def _encode(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_header(reader: IO[bytes], source: RedisSource) -> bytes:
    while True:
        line = reader.readline()
        if not line:
            message = "the connection closed before the snapshot began"
            raise OSError(message)
        if line in {b"\n", b"\r\n"}:
            continue  # keep-alive newlines while Redis prepares the snapshot
        if line.startswith(b"$"):
            return line[1:].rstrip(b"\r\n")
        if line.startswith(b"-"):
            message = f"Redis refused SYNC: {line.decode(errors='replace').strip()}"
            raise OSError(message)


def _copy_exactly(reader: IO[bytes], out: IO[bytes], size: int) -> int:
    remaining = size
    while remaining:
        data = reader.read(min(remaining, _CHUNK_BYTES))
        if not data:
            message = f"the snapshot ended after {size - remaining} of {size} bytes"
            raise OSError(message)
        out.write(data)
        remaining -= len(data)
    return size


def _copy_until_mark(reader: IO[bytes], out: IO[bytes], mark: bytes) -> int:
    if len(mark) != _EOF_MARK_BYTES:
        message = "Redis sent a malformed end-of-snapshot mark"
        raise ValueError(message)
    tail = b""
    written = 0
    while True:
        data = reader.read1(_CHUNK_BYTES) if hasattr(reader, "read1") else reader.read(4096)
        if not data:
            message = "the snapshot ended before its end mark"
            raise OSError(message)
        tail += data
        if tail.endswith(mark):
            body = tail[: -len(mark)]
            out.write(body)
            return written + len(body)
        keep = len(tail) - _EOF_MARK_BYTES
        if keep > 0:
            out.write(tail[:keep])
            written += keep
            tail = tail[keep:]
