"""A small local package, written as a wheel file, and projects whose service installs it.

pip installs a wheel without a build backend and, with ``--no-index``, without the network.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

from tests.support import write_project

PACKAGE = "hello"
MISSING_PACKAGE = "opsctl-test-no-such-package"
SERVICE = "app"
IMPORT_VERSION = "import hello; print(hello.VERSION)"


def write_wheel(folder: Path, version: str, *, name: str = PACKAGE) -> Path:
    """Write a pure-Python wheel of package ``name`` whose ``VERSION`` is ``version``."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            "Generator: opsctl-tests\n"
            "Root-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def requirements_for(wheel: Path) -> str:
    """A requirements file that installs ``wheel`` and never looks at an index."""
    return f"--no-index\n{wheel.resolve()}\n"


def unresolvable_requirements() -> str:
    """A requirements file naming a package that no index-free install can find."""
    return f"--no-index\n{MISSING_PACKAGE}==1.0\n"


def env_project(
    root: Path,
    requirements: str,
    *,
    services: tuple[str, ...] = (SERVICE,),
    command: str = '["python", "-c", "import time; time.sleep(1000)"]',
) -> Path:
    """Write a project whose ``services`` each install ``requirements.txt``; return its config."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text(requirements)
    body = ['[project]\nname = "envs"\n']
    for name in services:
        body.append(
            f"[services.{name}]\n"
            f"command = {command}\n"
            'python = { requirements = "requirements.txt" }\n'
        )
    return write_project(root, "\n".join(body))


def link_of(root: Path, service: str = SERVICE) -> Path:
    """The symlink through which ``service`` uses its environment."""
    return root / ".opsctl" / "venvs" / service


def env_folders(root: Path, service: str = SERVICE) -> list[Path]:
    """The built environment folders of ``service`` (its symlink excluded)."""
    folder = root / ".opsctl" / "venvs"
    return sorted(
        path
        for path in folder.glob(f"{service}-*")
        if not path.is_symlink() and path.name.rpartition("-")[0] == service
    )


def imported_version(environment: Path) -> str:
    """The ``hello.VERSION`` that the environment's own python imports."""
    result = subprocess.run(
        [str(environment / "bin" / "python"), "-c", IMPORT_VERSION],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.defpath},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def python_stamp(environment: Path) -> tuple[int, int, int]:
    """Inode of the folder and mtimes of its python and pyvenv.cfg: changed by any rebuild."""
    return (
        environment.stat().st_ino,
        (environment / "bin" / "python").lstat().st_mtime_ns,
        (environment / "pyvenv.cfg").stat().st_mtime_ns,
    )
