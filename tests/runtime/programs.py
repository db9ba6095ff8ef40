"""Small programs the stack tests run under supervisord, as files they can point to."""

from __future__ import annotations

from pathlib import Path

# Listens on a port after an optional delay; on SIGTERM appends to a journal and exits
# after an optional delay; reports whether its dependency's port answered when it started.
SERVICE = """
import os, signal, socket, sys, time
name, port, journal = sys.argv[1], int(sys.argv[2]), sys.argv[3]
listen_delay = float(os.environ.get("LISTEN_DELAY", "0"))
stop_delay = float(os.environ.get("STOP_DELAY", "0"))
depends_port = int(os.environ.get("DEPENDS_PORT", "0"))

def note(text):
    with open(journal, "a") as handle:
        handle.write(f"{time.monotonic():.6f} {name} {text}\\n")

if depends_port:
    try:
        socket.create_connection(("127.0.0.1", depends_port), timeout=1).close()
        note("dependency-up")
    except OSError:
        note("dependency-down")

def on_term(signum, frame):
    note("term")
    time.sleep(stop_delay)
    note("exit")
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
note("start")
time.sleep(listen_delay)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen()
print(f"{name} listening on {port}", flush=True)
while True:
    connection, _ = server.accept()
    connection.close()
"""

# Ignores SIGTERM, and starts a child that would outlive it if only it were killed.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "1000"])
with open(sys.argv[1], "w") as handle:
    handle.write(str(child.pid))
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(1)
"""

# Runs for a moment, then fails: supervisord sees it reach RUNNING each time.
CRASHER = """
import sys, time
print("up for a moment", flush=True)
time.sleep(1.3)
print("crashing", flush=True)
sys.exit(3)
"""

# Never becomes healthy: prints why, then idles without listening.
NEVER_READY = """
import time
print("waiting for a license server that does not exist", flush=True)
while True:
    time.sleep(1)
"""


def write_program(folder: Path, name: str, source: str) -> Path:
    """Write ``source`` as ``folder/name.py`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    return path
