"""Continuous monitoring: the loop behind ``opsctl monitor``, its alert state machines,
silences, history and /metrics. See ``docs/monitoring.md``.
"""

from opsctl.monitor._alerts import (
    AlertPolicy,
    AlertState,
    Notice,
    Observation,
    Step,
    Transition,
    observe,
)
from opsctl.monitor._history import (
    History,
    add_silence,
    alert_dict,
    alert_states,
    known_targets,
    list_silences,
    parse_since,
    read_history,
    remove_silences,
    transition_dict,
)
from opsctl.monitor._loop import CycleOutcome, Monitor, MonitorOptions, run_monitor
from opsctl.monitor._silences import Silence, parse_duration
from opsctl.monitor._store import Uptime

__all__ = [
    "AlertPolicy",
    "AlertState",
    "CycleOutcome",
    "History",
    "Monitor",
    "MonitorOptions",
    "Notice",
    "Observation",
    "Silence",
    "Step",
    "Transition",
    "Uptime",
    "add_silence",
    "alert_dict",
    "alert_states",
    "known_targets",
    "list_silences",
    "observe",
    "parse_duration",
    "parse_since",
    "read_history",
    "remove_silences",
    "run_monitor",
    "transition_dict",
]
