"""Configuration: ``opsctl.toml`` found, validated and resolved into a :class:`Project`."""

from opsctl.config._load import CONFIG_FILE_NAME, find_config, load_project
from opsctl.config._model import (
    CommandCheck,
    Config,
    DiskCheck,
    EnvCheck,
    FileCheck,
    HealthCheck,
    HttpCheck,
    RedisCheck,
    ServiceSection,
    TcpCheck,
)
from opsctl.config._project import Project
from opsctl.config._validate import command_argv, find_cycle

__all__ = [
    "CONFIG_FILE_NAME",
    "CommandCheck",
    "Config",
    "DiskCheck",
    "EnvCheck",
    "FileCheck",
    "HealthCheck",
    "HttpCheck",
    "Project",
    "RedisCheck",
    "ServiceSection",
    "TcpCheck",
    "command_argv",
    "find_config",
    "find_cycle",
    "load_project",
]
