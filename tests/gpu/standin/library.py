"""Build the stand-in libnvidia-ml.so.1 with gcc and write the answers it gives.

The real nvidia-ml-py loads the built library through ctypes, exactly as it loads the
driver's, so ``opsctl gpu status`` runs end to end on a host without a GPU. Use the
``nvml_standin`` fixture (import it into the test module) or :func:`build_standin`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).with_name("nvml_standin.c")
DATA_ENV = "OPSCTL_NVML_STANDIN_DATA"
LIBRARY_NAME = "libnvidia-ml.so.1"

# (pid, used bytes or None for N/A, GPU instance, compute instance)
Process = tuple[int, int | None] | tuple[int, int | None, int, int]


def nvml_code(name: str) -> int:
    """NVML's return code for an error name such as "NOT_SUPPORTED", from nvidia-ml-py."""
    import pynvml

    return int(getattr(pynvml, f"NVML_ERROR_{name}"))


def build_standin(directory: Path) -> Path:
    """Compile the stand-in into ``directory``; return the folder holding the library."""
    compiler = shutil.which("gcc")
    assert compiler is not None, "gcc is needed to build the NVML stand-in"
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            compiler,
            "-shared",
            "-fPIC",
            "-Wall",
            "-Werror",
            "-o",
            str(directory / LIBRARY_NAME),
            str(SOURCE),
        ],
        check=True,
        capture_output=True,
    )
    return directory


def standin_text(
    devices: Sequence[Mapping[str, object]],
    *,
    init_error: str | None = None,
    driver: str | None = "550.54.15",
    nvml: str | None = "12.550.54.15",
    cuda: int | None = 12040,
    count: str | None = None,
) -> str:
    """The stand-in's answer file. Each device maps field names (see nvml_standin.c) to a
    value, to an NVML error name written as ``"!NOT_SUPPORTED"``, or, for ``process`` and
    ``graphics_process``, to a list of processes. A field left out answers NOT_SUPPORTED.
    ``count`` replaces the device count's answer (``"!GPU_IS_LOST"``).
    """
    lines = [f"count={_encode(count) if count is not None else len(devices)}"]
    if init_error is not None:
        lines.append(f"init=!{nvml_code(init_error)}")
    for key, value in (("driver", driver), ("nvml", nvml), ("cuda", cuda)):
        if value is not None:
            lines.append(f"{key}={value}")
    for index, device in enumerate(devices):
        for field, value in device.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"device.{index}.{field}={_encode(item)}")
    return "\n".join(lines) + "\n"


def _encode(value: object) -> str:
    if isinstance(value, str) and value.startswith("!"):
        return f"!{nvml_code(value[1:])}"
    if isinstance(value, tuple):
        return ":".join("NA" if part is None else str(part) for part in value)
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


@dataclass
class Standin:
    """A built stand-in library and the file of answers it reads."""

    directory: Path
    data: Path

    def answer(self, devices: Sequence[Mapping[str, object]], **options: object) -> None:
        """Set the answers the library gives from its next ``nvmlInit``."""
        self.data.write_text(standin_text(devices, **options))  # type: ignore[arg-type]

    def environment(self, **extra: str) -> dict[str, str]:
        """A process environment in which nvidia-ml-py loads the stand-in."""
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("OPSCTL_")
        }
        environment["LD_LIBRARY_PATH"] = str(self.directory)
        environment[DATA_ENV] = str(self.data)
        environment.update(extra)
        return environment

    def run_cli(self, *args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
        """Run ``opsctl ARGS`` in a new process (the library is loaded once per process)."""
        return subprocess.run(
            [sys.executable, "-m", "opsctl", *args],
            cwd=cwd,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="session")
def standin_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a freshly compiled stand-in ``libnvidia-ml.so.1`` (built once)."""
    return build_standin(tmp_path_factory.mktemp("nvml-standin"))


@pytest.fixture
def nvml_standin(standin_library: Path, tmp_path: Path) -> Iterator[Standin]:
    """The stand-in library with an answer file of this test's."""
    yield Standin(directory=standin_library, data=tmp_path / "nvml-answers.txt")
