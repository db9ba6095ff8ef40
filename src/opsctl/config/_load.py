"""Find, read, override, expand and validate ``opsctl.toml``.

Precedence, highest first: command-line overrides, the process environment, the ``.env``
file, the file itself, built-in defaults. Environment overrides are variables named
``OPSCTL_<SECTION>__<KEY>`` (``__`` between path parts, lower-cased).
"""

from __future__ import annotations

import copy
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import SecretStr, ValidationError

from opsctl import envvars, secrets
from opsctl.config._errors import describe_errors
from opsctl.config._locate import find_line
from opsctl.config._model import Config
from opsctl.config._placeholders import PlaceholderError, expand
from opsctl.config._project import Project
from opsctl.config._validate import check_consistency
from opsctl.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_FILE_NAME = "opsctl.toml"
_SERVICE_DEPTH = 2  # ("services", NAME)


def find_config(explicit: Path | None = None, *, environ: Mapping[str, str], cwd: Path) -> Path:
    """Return the path of the config file to use.

    ``explicit`` (from ``--config``) wins, then ``OPSCTL_CONFIG``, then the first
    ``opsctl.toml`` found in ``cwd`` or one of its parents. Raises :class:`ConfigError` when
    none is found.
    """
    chosen = explicit or (Path(environ[envvars.CONFIG]) if environ.get(envvars.CONFIG) else None)
    if chosen is not None:
        chosen = chosen if chosen.is_absolute() else cwd / chosen
        if chosen.is_dir():
            chosen = chosen / CONFIG_FILE_NAME
        if not chosen.is_file():
            message = f"Config file {chosen} does not exist."
            raise ConfigError(message, hint="Check --config or OPSCTL_CONFIG.")
        return chosen

    for folder in (cwd, *cwd.parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            return candidate
    message = f"No {CONFIG_FILE_NAME} found in {cwd} or any folder above it."
    raise ConfigError(message, hint="Pass --config PATH, or set OPSCTL_CONFIG.")


def load_project(
    config_path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    env_file: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    lenient: bool = False,
) -> Project:
    """Load and validate the project's configuration.

    ``overrides`` maps dotted key paths (``runtime.kind``) to values given on the command
    line. Raises :class:`ConfigError`, naming the file, key and line, for any problem.
    ``lenient`` is for commands that only look at or stop a running stack (``down``,
    ``status``, ``logs``, ``health``): an unset ``${VAR}`` stays as written and a missing
    executable is not an error, so a stack started earlier can always be stopped.
    """
    environ = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    path = find_config(config_path, environ=environ, cwd=cwd).resolve()
    text = _read(path)
    raw = _parse(path, text)

    # Where the root and the .env file are can be overridden by the process environment
    # or the command line, but not by the .env file itself.
    located = copy.deepcopy(raw)
    _apply_overrides(located, _environment_overrides(environ))
    _apply_overrides(located, dict(overrides or {}))
    root = (path.parent / str(_get(located, ("project", "root"), "."))).resolve()
    if env_file is not None and not env_file.is_file():
        message = f"The env file {env_file} given with --env-file does not exist or is not a file."
        raise ConfigError(message)
    env_path = env_file or root / str(_get(located, ("project", "env_file"), ".env"))
    dotenv = _read_dotenv(env_path)
    merged_environ = {**dotenv, **environ}

    sources = _environment_overrides(merged_environ)
    _apply_overrides(raw, sources)
    _apply_overrides(raw, dict(overrides or {}))
    variables = {key: name for key, (_, name) in sources.items()}
    # Expand the defaults too, so a default like "{project.root}/backups" resolves.
    complete = _validate(Config, raw, path=path, text=text, variables=variables).model_dump()
    expanded = _expand_all(
        complete, root=root, environ=merged_environ, path=path, text=text, lenient=lenient
    )
    config = _validate(Config, expanded, path=path, text=text, variables=variables)
    problems = check_consistency(config, root=root, environ=merged_environ, lenient=lenient)
    if problems:
        _raise(path, [(key, find_line(text, key), problem) for key, problem in problems])

    _register_secrets(config, merged_environ)
    state_dir = (root / config.project.state_dir).resolve()
    logger.debug("Loaded %s (root %s, state %s)", path, root, state_dir)
    return Project(
        config=config,
        config_path=path,
        root=root,
        state_dir=state_dir,
        env_file=env_path,
        dotenv=dotenv,
        environ=merged_environ,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        message = f"Cannot read config file {path}: {error}."
        raise ConfigError(message) from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = f"{path} is not valid TOML: {error}."
        raise ConfigError(message, hint="Fix the syntax at the line and column named.") from None


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as error:
        message = f"Cannot read the env file {path}: {error}."
        raise ConfigError(message, hint="It must be UTF-8 text of NAME=value lines.") from None
    return {key: value for key, value in values.items() if value is not None}


def _environment_overrides(environ: Mapping[str, str]) -> dict[str, tuple[object, str]]:
    """Return ``{dotted key: (value, variable name)}`` for every override variable."""
    overrides: dict[str, tuple[object, str]] = {}
    prefix, separator = envvars.OVERRIDE_PREFIX, envvars.OVERRIDE_SEPARATOR
    for name, value in environ.items():
        if not name.startswith(prefix) or separator not in name[len(prefix) :]:
            continue
        key = ".".join(name[len(prefix) :].lower().split(separator))
        overrides[key] = (value, name)
    return overrides


def _parse_value(value: str) -> object:
    """Read an override like a TOML value (``60``, ``true``, ``["a"]``); else keep the string."""
    try:
        return tomllib.loads(f"value = {value}")["value"]
    except tomllib.TOMLDecodeError:
        return value


# Tables whose values are strings whatever they look like.
_STRING_TABLES = {"environment", "labels"}


def _apply_overrides(raw: dict[str, Any], overrides: Mapping[str, object]) -> None:
    """Set each dotted key; parts match existing keys case-insensitively, since variable
    names are upper case and service names need not be.
    """
    for dotted, given in overrides.items():
        value, variable = given if isinstance(given, tuple) else (given, None)
        *parents, last = dotted.split(".")
        table = raw
        for part in parents:
            child = table.setdefault(_existing_key(table, part), {})
            if not isinstance(child, dict):
                where = f" (from {variable})" if variable else ""
                message = f"Override '{dotted}'{where} does not name a table key in the config."
                raise ConfigError(message)
            table = child
        in_string_table = bool(parents) and parents[-1] in _STRING_TABLES
        if isinstance(value, str) and variable is not None and not in_string_table:
            value = _parse_value(value)
        table[_existing_key(table, last)] = value


def _existing_key(table: dict[str, Any], part: str) -> str:
    for key in table:
        if key.lower() == part.lower():
            return key
    return part


def _get(raw: Mapping[str, Any], path: tuple[str, ...], default: object) -> object:
    current: object = raw
    for part in path:
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


def _validate(
    model: type[Config],
    raw: dict[str, Any],
    *,
    path: Path,
    text: str,
    variables: Mapping[str, str] | None = None,
) -> Config:
    """Validate ``raw``; a problem with a key an override variable set names the variable."""
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = describe_errors(error, model=model, text=text)
        _raise(path, [_attribute(problem, variables or {}) for problem in problems])
        raise  # unreachable: _raise always raises


def _attribute(
    problem: tuple[tuple[str | int, ...], int | None, str], variables: Mapping[str, str]
) -> tuple[tuple[str | int, ...], int | None, str]:
    key, line, text = problem
    dotted = ".".join(str(part) for part in key).lower()
    for prefix, variable in variables.items():
        if dotted == prefix or dotted.startswith(prefix + "."):
            return key, None, f"{text} (set by the variable {variable})"
    return problem


def _raise(path: Path, problems: list[tuple[tuple[str | int, ...], int | None, str]]) -> None:
    lines = []
    for key, line, problem in problems:
        where = f"line {line}, " if line else ""
        dotted = ".".join(str(part) for part in key) or "(top level)"
        lines.append(f"  {where}{dotted}: {problem}")
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    message = f"{path} has {count} configuration {noun}:\n" + "\n".join(lines)
    raise ConfigError(message, hint="Nothing was started or written.")


def _expand_all(
    raw: dict[str, Any],
    *,
    root: Path,
    environ: Mapping[str, str],
    path: Path,
    text: str,
    lenient: bool = False,
) -> dict[str, Any]:
    project = raw.get("project", {})
    state_dir = str(project.get("state_dir", ".opsctl")) if isinstance(project, dict) else ".opsctl"
    refs = {
        "project.root": str(root),
        "project.name": str(project.get("name") or root.name)
        if isinstance(project, dict)
        else root.name,
        "project.state_dir": str((root / state_dir).resolve()),
    }
    services = raw.get("services", {})
    for name, service in services.items() if isinstance(services, dict) else []:
        refs[f"services.{name}.name"] = name
        if isinstance(service, dict) and isinstance(service.get("port"), int):
            refs[f"services.{name}.port"] = str(service["port"])

    problems: list[tuple[tuple[str | int, ...], int | None, str]] = []

    def walk(value: object, key: tuple[str | int, ...], local: dict[str, str]) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if _is_verbatim(key):
            return value
        if isinstance(value, str):
            try:
                return expand(value, refs=local, environ=environ)
            except PlaceholderError as error:
                if not lenient:
                    problems.append((key, find_line(text, key), _placeholder_problem(error)))
                return value
        if isinstance(value, dict):
            scope = local
            if (
                len(key) == _SERVICE_DEPTH
                and key[0] == "services"
                and isinstance(value.get("port"), int)
            ):
                scope = {**local, "port": str(value["port"])}
            return {k: walk(v, (*key, k), scope) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item, (*key, index), local) for index, item in enumerate(value)]
        return value

    expanded = walk(raw, (), refs)
    if problems:
        _raise(path, problems)
    return cast(dict[str, Any], expanded)


def _is_verbatim(key: tuple[str | int, ...]) -> bool:
    """Keys whose text has placeholders of its own: a key provider's request template."""
    return len(key) == 4 and key[0] == "keys" and key[2:] == ("verify", "template")  # noqa: PLR2004


def _placeholder_problem(error: PlaceholderError) -> str:
    if error.placeholder.startswith("$"):
        return (
            f"placeholder {error.placeholder} names an environment variable that is not set "
            "(write ${VAR:-default} for a default)"
        )
    import difflib

    close = difflib.get_close_matches(error.placeholder.strip("{}"), error.known, n=1)
    hint = f"; did you mean {{{close[0]}}}?" if close else ""
    return f"placeholder {error.placeholder} names nothing{hint}"


def _register_secrets(config: Config, environ: Mapping[str, str]) -> None:
    declared = {key.env or name for name, key in config.keys.items()}
    declared |= {key.secret_env for key in config.keys.values() if key.secret_env}
    for name, value in environ.items():
        if secrets.is_secret_name(name) or name in declared:
            secrets.register(value)
    for service in config.services.values():
        for name, value in service.environment.items():
            if secrets.is_secret_name(name):
                secrets.register(value)
        for check in service.health:
            password = getattr(check, "password", None)
            if password is not None:
                secrets.register(password.get_secret_value())
    if config.redis.password is not None:
        secrets.register(config.redis.password.get_secret_value())
