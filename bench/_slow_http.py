"""A local HTTP endpoint that answers every request after a delay, for the benchmarks.

It runs in its own process, as a real service would, so that its work does not compete
with the code being measured for that interpreter's lock. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import subprocess
import sys

_SERVER = """
import asyncio, sys

BODY = b'{"ok": true, "data": []}'
HEAD = (
    "HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nConnection: close\\r\\n"
    f"Content-Length: {len(BODY)}\\r\\n\\r\\n"
).encode()

async def answer(reader, writer):
    while (await reader.readline()) not in (b"\\r\\n", b""):
        pass
    await asyncio.sleep(float(sys.argv[1]))
    writer.write(HEAD + BODY)
    await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def start_slow_server(delay_seconds: float) -> tuple[subprocess.Popen[str], int]:
    """Start the endpoint on a free loopback port; return the process and the port."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(delay_seconds)], stdout=subprocess.PIPE, text=True
    )
    if process.stdout is None:
        message = "the slow endpoint gave no output pipe"
        raise SystemExit(message)
    return process, int(process.stdout.readline())
