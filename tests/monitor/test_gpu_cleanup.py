"""The monitor applies ``[gpu.policy]`` by itself: above the soft threshold it asks the
stack's components to free their caches, through a real Redis and a real component.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl.config import load_project
from opsctl.monitor import Monitor, MonitorOptions
from tests.gpu.test_cleanup import COMPONENT, _registered, record
from tests.support import start_redis, wait_for, write_project


def run_one_cycle(root: Path) -> Monitor:
    project = load_project(root / "opsctl.toml")
    monitor = Monitor(project, None, options=MonitorOptions(interval_seconds=0.5))
    monitor.cycle()
    cleaner = monitor._gpu_cleaner  # noqa: SLF001 (the test waits for the thread it started)
    if cleaner is not None:
        cleaner.join(timeout=30)
    monitor.close()
    return monitor


@pytest.mark.parametrize("automatic", [True, False])
def test_above_soft_the_monitor_asks_components_to_free_caches(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    automatic: bool,
) -> None:
    server = start_redis(tmp_path / "redis")
    component: subprocess.Popen[str] | None = None
    try:
        root = tmp_path / "project"
        policy = "true" if automatic else "false"
        write_project(
            root,
            f'[project]\nname = "shop"\n[redis]\nurl = "{server.url}"\n'
            f"[gpu.policy]\nautomatic = {policy}\n",
        )
        env = {**os.environ, "OPSCTL_REDIS_URL": server.url, "OPSCTL_PROJECT": "shop"}
        component = subprocess.Popen(
            [sys.executable, "-c", COMPONENT], env=env, stdout=subprocess.PIPE, text=True
        )
        assert component.stdout is not None
        assert component.stdout.readline().strip() == "serving"
        wait_for(lambda: _registered(server.url, "shop"), timeout_seconds=15, message="agent")
        # 73.6 of 80 GiB: 92 %, above soft (90), below hard (97).
        monkeypatch.setenv(
            "OPSCTL_GPU_RECORDED", str(record(root / "gpu.json", 73.6, [(component.pid, 20)]))
        )

        with caplog.at_level(logging.WARNING, logger="opsctl.monitor"):
            monitor = run_one_cycle(root)

        cleaned = [r.getMessage() for r in caplog.records if "cleanup freed" in r.getMessage()]
        if automatic:
            assert cleaned == [
                f"GPU memory above the soft threshold; cleanup freed {512 << 20} bytes "
                "(free_caches: done)"
            ]
        else:
            assert cleaned == []
            assert monitor._gpu_cleaner is None  # noqa: SLF001
        assert component.poll() is None  # asked, never killed
    finally:
        if component is not None:
            component.kill()
            component.wait()
        server.stop()
