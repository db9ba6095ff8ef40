"""The docker runtime: the stack as one container whose main process is supervisord.

The container is created from ``[container]`` through the Docker SDK: host networking by
default, the project root bind-mounted at the same path (so supervisord.conf, the
program specs, the logs and the XML-RPC socket have the same paths inside and out), the
``.env`` variables injected at start (never baked into an image), labels that mark it as
opsctl's and carry a hash of everything it was created from, GPU requests, and a stop
timeout that covers supervisord's own shutdown. supervisord runs behind tini, which reaps
zombies and forwards signals.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

from opsctl.config import Project
from opsctl.errors import (
    OperationFailedError,
    OpsctlError,
    ResourceUnavailableError,
)
from opsctl.runtime._base import Runtime

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

logger = logging.getLogger(__name__)

LABEL_PROJECT = "org.opsctl.project"
LABEL_HASH = "org.opsctl.config-hash"
_START_WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.1
_LOG_TAIL_LINES = 15


def required_stop_seconds(project: Project) -> int:
    """How long supervisord can take to stop everything: it stops one priority group after
    another, each up to the longest stop timeout in it.
    """
    from opsctl.runtime._render import required_stop_seconds as needed

    return needed(project.services)


def container_stop_seconds(project: Project) -> int:
    """The container's stop timeout: the configured one, or supervisord's need plus a margin."""
    configured = project.config.container.stop_timeout_seconds
    if configured is not None:
        return configured
    margin = project.config.runtime.stop_margin_seconds
    return int(required_stop_seconds(project) + margin + 0.999)


def container_name(project: Project) -> str:
    """The container's name: ``container.name``, else ``opsctl-PROJECT``."""
    configured = project.config.container.name
    return configured or "opsctl-" + re.sub(r"[^A-Za-z0-9_.-]", "-", project.name)


class DockerRuntime(Runtime):
    """supervisord as PID 1's child in the project's unified container."""

    kind: ClassVar[str] = "docker"

    def __init__(self, project: Project, *, host: str | None = None) -> None:
        super().__init__(project, host=host)
        self._client: DockerClient | None = None
        self._gpu_warned = False

    # The engine and the container

    @property
    def client_docker(self) -> DockerClient:
        """A client of the engine at ``runtime.host``, else ``DOCKER_HOST``, else the socket.

        Raises :class:`ResourceUnavailableError` (exit 4) naming what was tried.
        """
        if self._client is None:
            self._client = connect(self.host)
        return self._client

    @property
    def name(self) -> str:
        """The container's name."""
        return container_name(self.project)

    def container(self) -> Container | None:
        """The project's container, or ``None``; refuses one that opsctl did not create."""
        import docker.errors

        try:
            container = self.client_docker.containers.get(self.name)
        except docker.errors.NotFound:
            return None
        if container.labels.get(LABEL_PROJECT) != self.project.name:
            message = f"Container '{self.name}' exists and opsctl did not create it: left alone."
            raise OpsctlError(
                message, hint="Remove or rename it, or set container.name to another name."
            )
        return container

    @property
    def launcher(self) -> list[str]:
        """The image's Python running :mod:`opsctl._launch`."""
        return ["python3", "-m", "opsctl._launch"]

    @property
    def daemon(self) -> bool:
        """supervisord stays in the foreground: it is the container's main process."""
        return False

    def supervisor_running(self) -> bool:
        """True when the container runs, was created from the current config, and
        supervisord answers in it.
        """
        container = self.container()
        if container is None or container.status != "running":
            return False
        if container.labels.get(LABEL_HASH) != self.config_hash():
            return False
        return super().supervisor_running()

    def start_supervisor(self) -> None:
        """Create and start the container (replacing one made from another config) and wait
        until supervisord answers on the bind-mounted socket.
        """
        existing = self.container()
        if existing is not None:
            if (
                existing.labels.get(LABEL_HASH) == self.config_hash()
                and existing.status != "running"
            ):
                logger.info("Starting container %s", self.name)
                existing.start()
                self._wait_for_supervisor(existing)
                return
            logger.info("Replacing container %s: its configuration changed", self.name)
            existing.stop(timeout=container_stop_seconds(self.project))
            existing.remove(force=True)
        container = self._create()
        self._wait_for_supervisor(container)

    def stop_supervisor(self, *, timeout_seconds: float) -> None:
        """Stop the container (supervisord then stops what still runs) and remove it."""
        container = self.container()
        if container is None:
            return
        container.stop(timeout=container_stop_seconds(self.project))
        container.remove(force=True)

    def pid_alive(self, pid: int) -> bool:
        """Ask inside the container whether ``pid`` (a pid of its namespace) still exists."""
        container = self.container()
        if container is None:
            return False
        container.reload()
        if container.status != "running":
            return False
        result = container.exec_run(["kill", "-0", str(pid)])
        return bool(result.exit_code == 0)

    def exec(self, service: str, argv: list[str]) -> int:
        """Run ``argv`` in the container with the service's environment and directory;
        stream its output and return its exit code.
        """
        from opsctl.runtime._render import program_spec

        container = self._running_container()
        spec = program_spec(self.project, service)
        api = self.client_docker.api
        exec_id = api.exec_create(
            container.id, argv, environment=spec["environment"], workdir=spec["directory"]
        )["Id"]
        for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
            for data, stream in ((stdout, sys.stdout), (stderr, sys.stderr)):
                if data:
                    stream.buffer.write(data)
                    stream.flush()
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        if exit_code is None:
            message = f"'{argv[0]}' did not report an exit code in {self.name}."
            raise OperationFailedError(message)
        return int(exit_code)

    def copy_out(self, path: str, destination: Path) -> None:
        """Copy ``path`` (absolute, or relative to the root) out of the container."""
        import docker.errors

        container = self._running_container()
        source = self._inside(path)
        try:
            chunks, _ = container.get_archive(str(source))
        except docker.errors.NotFound:
            message = f"{source} does not exist in container {self.name}."
            raise OperationFailedError(message) from None
        data = io.BytesIO(b"".join(chunks))
        _extract_one(data, source.name, destination)

    def copy_in(self, source: Path, path: str) -> None:
        """Copy ``source`` into the container at ``path`` (absolute, or relative to the root)."""
        container = self._running_container()
        target = self._inside(path)
        if not source.exists():
            message = f"{source} does not exist."
            raise OperationFailedError(message)
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as archive:
            archive.add(str(source), arcname=target.name)
        container.exec_run(["mkdir", "-p", str(target.parent)])
        if not container.put_archive(str(target.parent), data.getvalue()):
            message = f"The engine refused to copy {source} to {target} in {self.name}."
            raise OperationFailedError(message)

    # Creating the container

    def create_options(self) -> dict[str, Any]:
        """Everything the container is created from (the config hash covers it all)."""
        section = self.project.config.container
        root = str(self.project.root)
        volumes: dict[str, dict[str, str]] = {root: {"bind": root, "mode": "rw"}}
        socket_folder = str(self.paths.socket_file.parent)
        if not socket_folder.startswith(root + os.sep):
            volumes[socket_folder] = {"bind": socket_folder, "mode": "rw"}
        for spec in section.volumes:
            host, _, rest = spec.partition(":")
            inside, _, mode = rest.partition(":")
            volumes[str(self.project.root / host)] = {"bind": inside or host, "mode": mode or "rw"}

        environment = {key: self.project.environ[key] for key in self.project.dotenv}
        environment.update(section.environment)
        labels = {**section.labels, LABEL_PROJECT: self.project.name}
        restart: dict[str, Any] = {"Name": section.restart_policy}
        if section.restart_policy == "on-failure":
            restart["MaximumRetryCount"] = 5
        return {
            "image": section.image,
            "name": self.name,
            "entrypoint": ["tini", "--"],
            "command": ["supervisord", "-n", "-c", str(self.paths.conf_file)],
            "network_mode": section.network_mode,
            "volumes": volumes,
            "environment": environment,
            "labels": labels,
            "restart_policy": restart,
            "stop_signal": "SIGTERM",
            "stop_timeout": container_stop_seconds(self.project),
            "working_dir": root,
        }

    def config_hash(self) -> str:
        """A hash of the create options, the image id and supervisord.conf."""
        options = self.create_options()
        try:
            image_id = self.client_docker.images.get(options["image"]).id
        except Exception:  # the image is checked, with a clear message, at create time
            image_id = "missing"
        try:
            conf = self.paths.conf_file.read_text()
        except OSError:
            conf = ""
        payload = json.dumps(
            [options, image_id, self._gpu_request_spec(), conf], sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _create(self) -> Container:
        import docker.errors

        self._require_image()
        options = self.create_options()
        options["labels"][LABEL_HASH] = self.config_hash()
        requests = self._device_requests()
        logger.info("Creating container %s from %s", self.name, options["image"])
        container = self._create_container(options, requests)
        try:
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True)
            if not requests:
                message = f"Container {self.name} did not start: {error.explanation}"
                raise OperationFailedError(message) from None
            return self._create_without_gpus(options, error)
        return container

    def _create_without_gpus(self, options: dict[str, Any], error: Exception) -> Container:
        explanation = getattr(error, "explanation", str(error))
        if self.project.config.gpu.require:
            message = (
                f"{self.name} requests GPUs, and this engine cannot provide them: {explanation}"
            )
            raise ResourceUnavailableError(
                message, hint="Install the NVIDIA container toolkit, or set gpu.require = false."
            )
        if not self._gpu_warned:
            logger.warning("No GPUs for %s (%s); starting without them", self.name, explanation)
            self._gpu_warned = True
        container = self._create_container(options, [])
        container.start()
        return container

    def _create_container(self, options: dict[str, Any], requests: list[Any]) -> Container:
        # The SDK's high-level create() drops stop_timeout, so the API call is made directly.
        api = self.client_docker.api
        host_config = api.create_host_config(
            binds=options["volumes"],
            network_mode=options["network_mode"],
            restart_policy=options["restart_policy"],
            device_requests=requests or None,
        )
        created = api.create_container(
            image=options["image"],
            name=options["name"],
            entrypoint=options["entrypoint"],
            command=options["command"],
            environment=options["environment"],
            labels=options["labels"],
            working_dir=options["working_dir"],
            stop_signal=options["stop_signal"],
            stop_timeout=options["stop_timeout"],
            host_config=host_config,
        )
        return self.client_docker.containers.get(created["Id"])

    def _gpu_request_spec(self) -> str | list[str]:
        gpus = self.project.config.container.gpus
        return gpus if isinstance(gpus, str) else list(gpus)

    def _device_requests(self) -> list[Any]:
        from docker.types import DeviceRequest

        gpus = self.project.config.container.gpus
        if gpus == "none":
            return []
        if gpus == "all":
            return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]

    def _require_image(self) -> None:
        import docker.errors

        image = self.project.config.container.image
        try:
            self.client_docker.images.get(image)
        except docker.errors.ImageNotFound:
            message = f"The image '{image}' is not on this engine."
            hint = f"Build it: scripts/build-image.sh {image}   (or docker build -t {image} .)"
            raise ResourceUnavailableError(message, hint=hint) from None

    def _wait_for_supervisor(self, container: Container) -> None:
        deadline = time.monotonic() + _START_WAIT_SECONDS
        while time.monotonic() < deadline:
            container.reload()
            if _has_exited(container):
                logs = container.logs(tail=_LOG_TAIL_LINES)
                tail = logs.decode("utf-8", errors="replace").strip()
                code = container.attrs["State"].get("ExitCode")
                container.remove(force=True)
                message = f"Container {self.name} exited at once (exit code {code})."
                raise OperationFailedError(message, hint=f"Its last log lines:\n{tail}")
            if Runtime.supervisor_running(self):
                return
            time.sleep(_POLL_SECONDS)
        message = (
            f"supervisord in {self.name} did not answer on {self.paths.socket_file} "
            f"within {_START_WAIT_SECONDS:g} s."
        )
        raise OperationFailedError(message)

    def _running_container(self) -> Container:
        container = self.container()
        if container is None or container.status != "running":
            message = f"Container {self.name} is not running."
            raise OperationFailedError(message, hint="Start the stack with 'opsctl up'.")
        return container

    def _inside(self, path: str) -> PurePosixPath:
        candidate = PurePosixPath(path)
        return (
            candidate
            if candidate.is_absolute()
            else PurePosixPath(str(self.project.root)) / candidate
        )


def _has_exited(container: Container) -> bool:
    """True once the main process has exited, also when a restart policy restarts it."""
    state = container.attrs.get("State", {})
    restarted = bool(state.get("Restarting")) or bool(container.attrs.get("RestartCount"))
    return container.status in {"exited", "dead"} or restarted


def connect(host: str | None) -> DockerClient:
    """Connect to the engine at ``host`` (else ``DOCKER_HOST``, else the local socket).

    Raises :class:`ResourceUnavailableError` naming the address tried when it does not answer.
    """
    try:
        import docker
    except ImportError:
        message = "The Docker SDK for Python is not installed."
        raise ResourceUnavailableError(message, hint="pip install 'docker>=7'") from None

    tried = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = (
            docker.DockerClient(base_url=tried, timeout=60) if host else docker.from_env(timeout=60)
        )
        client.ping()
    except docker.errors.DockerException as error:
        message = f"No Docker Engine answers at {tried}: {_first_line(error)}"
        raise ResourceUnavailableError(
            message, hint="Start dockerd, or set runtime.host or DOCKER_HOST."
        ) from None
    return client


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _extract_one(data: io.BytesIO, name: str, destination: Path) -> None:
    """Extract the archive of one file or folder to ``destination``, refusing any member
    that would land outside it (absolute paths, ``..``, links, devices).
    """
    with tarfile.open(fileobj=data) as archive:
        members = archive.getmembers()
        for member in members:
            if member.issym() or member.islnk() or member.isdev():
                continue
            relative = (
                PurePosixPath(member.name).relative_to(name)
                if member.name != name
                else PurePosixPath()
            )
            if relative.is_absolute() or ".." in relative.parts:
                continue
            target = destination / relative if relative.parts else destination
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            extracted = archive.extractfile(member)
            if extracted is not None:
                target.write_bytes(extracted.read())
                target.chmod(member.mode & 0o777)
