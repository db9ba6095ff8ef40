"""The pydantic model of ``opsctl.toml``: every section, designed once.

Each section belongs to the subsystem of the same name. Unknown keys are errors, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    field_validator,
    model_validator,
)

from opsctl.config._durations import parse_duration

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveSeconds = Annotated[float, Field(gt=0, le=86400)]
Percent = Annotated[float, Field(ge=0, le=100)]
Severity = Literal["error", "warning"]
StopSignal = Literal["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2"]


class Section(BaseModel):
    """Base of every table: unknown keys are rejected, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectSection(Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")] | None = None
    root: str = "."
    env_file: str = ".env"
    state_dir: str = ".opsctl"
    timezone: str = "UTC"


class RuntimeSection(Section):
    kind: Literal["local", "docker"] = "local"
    host: str | None = None
    up_timeout_seconds: PositiveSeconds = 60.0
    crash_loop_restarts: Annotated[int, Field(ge=2)] = 3
    crash_loop_window_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 60.0
    stop_margin_seconds: Annotated[float, Field(ge=0)] = 5.0


class CheckBase(Section):
    name: str | None = None
    severity: Severity = "error"
    timeout_seconds: PositiveSeconds = 5.0
    retries: Annotated[int, Field(ge=0, le=1000)] = 0
    retry_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 1.0
    tags: list[str] = Field(default_factory=list)


class TcpCheck(CheckBase):
    kind: Literal["tcp"]
    host: str = "127.0.0.1"
    port: Port | None = None


class HttpCheck(CheckBase):
    kind: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field(default_factory=lambda: [200])
    body_contains: str | None = None
    body_regex: str | None = None
    json_field: str | None = None
    json_equals: Any = None
    max_latency_ms: Annotated[float, Field(gt=0)] | None = None

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return _compiles(value)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_status_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value


class RedisCheck(CheckBase):
    kind: Literal["redis"]
    url: str | None = None
    password: SecretStr | None = None


class CommandCheck(CheckBase):
    kind: Literal["command"]
    argv: Annotated[list[str], Field(min_length=1)]
    expect_exit: int = 0
    output_contains: str | None = None
    output_regex: str | None = None

    @field_validator("output_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return _compiles(value)


class DiskCheck(CheckBase):
    kind: Literal["disk"]
    path: str = "{project.root}"
    warn_free_percent: Percent = 15.0
    fail_free_percent: Percent = 5.0


class FileCheck(CheckBase):
    kind: Literal["file"]
    path: str
    exists: bool = True
    mode: Annotated[str, Field(pattern=r"^0?[0-7]{3,4}$")] | None = None
    owner: str | None = None
    contains: str | None = None


class EnvCheck(CheckBase):
    kind: Literal["env"]
    variable: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    set: bool = True
    pattern: str | None = None
    secret: bool = True

    @field_validator("pattern")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return _compiles(value)


def _compiles(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as error:
            message = f"is not a valid regular expression: {error}"
            raise ValueError(message) from None
    return value


HealthCheck = Annotated[
    TcpCheck | HttpCheck | RedisCheck | CommandCheck | DiskCheck | FileCheck | EnvCheck,
    Field(discriminator="kind"),
]


class PythonEnvSection(Section):
    requirements: str | None = None
    project: str | None = None
    python: str | None = None


class ServiceSection(Section):
    command: str | Annotated[list[str], Field(min_length=1)]
    port: Port | None = None
    depends_on: list[str] = Field(default_factory=list)
    environment: dict[EnvName, str] = Field(default_factory=dict)
    directory: str | None = None
    priority: Annotated[int, Field(ge=1, le=999)] | None = None
    autorestart: bool | Literal["unexpected"] = True
    stop_signal: StopSignal = "TERM"
    stop_timeout_seconds: Annotated[int, Field(ge=1)] = 10
    start_seconds: Annotated[int, Field(ge=0)] = 1
    start_retries: Annotated[int, Field(ge=0)] = 3
    exit_codes: Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=1)] = Field(
        default_factory=lambda: [0]
    )
    health: list[HealthCheck] = Field(default_factory=list)
    python: PythonEnvSection | None = None

    @field_validator("command", "environment")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = (
            value
            if isinstance(value, list)
            else list(value.values())
            if isinstance(value, dict)
            else [value]
        )
        if any("\0" in str(text) for text in texts):
            message = "must not contain a NUL character"
            raise ValueError(message)
        return value


class ContainerSection(Section):
    image: str = "opsctl-unified:latest"
    name: str | None = None
    network_mode: Literal["host", "none"] = "host"
    volumes: list[str] = Field(default_factory=list)
    environment: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    restart_policy: Literal["no", "always", "unless-stopped", "on-failure"] = "unless-stopped"
    gpus: Literal["all", "none"] | list[str] = "none"
    stop_timeout_seconds: Annotated[int, Field(ge=1)] | None = None
    dockerfile: str = "Dockerfile"


CronSchedule = Annotated[str, Field(pattern=r"^\S+(\s+\S+){4}$")]


class VerifySection(Section):
    concurrency: Annotated[int, Field(ge=1, le=512)] = 32
    strict: bool = False
    schedule: CronSchedule = "*/30 * * * *"
    checks: list[HealthCheck] = Field(default_factory=list)


class DiskThresholds(Section):
    """Free space per path: warn below ``warn_free_percent``, fail below
    ``fail_free_percent`` (0: no such level), so warn's is the larger when both are set.
    Numbers only: ``true`` is no percentage.
    """

    paths: list[str] = Field(default_factory=lambda: ["{project.root}"])
    warn_free_percent: Annotated[float, Field(strict=True, ge=0, le=100)] = 15.0
    fail_free_percent: Annotated[float, Field(strict=True, ge=0, le=100)] = 5.0

    @model_validator(mode="after")
    def _warn_above_fail(self) -> DiskThresholds:
        both = self.warn_free_percent > 0 and self.fail_free_percent > 0
        if both and self.warn_free_percent <= self.fail_free_percent:
            message = (
                f"warn_free_percent ({self.warn_free_percent:g}) must be above "
                f"fail_free_percent ({self.fail_free_percent:g}): the warning comes first, "
                "while more space is still free"
            )
            raise ValueError(message)
        return self


class Threshold(Section):
    """Levels of one figure where higher is worse; an omitted level is not alerted on."""

    # Strict and finite: ``warn = true`` or ``critical = inf`` is a mistake, not a level.
    warn: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)] | None = None
    critical: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)] | None = None

    @model_validator(mode="after")
    def _warn_below_critical(self) -> Threshold:
        if self.warn is not None and self.critical is not None and self.warn >= self.critical:
            message = f"warn ({self.warn:g}) must be below critical ({self.critical:g})"
            raise ValueError(message)
        return self


class MonitoringThresholds(Section):
    """Alert levels per figure; disk space uses ``[monitoring.disk]``, shared with health."""

    memory_used_percent: Threshold = Threshold(warn=90, critical=97)
    load_per_cpu: Threshold = Threshold(warn=2, critical=4)
    redis_memory_percent: Threshold = Threshold(warn=80, critical=95)
    backup_age_hours: Threshold | None = None  # None: backup.max_age_hours, critical twice it
    heartbeat_age_seconds: Threshold = Threshold(warn=60, critical=300)
    gpu_memory_percent: Threshold = Threshold(warn=90, critical=97)
    gpu_temperature_celsius: Threshold = Threshold(warn=85, critical=95)


class MonitoringSection(Section):
    interval_seconds: PositiveSeconds = 15.0
    metrics_host: str = "127.0.0.1"
    metrics_port: Port | None = None
    pushgateway_url: str | None = None
    textfile_dir: str | None = None
    disk: DiskThresholds = Field(default_factory=DiskThresholds)
    thresholds: MonitoringThresholds = Field(default_factory=MonitoringThresholds)
    fire_after: Annotated[int, Field(ge=1, le=1000)] = 2
    resolve_after: Annotated[int, Field(ge=1, le=1000)] = 2
    repeat_interval_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 3600.0
    flap_window: Annotated[int, Field(ge=2, le=1000)] = 20
    flap_changes: Annotated[int, Field(ge=2, le=1000)] = 6
    history_retention_days: Annotated[float, Field(gt=0, le=3650)] = 14.0

    @model_validator(mode="after")
    def _flap_changes_fit_window(self) -> MonitoringSection:
        if self.flap_changes >= self.flap_window:
            message = (
                f"flap_changes ({self.flap_changes}) must be below flap_window "
                f"({self.flap_window}): at most {self.flap_window - 1} changes fit in it"
            )
            raise ValueError(message)
        return self


class NotifySection(Section):
    slack_webhook_url_env: EnvName = "SLACK_WEBHOOK_URL"
    slack_bot_token_env: EnvName = "SLACK_BOT_TOKEN"  # noqa: S105 (a variable name)
    slack_channel: str | None = None
    slack_api_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+")] = "https://slack.com/api/"
    on_success: bool = False
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 4
    backoff_seconds: Annotated[float, Field(gt=0, le=300)] = 1.0
    retry_cap_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    max_total_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    queue_max: Annotated[int, Field(ge=1, le=1_000_000)] = 1000


class RetentionSection(Section):
    """restic ``forget`` rules; counts of 0 are off, negative ones are errors (no "unlimited")."""

    keep_last: Annotated[StrictInt, Field(ge=0)] | None = None
    hourly: Annotated[StrictInt, Field(ge=0)] | None = None
    daily: Annotated[StrictInt, Field(ge=0)] | None = None
    weekly: Annotated[StrictInt, Field(ge=0)] | None = None
    monthly: Annotated[StrictInt, Field(ge=0)] | None = None
    yearly: Annotated[StrictInt, Field(ge=0)] | None = None
    within: str | None = None

    @field_validator("within")
    @classmethod
    def _within_is_a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class BackupSection(Section):
    destination: str = "{project.root}/backups"
    paths: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    redis: str | None = None
    max_age_hours: PositiveSeconds = 26.0
    backend: Literal["archive", "restic"] = "archive"
    schedule: CronSchedule = "30 2 * * *"
    prune_after_run: bool = False
    retention: RetentionSection = Field(default_factory=RetentionSection)


class KeyVerifySection(Section):
    """The cheapest read-only request that tells whether a custom provider's key works."""

    method: Literal["GET", "HEAD", "POST"] = "GET"
    url: str
    auth: Literal["bearer", "header", "query", "basic", "none"] = "bearer"
    header: str = "Authorization"
    template: str = "{key}"
    query_param: str = "api_key"
    valid: list[int] = Field(default_factory=lambda: [200])
    invalid: list[int] = Field(default_factory=lambda: [401])
    forbidden: list[int] = Field(default_factory=lambda: [403])
    rate_limited: list[int] = Field(default_factory=lambda: [429])
    expect_json: bool = True


class KeySection(Section):
    provider: str
    env: str | None = None
    secret_env: str | None = None
    required: bool = True
    description: str | None = None
    url: str | None = None
    base_url: str | None = None
    service: str | None = None
    format: str | None = None
    timeout_seconds: PositiveSeconds = 10.0
    verify: KeyVerifySection | None = None

    @field_validator("format")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        return _compiles(value)


class GpuPolicySection(Section):
    """Percentages of a device's memory in use at which ``gpu cleanup`` and the monitor
    warn, ask components to free caches (soft), and restart the biggest holder (hard).
    """

    warn_percent: Percent = 80.0
    soft_percent: Percent = 90.0
    hard_percent: Percent = 97.0
    # The monitor applies the policy by itself (soft: ask components; hard: restart the
    # biggest holder); false leaves cleanup to `opsctl gpu cleanup`.
    automatic: bool = True
    automatic_every_seconds: PositiveSeconds = 60.0

    @model_validator(mode="after")
    def _rising(self) -> GpuPolicySection:
        if not self.warn_percent <= self.soft_percent <= self.hard_percent:
            message = (
                "thresholds must rise: warn_percent <= soft_percent <= hard_percent, got "
                f"{self.warn_percent:g}, {self.soft_percent:g}, {self.hard_percent:g}"
            )
            raise ValueError(message)
        return self


class GpuSection(Section):
    require: bool = False
    devices: list[str] = Field(default_factory=list)
    policy: GpuPolicySection = Field(default_factory=GpuPolicySection)


class RedisSection(Section):
    """The stack's own Redis, shared by the agent SDK, the monitor and backups."""

    url: str | None = None
    service: str | None = None
    password: SecretStr | None = None


class MemoryBankSection(Section):
    path: str = "memory-bank"
    profile: Literal["roo", "cline", "custom"] = "roo"
    files: list[str] = Field(default_factory=list)
    timezone: str | None = None
    timestamps: Literal["local", "utc"] = "local"
    stale_after_days: PositiveSeconds = 7.0
    required: bool = False
    snapshot_schedule: CronSchedule = "0 * * * *"

    @field_validator("files")
    @classmethod
    def _plain_markdown_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.md", name):
                message = f"'{name}' is not a markdown file name inside the bank (NAME.md)"
                raise ValueError(message)
        return names


class Config(Section):
    """The whole validated ``opsctl.toml``."""

    project: ProjectSection = Field(default_factory=ProjectSection)
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    container: ContainerSection = Field(default_factory=ContainerSection)
    services: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ServiceSection] = Field(
        default_factory=dict
    )
    verify: VerifySection = Field(default_factory=VerifySection)
    monitoring: MonitoringSection = Field(default_factory=MonitoringSection)
    notify: NotifySection = Field(default_factory=NotifySection)
    backup: BackupSection = Field(default_factory=BackupSection)
    keys: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], KeySection] = Field(
        default_factory=dict
    )
    gpu: GpuSection = Field(default_factory=GpuSection)
    redis: RedisSection = Field(default_factory=RedisSection)
    memory_bank: MemoryBankSection = Field(default_factory=MemoryBankSection)
