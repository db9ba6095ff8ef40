"""Cron lines and systemd timers for the jobs that run on a schedule."""

from opsctl.schedules._render import (
    Job,
    cron_to_oncalendar,
    render_cron,
    render_systemd,
    scheduled_jobs,
)

__all__ = ["Job", "cron_to_oncalendar", "render_cron", "render_systemd", "scheduled_jobs"]
