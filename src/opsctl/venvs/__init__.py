"""Per-service Python environments, built under ``.opsctl/venvs`` from what a service declares."""

from opsctl.venvs._build import (
    IMAGE_VENVS,
    EnvironmentState,
    environment_for,
    environment_states,
    image_requirements,
    service_environment_variables,
    sync_environment,
)

__all__ = [
    "IMAGE_VENVS",
    "EnvironmentState",
    "environment_for",
    "environment_states",
    "image_requirements",
    "service_environment_variables",
    "sync_environment",
]
