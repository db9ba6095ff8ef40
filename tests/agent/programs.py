"""Programs that embed the agent, run as real processes by the tests."""

from __future__ import annotations

# A component serving "gpu.free_caches": it answers (mode "ok"), raises ("raise"), takes
# far longer than any test waits ("slow"), or serves only another kind ("other"). It
# reads its Redis from the environment alone, as a program of the stack does.
COMPONENT = """
import logging, os, sys, time
from opsctl.agent import Agent

logging.basicConfig(level=logging.INFO)
name, mode = sys.argv[1], sys.argv[2]
agent = Agent(name, ttl_seconds=10)

def free_caches(payload):
    if mode == "raise":
        raise RuntimeError(f"cache pinned by {payload['holder']}")
    if mode == "slow":
        time.sleep(60)
    return {"freed_bytes": 1000 * payload["factor"], "pid": os.getpid()}

agent.on_request("other.kind" if mode == "other" else "gpu.free_caches", free_caches)
agent.gauge("queue_depth", 7)
agent.start(interval_seconds=0.5)
while True:
    time.sleep(1)
"""

# The program a supervised stack runs in the status test: it reports through an agent
# configured by nothing but the variables opsctl put into its environment.
STACK_COMPONENT = """
import time
from opsctl.agent import Agent

agent = Agent("embedder").start(interval_seconds=1)
agent.gauge("batch_size", 32)
agent.set_status("degraded", "warming up the model")
while True:
    time.sleep(1)
"""
