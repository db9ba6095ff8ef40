"""Components report to opsctl: heartbeat, status, gauges and a request channel in Redis.

Application code embeds an :class:`Agent`; opsctl's side reads what the agents published
with :func:`read_components` and asks them to act with :func:`request`. Importing this
package costs only the standard library: redis is imported when an agent first connects.
The Redis layout is described in ``docs/agent.md`` and :mod:`opsctl.agent._layout`.
"""

from __future__ import annotations

from opsctl.agent._agent import Agent
from opsctl.agent._layout import (
    ENV_PASSWORD,
    ENV_PROJECT,
    ENV_URL,
    STATUSES,
    agent_environment,
)
from opsctl.agent._reader import ComponentReport, read_components
from opsctl.agent._requests import Reply, request

__all__ = [
    "ENV_PASSWORD",
    "ENV_PROJECT",
    "ENV_URL",
    "STATUSES",
    "Agent",
    "ComponentReport",
    "Reply",
    "agent_environment",
    "read_components",
    "request",
]
