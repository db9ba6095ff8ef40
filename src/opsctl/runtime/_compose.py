"""The docker-compose file equivalent to the container ``opsctl up`` creates."""

from __future__ import annotations

import json
from typing import Any

from opsctl.runtime.docker import DockerRuntime


def render_compose(runtime: DockerRuntime) -> str:
    """Return a compose file for the project's unified container.

    Values are written in YAML's flow style (JSON), which compose reads. The ``.env`` file
    is referenced with ``env_file``, never copied in, so the file holds no secret.
    """
    options = runtime.create_options()
    project = runtime.project
    environment = dict(project.config.container.environment)
    service: dict[str, Any] = {
        "image": options["image"],
        "container_name": options["name"],
        "entrypoint": options["entrypoint"],
        "command": options["command"],
        "network_mode": options["network_mode"],
        "working_dir": options["working_dir"],
        "volumes": [
            f"{host}:{bind['bind']}:{bind['mode']}" for host, bind in options["volumes"].items()
        ],
        "labels": options["labels"],
        "restart": options["restart_policy"]["Name"],
        "stop_signal": options["stop_signal"],
        "stop_grace_period": f"{options['stop_timeout']}s",
    }
    if project.env_file.exists():
        service["env_file"] = [str(project.env_file)]
    if environment:
        service["environment"] = environment
    gpus = project.config.container.gpus
    if gpus != "none":
        device: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
        device.update({"count": "all"} if gpus == "all" else {"device_ids": list(gpus)})
        service["deploy"] = {"resources": {"reservations": {"devices": [device]}}}

    lines = [
        f"# Rendered by opsctl from {project.config_path}: the container `opsctl up` creates.",
        "# It needs the supervisord.conf and program specs that this render wrote under",
        f"# {runtime.paths.run_dir}.",
        "services:",
        "  stack:",
    ]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in service.items()]
    return "\n".join(lines) + "\n"
