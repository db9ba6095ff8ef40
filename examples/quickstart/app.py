"""A small HTTP API that keeps a visit counter in Redis (standard library only).

GET /health answers 200 "ok" when Redis answers PING; GET /hits increments and returns the
counter; anything else is 404.
"""

import argparse
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def redis_command(*args: str) -> bytes:
    """Send one command to Redis in its wire protocol and return the reply's first line."""
    url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0"))
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((url.hostname, url.port or 6379), timeout=2) as conn:
        conn.sendall(request.encode())
        reply = conn.makefile("rb").readline()
    if reply.startswith(b"-"):
        raise OSError(reply[1:].strip().decode())
    return reply[1:].strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        try:
            if self.path == "/health":
                body = b"ok" if redis_command("PING") == b"PONG" else b"redis did not answer PONG"
            elif self.path == "/hits":
                body = redis_command("INCR", "quickstart:hits")
            else:
                self.send_error(404)
                return
        except OSError as error:
            self.send_response(503)
            body = f"redis unavailable: {error}".encode()
        else:
            self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
