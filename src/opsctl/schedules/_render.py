"""Render the scheduled jobs (verify, memory-bank snapshots) for cron or systemd.

cron runs with almost no environment: each line sets the working folder, ``PATH``,
``HOME`` and ``OPSCTL_CONFIG`` itself, and treats exit 75 (another run holds the lock) as
success, so a job that overlaps its previous run is skipped rather than reported. The
systemd units do the same with ``WorkingDirectory``, ``Environment`` and
``SuccessExitStatus=75``.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from opsctl.config import Project
from opsctl.errors import ConfigError

_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_SUNDAY_LATE = 7
_CRON_FIELDS = 5
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELD = re.compile(r"^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?$")


@dataclass(frozen=True)
class Job:
    """One scheduled opsctl command."""

    name: str
    description: str
    schedule: str
    args: tuple[str, ...]


def scheduled_jobs(project: Project) -> list[Job]:
    """The jobs this project runs on a schedule: verify always, a backup when ``[backup]``
    names something to back up, memory-bank activation (which records a snapshot for
    `memory-bank history`) when the bank exists or is required.
    """
    jobs = [
        Job("verify", "readiness verification", project.config.verify.schedule, ("-q", "verify"))
    ]
    backup = project.config.backup
    if backup.paths or backup.redis:
        jobs.append(Job("backup", "backup", backup.schedule, ("-q", "backup", "run")))
    bank = project.config.memory_bank
    if bank.required or (project.root / bank.path).is_dir():
        jobs.append(
            Job(
                "memory-bank",
                "memory-bank snapshot",
                bank.snapshot_schedule,
                ("-q", "memory-bank", "activate"),
            )
        )
    return jobs


def _opsctl() -> str:
    """The opsctl executable next to this interpreter, else the module form."""
    beside = Path(sys.executable).with_name("opsctl")
    if beside.exists():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m opsctl"


def render_cron(project: Project) -> str:
    """Return crontab lines for every scheduled job."""
    path = os.environ.get("PATH", os.defpath)
    lines = [
        f"# opsctl jobs for {project.name}, rendered from {project.config_path}.",
        "# Install with: crontab -e (or copy to /etc/cron.d/ with a user column added).",
        "SHELL=/bin/sh",
        f"PATH={path}",
    ]
    for job in scheduled_jobs(project):
        _check_cron(job)
        command = (
            f"cd {shlex.quote(str(project.root))} && "
            f"HOME={shlex.quote(os.path.expanduser('~'))} "
            f"OPSCTL_CONFIG={shlex.quote(str(project.config_path))} "
            f"{_opsctl()} {shlex.join(job.args)}; rc=$?; [ $rc -eq 75 ] && rc=0; exit $rc"
        )
        # cron turns an unescaped % into a newline.
        lines += [f"# {job.description}", f"{job.schedule} {command.replace('%', chr(92) + '%')}"]
    return "\n".join(lines) + "\n"


def render_systemd(project: Project) -> dict[str, str]:
    """Return ``{file name: content}``: a oneshot service and a timer per job."""
    units: dict[str, str] = {}
    for job in scheduled_jobs(project):
        _check_cron(job)
        unit = f"opsctl-{_unit_name(project.name)}-{job.name}"
        units[f"{unit}.service"] = "\n".join(
            [
                "[Unit]",
                f"Description=opsctl {job.description} for {project.name}",
                "",
                "[Service]",
                "Type=oneshot",
                f"WorkingDirectory={_unit_value(str(project.root))}",
                f'Environment="OPSCTL_CONFIG={_unit_value(str(project.config_path))}"',
                f'Environment="PATH={_unit_value(os.environ.get("PATH", os.defpath))}"',
                f"ExecStart={_unit_value(_opsctl())} {shlex.join(job.args)}",
                "# 75: another run holds the lock; this one is skipped, not failed.",
                "SuccessExitStatus=75",
                "",
            ]
        )
        units[f"{unit}.timer"] = "\n".join(
            [
                "[Unit]",
                f"Description=Run opsctl {job.description} for {project.name} ({job.schedule})",
                "",
                "[Timer]",
                f"OnCalendar={cron_to_oncalendar(job.schedule)}",
                "Persistent=true",
                "",
                "[Install]",
                "WantedBy=timers.target",
                "",
            ]
        )
    return units


def cron_to_oncalendar(schedule: str) -> str:
    """Translate a five-field cron expression to systemd's OnCalendar form.

    Fields may be ``*``, a number, a range ``a-b``, a list ``a,b`` and a step ``/n``.
    Raises :class:`ConfigError` for anything else (names, ``L``, ``?``).
    """
    fields = schedule.split()
    if len(fields) != _CRON_FIELDS:
        message = f"{schedule!r} is not a five-field cron expression"
        raise ConfigError(message)
    minute, hour, day, month, weekday = fields
    days = "" if weekday == "*" else ",".join(_weekday(part) for part in weekday.split(",")) + " "
    date = f"*-{_field(month, first=1)}-{_field(day, first=1)}"
    return f"{days}{date} {_field(hour)}:{_field(minute)}:00"


def _field(text: str, *, first: int = 0) -> str:
    """One field; a ``*/n`` step starts at the field's first value (1 for days and months)."""
    parts = []
    for part in text.split(","):
        if not _FIELD.match(part):
            message = f"cron field {text!r} uses syntax opsctl cannot translate for systemd"
            raise ConfigError(message, hint="Use numbers, ranges a-b, lists a,b and steps */n.")
        base, _, step = part.partition("/")
        start = str(first) if base == "*" and step else base
        parts.append(start.replace("-", "..") + (f"/{step}" if step else ""))
    return ",".join(parts)


def _weekday(part: str) -> str:
    """A cron weekday (0 and 7 are Sunday) or range; systemd's week runs Mon..Sun, so a
    range from Sunday becomes Sunday plus the rest.
    """
    if part.isdigit() and int(part) <= _SUNDAY_LATE:
        return _DAYS[int(part)]
    if re.fullmatch(r"[0-7]-[0-7]", part):
        first, last = (int(day) for day in part.split("-"))
        if first == 0 and last == _SUNDAY_LATE:
            return "Mon..Sun"
        if first == 0:
            return "Sun" if last == 0 else f"Sun,Mon..{_DAYS[last]}"
        if first <= last:
            return f"{_DAYS[first]}..{_DAYS[last]}"
    message = f"cron weekday {part!r} cannot be translated for systemd"
    raise ConfigError(message)


def _check_cron(job: Job) -> None:
    """Refuse what cron and systemd would read differently or not at all."""
    fields = job.schedule.split()
    if len(fields) == _CRON_FIELDS and fields[2] != "*" and fields[4] != "*":
        message = (
            f"The {job.name} schedule {job.schedule!r} restricts both day of month and weekday."
        )
        hint = "cron runs on either, systemd only on both; restrict one of them."
        raise ConfigError(message, hint=hint)
    for text, (low, high) in zip(fields, _RANGES, strict=True):
        for part in text.split(","):
            if not _FIELD.match(part) or not _in_range(part, low, high):
                message = (
                    f"The {job.name} schedule {job.schedule!r} has an unsupported field {text!r}."
                )
                hint = "Use numbers in range, ranges a-b, lists a,b and steps */n."
                raise ConfigError(message, hint=hint)


def _in_range(part: str, low: int, high: int) -> bool:
    """Numbers within the field's range, a range that runs forward, a step of at least 1
    and at most the field's span.
    """
    base, _, step = part.partition("/")
    numbers = [int(n) for n in re.findall(r"[0-9]+", base)]
    backwards = len(numbers) > 1 and numbers[0] > numbers[-1]
    if backwards or any(not low <= n <= high for n in numbers):
        return False
    return not step or 1 <= int(step) <= high


def _unit_value(text: str) -> str:
    """Escape ``%`` (systemd's specifier sign) and quotes for a unit file value."""
    return text.replace("%", "%%").replace('"', '\\"')


def _unit_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)
