"""`config render cron` and `config render systemd`: the scheduled verify and memory-bank jobs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from opsctl.errors import ConfigError
from opsctl.schedules import cron_to_oncalendar
from opsctl.schedules._render import _opsctl
from tests.support import CliResult, run_cli, write_project

FAKE_OPSCTL = """\
#!/bin/sh
{ pwd; echo "HOME=$HOME"; echo "OPSCTL_CONFIG=$OPSCTL_CONFIG"; echo "ARGS=$*"; } > "$RECORD"
exit "$FAKE_EXIT"
"""
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"
)


def schedule_project(
    root: Path,
    *,
    verify_schedule: str = "*/30 * * * *",
    bank_schedule: str = "0 * * * *",
    bank_folder: bool = False,
    bank_required: bool = False,
) -> Path:
    """A project with the given schedules; optionally its memory-bank folder exists."""
    config = write_project(
        root,
        f"""
        [project]
        name = "sched"

        [verify]
        schedule = "{verify_schedule}"

        [memory_bank]
        snapshot_schedule = "{bank_schedule}"
        required = {"true" if bank_required else "false"}
        """,
    )
    if bank_folder:
        (root / "memory-bank").mkdir()
    return config


def render(config: Path, *args: str) -> CliResult:
    return run_cli("-c", str(config), "config", "render", *args)


def job_lines(crontab: str) -> list[str]:
    """The crontab lines that run a job (not comments, not variable assignments)."""
    return [
        line
        for line in crontab.splitlines()
        if line and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]


def job_line(crontab: str, args: str) -> str:
    (line,) = [line for line in job_lines(crontab) if f" {args};" in line]
    return line


def as_cron_runs_it(line: str) -> str:
    """The command part of a crontab line, with cron's own ``\\%`` unescaping applied."""
    return line.split(maxsplit=5)[5].replace("\\%", "%")


def run_with_fake_opsctl(command: str, tmp_path: Path, exit_code: int) -> tuple[int, list[str]]:
    """Run a cron command with ``sh -c`` and a stand-in opsctl that exits ``exit_code``, from
    another folder and with neither HOME nor OPSCTL_CONFIG in the environment; return sh's
    exit code and what the stand-in recorded (folder, HOME, OPSCTL_CONFIG, arguments).
    """
    fake = tmp_path / "bin" / "opsctl"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_OPSCTL)
    fake.chmod(0o755)
    invocation = _opsctl()
    assert command.count(f"{invocation} ") == 1, command
    command = command.replace(f"{invocation} ", f"{shlex.quote(str(fake))} ")

    record = tmp_path / "record.txt"
    record.unlink(missing_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    result = subprocess.run(
        ["sh", "-c", command],
        cwd=elsewhere,
        env={"PATH": "/usr/bin:/bin", "RECORD": str(record), "FAKE_EXIT": str(exit_code)},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return result.returncode, record.read_text().splitlines()


def unit_lines(text: str) -> list[str]:
    return text.splitlines()


# cron


def test_cron_has_one_line_per_job_with_its_configured_schedule(tmp_path: Path) -> None:
    """Each job gets one line that starts with its schedule from the config and sets the
    folder, HOME, OPSCTL_CONFIG and PATH that cron does not provide.
    """
    config = schedule_project(
        tmp_path, verify_schedule="15 */4 * * *", bank_schedule="5 1 * * 1-5", bank_folder=True
    )
    result = render(config, "cron")
    assert result.exit_code == 0, result.output

    lines = job_lines(result.stdout)
    assert len(lines) == 2
    verify = job_line(result.stdout, "-q verify")
    bank = job_line(result.stdout, "-q memory-bank activate")
    assert verify.startswith("15 */4 * * * ")
    assert bank.startswith("5 1 * * 1-5 ")
    for line in (verify, bank):
        command = line.split(maxsplit=5)[5]
        assert command.startswith(f"cd {shlex.quote(str(tmp_path))} && ")
        assert f"HOME={shlex.quote(str(tmp_path / 'home'))} " in command
        assert f"OPSCTL_CONFIG={shlex.quote(str(config))} " in command
        assert "[ $rc -eq 75 ] && rc=0" in command
    assert "SHELL=/bin/sh" in result.stdout.splitlines()
    assert any(line.startswith("PATH=/") for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    ("opsctl_exit", "cron_exit"),
    [(75, 0), (3, 3), (0, 0), (1, 1)],
    ids=["busy-is-success", "degraded-kept", "ok", "failed-kept"],
)
def test_cron_verify_line_runs_in_the_project_and_maps_only_exit_75_to_0(
    tmp_path: Path, opsctl_exit: int, cron_exit: int
) -> None:
    """Run as cron would, the verify line runs opsctl in the project with HOME and
    OPSCTL_CONFIG set; 'another run holds the lock' (75) becomes 0, other codes are kept.
    """
    root = tmp_path / "project"
    config = schedule_project(root)
    command = as_cron_runs_it(job_line(render(config, "cron").stdout, "-q verify"))

    code, recorded = run_with_fake_opsctl(command, tmp_path, opsctl_exit)
    assert code == cron_exit
    assert recorded == [
        str(root),
        f"HOME={tmp_path / 'home'}",
        f"OPSCTL_CONFIG={config}",
        "ARGS=-q verify",
    ]


def test_cron_escapes_a_percent_in_the_project_path_and_the_line_still_runs(
    tmp_path: Path,
) -> None:
    """A '%' in the project path is written '\\%' (cron would cut the line there otherwise),
    and once cron unescapes it the line enters the right folder.
    """
    root = tmp_path / "50%off"
    config = schedule_project(root, bank_folder=True)
    result = render(config, "cron")
    assert result.exit_code == 0, result.output

    for line in job_lines(result.stdout):
        assert "\\%" in line
        assert re.search(r"(?<!\\)%", line) is None, line
    command = as_cron_runs_it(job_line(result.stdout, "-q verify"))
    code, recorded = run_with_fake_opsctl(command, tmp_path, 75)
    assert code == 0
    assert recorded[0] == str(root)
    assert recorded[2] == f"OPSCTL_CONFIG={config}"


@pytest.mark.parametrize(
    ("bank_folder", "bank_required", "bank_job"),
    [(False, False, False), (True, False, True), (False, True, True)],
    ids=["no-bank", "bank-folder-exists", "bank-required"],
)
def test_memory_bank_job_only_when_the_bank_exists_or_is_required(
    tmp_path: Path, bank_folder: bool, bank_required: bool, bank_job: bool
) -> None:
    """The snapshot job is scheduled only for a bank that exists or is required; verify always."""
    config = schedule_project(tmp_path, bank_folder=bank_folder, bank_required=bank_required)

    cron = render(config, "cron")
    assert cron.exit_code == 0, cron.output
    lines = job_lines(cron.stdout)
    assert len(lines) == (2 if bank_job else 1)
    assert any(" -q verify;" in line for line in lines)
    assert any(" -q memory-bank activate;" in line for line in lines) is bank_job

    units = tmp_path / "units"
    assert render(config, "systemd", "-o", str(units)).exit_code == 0
    names = {path.name for path in units.iterdir()}
    assert {"opsctl-sched-verify.service", "opsctl-sched-verify.timer"} <= names
    assert ("opsctl-sched-memory-bank.service" in names) is bank_job
    assert ("opsctl-sched-memory-bank.timer" in names) is bank_job


# systemd


def test_systemd_render_writes_a_oneshot_service_and_a_timer_per_job(tmp_path: Path) -> None:
    """-o DIR gets, for each job, a oneshot service in the project folder with OPSCTL_CONFIG
    set and exit 75 counted as success, and a timer with the translated schedule.
    """
    root = tmp_path / "project"
    config = schedule_project(
        root, verify_schedule="0 9 * * 1-5", bank_schedule="30 2 * * *", bank_folder=True
    )
    units = tmp_path / "units"
    result = render(config, "systemd", "-o", str(units))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in units.iterdir()) == [
        "opsctl-sched-memory-bank.service",
        "opsctl-sched-memory-bank.timer",
        "opsctl-sched-verify.service",
        "opsctl-sched-verify.timer",
    ]

    for job, args, calendar in [
        ("verify", "-q verify", "Mon..Fri *-*-* 9:0:00"),
        ("memory-bank", "-q memory-bank activate", "*-*-* 2:30:00"),
    ]:
        service = unit_lines((units / f"opsctl-sched-{job}.service").read_text())
        assert "Type=oneshot" in service
        assert f"WorkingDirectory={root}" in service
        assert f'Environment="OPSCTL_CONFIG={config}"' in service
        assert "SuccessExitStatus=75" in service
        (exec_start,) = [line for line in service if line.startswith("ExecStart=")]
        assert exec_start == f"ExecStart={_opsctl()} {args}"
        timer = unit_lines((units / f"opsctl-sched-{job}.timer").read_text())
        assert f"OnCalendar={calendar}" in timer
        assert "WantedBy=timers.target" in timer


def test_systemd_render_without_output_prints_every_unit_under_a_header(tmp_path: Path) -> None:
    """Without -o every unit is printed after a '# --- NAME' header."""
    config = schedule_project(tmp_path)
    result = render(config, "systemd")
    assert result.exit_code == 0, result.output
    headers = [line for line in result.stdout.splitlines() if line.startswith("# --- ")]
    assert headers == ["# --- opsctl-sched-verify.service", "# --- opsctl-sched-verify.timer"]
    assert "OnCalendar=*-*-* *:0/30:00" in result.stdout


def test_systemd_render_into_a_file_path_exits_2(tmp_path: Path) -> None:
    """-o naming an existing file is refused with exit 2 and the file is left as it was."""
    config = schedule_project(tmp_path)
    target = tmp_path / "units.txt"
    target.write_text("keep\n")
    result = render(config, "systemd", "-o", str(target))
    assert result.exit_code == 2
    assert "not a folder" in result.output
    assert target.read_text() == "keep\n"


def test_systemd_units_double_a_percent_in_the_project_path(tmp_path: Path) -> None:
    """systemd expands '%' specifiers in WorkingDirectory and Environment, so a '%' in the
    project path must be written '%%' for the unit to name the real folder.
    """
    root = tmp_path / "50%off"
    config = schedule_project(root)
    units = tmp_path / "units"
    assert render(config, "systemd", "-o", str(units)).exit_code == 0
    service = unit_lines((units / "opsctl-sched-verify.service").read_text())
    assert f"WorkingDirectory={str(root).replace('%', '%%')}" in service
    assert f'Environment="OPSCTL_CONFIG={str(config).replace("%", "%%")}"' in service


@needs_systemd_analyze
def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd's own checker accepts the rendered service and timer units."""
    config = schedule_project(tmp_path / "project", bank_folder=True)
    units = tmp_path / "units"
    assert render(config, "systemd", "-o", str(units)).exit_code == 0
    files = sorted(str(path) for path in units.iterdir())
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Unsupported schedules


@pytest.mark.parametrize("target", ["cron", "systemd"])
@pytest.mark.parametrize("schedule", ["0 0 * * MON", "0 0 L * *", "0 0 ? * *", "0 0 * JAN *"])
def test_unsupported_cron_field_exits_2_and_writes_nothing(
    tmp_path: Path, target: str, schedule: str
) -> None:
    """A schedule using names or cron extensions is refused (exit 2) naming the field, and
    no unit is written.
    """
    config = schedule_project(tmp_path, verify_schedule=schedule)
    units = tmp_path / "units"
    args = ("systemd", "-o", str(units)) if target == "systemd" else ("cron",)
    result = render(config, *args)
    assert result.exit_code == 2
    assert "unsupported field" in result.output
    assert "verify" in result.output
    assert not units.exists()


@pytest.mark.parametrize("schedule", ["@daily", "0 0 * *", "0 0 * * * *"])
def test_schedule_that_is_not_five_fields_is_rejected_by_config_validation(
    tmp_path: Path, schedule: str
) -> None:
    """'@daily' and schedules with too few or too many fields fail validation with exit 2."""
    config = schedule_project(tmp_path, verify_schedule=schedule)
    assert run_cli("-c", str(config), "config", "validate").exit_code == 2
    assert render(config, "cron").exit_code == 2


# cron_to_oncalendar

TRANSLATIONS = [
    ("*/30 * * * *", "*-*-* *:0/30:00"),
    ("30 2 * * *", "*-*-* 2:30:00"),
    ("0 9 * * 1-5", "Mon..Fri *-*-* 9:0:00"),
    ("0 * * * *", "*-*-* *:0:00"),
    ("* * * * *", "*-*-* *:*:00"),
    ("15 8,20 * * *", "*-*-* 8,20:15:00"),
    ("0 9-17 * * *", "*-*-* 9..17:0:00"),
    ("0 */2 * * *", "*-*-* 0/2:0:00"),
    ("0 0 1 1 *", "*-1-1 0:0:00"),
    ("0 0 1-15/2 * *", "*-*-1..15/2 0:0:00"),
    ("0 6 * * 0", "Sun *-*-* 6:0:00"),
    ("0 6 * * 7", "Sun *-*-* 6:0:00"),
    ("0 6 * * 1,3", "Mon,Wed *-*-* 6:0:00"),
    ("0 6 * * 5-7", "Fri..Sun *-*-* 6:0:00"),
]


@pytest.mark.parametrize(("schedule", "calendar"), TRANSLATIONS)
def test_cron_to_oncalendar_translates_supported_fields(schedule: str, calendar: str) -> None:
    """Numbers, lists, ranges, steps and weekday numbers become systemd's OnCalendar form."""
    assert cron_to_oncalendar(schedule) == calendar


@pytest.mark.parametrize(
    "schedule", ["0 0 * * MON", "0 0 * * 8", "0 0 * * 1-5/2", "0 0 L * *", "0 0 * JAN *"]
)
def test_cron_to_oncalendar_rejects_what_it_cannot_translate(schedule: str) -> None:
    """Weekday names, out-of-range weekdays, weekday steps and cron extensions raise ConfigError."""
    with pytest.raises(ConfigError):
        cron_to_oncalendar(schedule)


@needs_systemd_analyze
@pytest.mark.parametrize(
    "schedule",
    [
        *[schedule for schedule, _ in TRANSLATIONS],
        "0 0 */2 * *",
        "0 0 1 */3 *",
        "0 0 * * 0-3",
    ],
)
def test_every_translation_is_a_calendar_systemd_accepts(schedule: str) -> None:
    """systemd-analyze parses every OnCalendar value opsctl writes, steps over days and months
    and weekday ranges starting on Sunday included.
    """
    calendar = cron_to_oncalendar(schedule)
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "calendar", calendar],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, f"{schedule!r} -> {calendar!r}: {result.stderr.strip()}"


def test_backup_job_only_when_backup_names_something_to_back_up(tmp_path: Path) -> None:
    """backup run is scheduled with backup.schedule once [backup] has paths or Redis."""
    plain = schedule_project(tmp_path / "plain")
    assert not any(" -q backup run;" in line for line in job_lines(render(plain, "cron").stdout))

    config = write_project(
        tmp_path / "backed",
        f"""
        [project]
        name = "sched"

        [backup]
        paths = ["{tmp_path}"]
        schedule = "15 3 * * *"
        """,
    )
    cron = render(config, "cron")
    assert cron.exit_code == 0, cron.output
    (line,) = [line for line in job_lines(cron.stdout) if " -q backup run;" in line]
    assert line.startswith("15 3 * * * ")

    units = tmp_path / "units"
    assert render(config, "systemd", "-o", str(units)).exit_code == 0
    timer = (units / "opsctl-sched-backup.timer").read_text()
    assert "OnCalendar=*-*-* 3:15:00" in timer
    assert "backup run" in (units / "opsctl-sched-backup.service").read_text()
