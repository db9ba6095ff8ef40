"""Turn pydantic validation errors into sentences that name the key, line and fix."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from opsctl import secrets
from opsctl.config._locate import find_line

_LONGEST_SHOWN_INPUT = 60


def describe_errors(
    error: ValidationError, *, model: type[BaseModel], text: str
) -> list[tuple[tuple[str | int, ...], int | None, str]]:
    """Return one ``(key path, line, problem)`` per error in ``error``."""
    problems = []
    for item in error.errors(include_url=False):
        location = _clean_location(model, tuple(item["loc"]))
        problem = _describe(item, model=model, location=location)
        problems.append((location, find_line(text, location), problem))
    return problems


def _describe(item: Any, *, model: type[BaseModel], location: tuple[str | int, ...]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(location[-1])
        known = _field_names(_resolve(model, location[:-1]))
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(known)}"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        context = item.get("ctx", {})
        expected = context.get("expected_tags", "")
        return f"unknown kind {context.get('tag')!r}; expected one of {expected}"
    return f"{item['msg']} (got {_shown_input(item.get('input'), location)})"


def _shown_input(value: object, location: tuple[str | int, ...]) -> str:
    """The offending value, unless it may be a secret: then only its type."""
    names = [part for part in location if isinstance(part, str)]
    if isinstance(value, dict | list) or any(secrets.is_secret_name(name) for name in names):
        return f"a {type(value).__name__}"
    return _short(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _LONGEST_SHOWN_INPUT else text[: _LONGEST_SHOWN_INPUT - 3] + "..."


def _clean_location(
    model: type[BaseModel], location: tuple[str | int, ...]
) -> tuple[str | int, ...]:
    """Drop the union-member tags pydantic inserts, keeping only keys the user wrote."""
    cleaned: list[str | int] = []
    current: Any = model
    for part in location:
        current = _unwrap(current)
        if _is_union(current) and isinstance(part, str):
            member = _union_member(current, part)
            if member is not None:
                current = member
                continue
            if not any(_is_model(m) for m in get_args(current)):
                continue
            current = next(m for m in get_args(current) if _is_model(m))
        cleaned.append(part)
        current = _step(current, part)
    return tuple(cleaned)


def _resolve(model: type[BaseModel], location: tuple[str | int, ...]) -> Any:
    current: Any = model
    for part in location:
        current = _unwrap(current)
        if _is_union(current):
            current = next((m for m in get_args(current) if _is_model(m)), None)
        current = _step(current, part)
    current = _unwrap(current)
    if _is_union(current):
        current = next((m for m in get_args(current) if _is_model(m)), None)
    return current


def _step(current: Any, part: str | int) -> Any:
    if _is_model(current):
        field = current.model_fields.get(str(part))
        return field.annotation if field else None
    origin = get_origin(current)
    if origin is list:
        return get_args(current)[0]
    if origin is dict:
        return get_args(current)[1]
    return None


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if _is_union(annotation):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
        return Union[tuple(_unwrap(m) for m in members)]  # noqa: UP007
    return annotation


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _union_member(union: Any, tag: str) -> Any:
    for member in get_args(union):
        if _is_model(member):
            kind = member.model_fields.get("kind")
            literal = kind is not None and get_origin(kind.annotation) is Literal
            if literal and tag in get_args(kind.annotation):
                return member
        elif tag in {"str", "int", "float", "bool", "list[str]"}:
            return member
    return None


def _field_names(model: Any) -> list[str]:
    return list(model.model_fields) if _is_model(model) else []
