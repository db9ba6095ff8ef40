"""``gpu check``: the driver, and each framework in each Python environment of the stack.

Each framework is probed in its own subprocess, with the interpreter of the environment it
is checked in (opsctl's own and every service's ``[services.NAME.python]`` environment),
under a timeout: an import that segfaults or hangs is reported as such and cannot take
opsctl down. Compatibility compares the CUDA release a framework was built for with the
newest one the driver supports.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsctl.checks import Check, Outcome, Report, run_checks, utc_now
from opsctl.checks._result import Status
from opsctl.gpu._frameworks import FRAMEWORKS
from opsctl.gpu._frameworks._probing import compare_cuda, run_probe
from opsctl.gpu._model import GpuSnapshot, NoGpuError

if TYPE_CHECKING:
    from opsctl.config import Project

PROBE_TIMEOUT_SECONDS = 60.0
OWN_ENVIRONMENT = "opsctl"
CHECK_ORDER = ("cupy", "tensorflow", "tensorrt", "torch")


@dataclass(frozen=True)
class Environment:
    """A Python environment to probe: who runs in it, its interpreter, the variables they see.

    ``problem`` says why it cannot be probed, with ``python`` then ``None``: a failure when
    the environment is not built, a skip when it lives ``elsewhere`` (in the image).
    """

    name: str
    python: str | None
    services: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    elsewhere: bool = False


@dataclass(frozen=True)
class Finding:
    """One framework in one environment, as probed and judged."""

    framework: str
    title: str
    environment: str
    python: str | None
    status: Status
    detail: str
    installed: bool | None = None
    version: str | None = None
    cuda_runtime: str | None = None
    device_count: int | None = None
    sees_gpu: bool | None = None
    compatible: bool | None = None
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one framework finding."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class DriverInfo:
    """The driver as read from the snapshot; ``problem`` names why there is no GPU."""

    driver_version: str | None
    cuda_driver_version: str | None
    gpus: int
    names: tuple[str, ...] = ()
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the driver part of ``gpu check``."""
        return {**self.__dict__, "names": list(self.names)}


@dataclass(frozen=True)
class GpuCheckReport:
    """The checks in the report shape DESIGN.md documents, and the details behind them."""

    report: Report
    driver: DriverInfo
    findings: tuple[Finding, ...]
    require: bool

    @property
    def exit_code(self) -> int:
        """4 when a GPU is required and absent, 1 when a check failed, else 0."""
        if self.require and self.driver.problem is not None:
            return 4
        return 1 if self.report.summary["fail"] else 0

    def to_dict(self) -> dict[str, Any]:
        """The report, plus ``driver`` and ``frameworks``."""
        return {
            **self.report.to_dict(),
            "driver": self.driver.to_dict(),
            "frameworks": [finding.to_dict() for finding in self.findings],
        }


class _SnapshotOnce:
    """Reads the snapshot once, on first use, for every check that needs it."""

    def __init__(self, reader: Callable[[], GpuSnapshot]) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._driver: DriverInfo | None = None

    def driver(self) -> DriverInfo:
        with self._lock:
            if self._driver is None:
                self._driver = _read_driver(self._reader)
            return self._driver


def environments(project: Project | None) -> list[Environment]:
    """opsctl's own environment, then each service's declared one, environments shared by
    several services listed once. With the docker runtime the services' environments are
    inside the image and are not probed from here.
    """
    own = Environment(OWN_ENVIRONMENT, sys.executable, environ=dict(os.environ))
    if project is None:
        return [own]
    # An environment is its prefix: a venv's interpreter is a link to the base one.
    found: dict[str, Environment] = {str(Path(sys.prefix).resolve()): own}
    for name, service in project.services.items():
        if service.python is None:
            continue
        environment = _service_environment(project, name)
        key = str(Path(environment.python).parent.parent.resolve()) if environment.python else name
        known = found.get(key)
        if known is not None:
            found[key] = Environment(
                known.name,
                known.python,
                (*known.services, name),
                known.environ,
                known.problem,
                known.elsewhere,
            )
        else:
            found[key] = environment
    return list(found.values())


def judge(answer: Mapping[str, Any], *, driver: DriverInfo) -> tuple[Status, str, bool | None]:
    """The status, detail and compatibility of one probe's answer."""
    title = FRAMEWORKS[str(answer.get("framework"))].title
    if answer.get("elsewhere"):
        return "skip", f"{title}: {answer['elsewhere']}", None
    if answer.get("failure"):
        return "fail", f"{title}: {answer['failure']}", None
    if not answer.get("installed"):
        return "skip", f"{title} is not installed", None
    if answer.get("error"):
        return "fail", f"{title} is installed but its import failed: {answer['error']}", None

    version = answer.get("version") or "?"
    if answer.get("cuda_build") is False:
        return "warn", f"{title} {version} is a CPU-only build: it cannot use the GPU", None
    runtime = answer.get("cuda_runtime")
    compat_status, compat_text, compatible = compare_cuda(runtime, driver.cuda_driver_version)
    head = f"{title} {version}, {compat_text}"
    if compat_status == "fail":
        return "fail", head, compatible
    count = int(answer.get("device_count") or 0)
    if count == 0:
        why = answer.get("gpu_error") or answer.get("runtime_error")
        because = f" ({why})" if why else ""
        if driver.gpus:
            return "fail", f"{head}; does not see the GPU{because}", compatible
        return "warn", f"{head}; sees no GPU, and this host has none", compatible
    return compat_status, f"{head}; sees {count} GPU(s)", compatible


def gpu_checks(
    project: Project | None,
    *,
    timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    reader: Callable[[], GpuSnapshot] | None = None,
    installed_only: bool = False,
    frameworks: tuple[str, ...] = CHECK_ORDER,
    findings: list[Finding] | None = None,
    driver_seen: list[DriverInfo] | None = None,
) -> list[Check]:
    """The driver check and one check per framework and environment, in the check engine's
    shape, for ``gpu check`` and ``verify``. ``installed_only`` leaves out frameworks that
    are plainly not installed (``verify`` lists only what is there); ``frameworks`` limits
    the checks to those named. Each check appends its
    :class:`Finding` to ``findings`` and the driver check its :class:`DriverInfo` to
    ``driver_seen``, when given.
    """
    from opsctl.gpu._nvml import read_snapshot

    snapshot = _SnapshotOnce(reader or read_snapshot)
    require = bool(project and project.config.gpu.require)
    checks = [_driver_check(snapshot, require=require, seen=driver_seen)]
    for environment in environments(project):
        for name in (name for name in CHECK_ORDER if name in frameworks):
            framework = FRAMEWORKS[name]
            if installed_only and not _looks_installed(environment, framework.module):
                continue
            probe = _framework_probe(environment, name, snapshot, timeout_seconds, findings)
            checks.append(
                Check(
                    name=f"{framework.title} ({environment.name})",
                    kind="gpu-framework",
                    target=environment.python or environment.name,
                    probe=probe,
                    timeout_seconds=timeout_seconds,
                    service=environment.services[0] if environment.services else None,
                    section="gpu",
                    tags=("builtin", "gpu", name),
                )
            )
    return checks


def run_gpu_check(
    project: Project | None,
    *,
    timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    reader: Callable[[], GpuSnapshot] | None = None,
    frameworks: tuple[str, ...] = CHECK_ORDER,
) -> GpuCheckReport:
    """Run every GPU check (for ``frameworks`` only, when given) concurrently and return
    the report with its details.
    """
    findings: list[Finding] = []
    drivers: list[DriverInfo] = []
    started_at, begin = utc_now(), time.monotonic()
    checks = gpu_checks(
        project,
        timeout_seconds=timeout_seconds,
        reader=reader,
        frameworks=frameworks,
        findings=findings,
        driver_seen=drivers,
    )
    results = run_checks(checks, concurrency=max(os.cpu_count() or 1, 2))
    statuses = {result.status for result in results if result.severity == "error"}
    report = Report(
        status="fail" if "fail" in statuses else "pass",
        checks=results,
        started_at=started_at,
        duration_ms=round((time.monotonic() - begin) * 1000),
    )
    order = {result.name: index for index, result in enumerate(results)}
    findings.sort(key=lambda f: order.get(f"{f.title} ({f.environment})", len(order)))
    driver = drivers[0] if drivers else DriverInfo(None, None, 0, problem="NVML did not answer")
    require = bool(project and project.config.gpu.require)
    return GpuCheckReport(report, driver, tuple(findings), require)


def _driver_check(
    snapshot: _SnapshotOnce, *, require: bool, seen: list[DriverInfo] | None
) -> Check:
    def probe(_timeout: float) -> Outcome:
        driver = snapshot.driver()
        if seen is not None:
            seen.append(driver)
        if driver.problem is not None:
            return Outcome("fail", f"no GPU: {driver.problem}")
        names = ", ".join(sorted(set(driver.names)))
        return Outcome(
            "pass",
            f"driver {driver.driver_version or '?'}, CUDA {driver.cuda_driver_version or '?'}, "
            f"{driver.gpus} GPU(s): {names}",
        )

    return Check(
        name="GPU present",
        kind="gpu-driver",
        target="nvml",
        probe=probe,
        severity="error" if require else "warning",
        timeout_seconds=PROBE_TIMEOUT_SECONDS,
        section="gpu",
        tags=("builtin", "gpu"),
    )


def _framework_probe(
    environment: Environment,
    name: str,
    snapshot: _SnapshotOnce,
    timeout_seconds: float,
    findings: list[Finding] | None,
) -> Callable[[float], Outcome]:
    def probe(timeout: float) -> Outcome:
        if environment.python is None:
            key = "elsewhere" if environment.elsewhere else "failure"
            answer: dict[str, Any] = {"framework": name, key: environment.problem}
        else:
            answer = {
                "framework": name,
                **run_probe(
                    environment.python,
                    name,
                    timeout_seconds=min(timeout, timeout_seconds),
                    environ=environment.environ,
                ),
            }
        status, detail, compatible = judge(answer, driver=snapshot.driver())
        if findings is not None:
            findings.append(_finding(environment, name, answer, status, detail, compatible))
        return Outcome(status, detail)

    return probe


def _finding(
    environment: Environment,
    name: str,
    answer: Mapping[str, Any],
    status: Status,
    detail: str,
    compatible: bool | None,
) -> Finding:
    count = answer.get("device_count")
    installed = answer.get("installed")
    return Finding(
        framework=name,
        title=FRAMEWORKS[name].title,
        environment=environment.name,
        python=environment.python,
        status=status,
        detail=detail,
        installed=bool(installed) if installed is not None else None,
        version=answer.get("version"),
        cuda_runtime=answer.get("cuda_runtime"),
        device_count=int(count) if count is not None else None,
        sees_gpu=bool(count) if count is not None else None,
        compatible=compatible,
        failure=answer.get("failure"),
    )


def _service_environment(project: Project, name: str) -> Environment:
    from opsctl.venvs import environment_for, service_environment_variables

    services = (name,)
    if project.config.runtime.kind == "docker":
        problem = f"in the image: run 'opsctl exec {name} -- opsctl gpu check' to probe it there"
        return Environment(name, None, services, problem=problem, elsewhere=True)
    venv = environment_for(project, name)
    python = venv / "bin" / "python" if venv is not None else None
    if python is None or not python.exists():
        problem = f"its Python environment is not built: run 'opsctl env sync {name}'"
        return Environment(name, None, services, problem=problem)
    environ = {**os.environ, **{key: project.environ[key] for key in project.dotenv}}
    environ.update(project.services[name].environment)
    environ.update(service_environment_variables(project, name))
    return Environment(name, str(python), services, environ)


def _looks_installed(environment: Environment, module: str) -> bool:
    """A cheap look, without running or importing anything: is ``module`` on the path the
    environment's interpreter would search (its PYTHONPATH, then its site-packages)?
    """
    import importlib.machinery

    if environment.python is None:
        return True
    extra = environment.environ.get("PYTHONPATH", "")
    paths = [entry for entry in extra.split(os.pathsep) if entry]
    if environment.name == OWN_ENVIRONMENT:
        paths += sys.path
    else:
        prefix = Path(environment.python).parent.parent
        paths += [str(path) for path in prefix.glob("lib/python3*/site-packages")]
    return importlib.machinery.PathFinder.find_spec(module, paths) is not None


def _read_driver(reader: Callable[[], GpuSnapshot]) -> DriverInfo:
    try:
        snapshot = reader()
    except NoGpuError as error:
        return DriverInfo(None, None, 0, problem=error.message)
    return DriverInfo(
        snapshot.driver_version,
        snapshot.cuda_driver_version,
        len(snapshot.devices),
        tuple(device.name for device in snapshot.devices),
        problem=None if snapshot.devices else "the driver reports no device",
    )
