"""``tcp``: a TCP connection to host and port is accepted."""

from __future__ import annotations

import socket

from opsctl.checks._registry import BuildContext, make_check
from opsctl.checks._result import Check, Outcome
from opsctl.config import TcpCheck


def build(spec: TcpCheck, context: BuildContext) -> Check:
    """Build a check that connects to ``spec.host`` on the spec's or the service's port."""
    port = spec.port or context.service_port
    if port is None:
        msg = "A tcp check needs a port."
        raise ValueError(msg)

    def probe(timeout_seconds: float) -> Outcome:
        return probe_tcp(spec.host, port, timeout_seconds)

    return make_check(
        spec, context, default_name=f"tcp {port}", target=f"{spec.host}:{port}", probe=probe
    )


def probe_tcp(host: str, port: int, timeout_seconds: float) -> Outcome:
    """Connect to ``host:port``; pass if the connection is accepted within the timeout."""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            pass
    except TimeoutError:
        return Outcome("fail", f"no answer from {host}:{port} within {timeout_seconds:g} s")
    except OSError as error:
        return Outcome("fail", f"cannot connect to {host}:{port}: {error.strerror or error}")
    return Outcome("pass", f"{host}:{port} accepts connections")
