"""Placeholder expansion: references, environment variables, defaults and escapes."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsctl.config._placeholders import PlaceholderError, expand

REFS = {
    "port": "7001",
    "services.redis.port": "6390",
    "services.redis.name": "redis",
    "project.root": "/srv/app",
}

# The autouse isolation fixture is function-scoped; expand() touches no state it manages.
PROPERTY_SETTINGS = settings(
    max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

PLAIN_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="{}$", blacklist_categories=("Cs",)),
    max_size=80,
)
ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
BRACEY_TEXT = st.text(alphabet="{}$:-_ aZ.9", max_size=40)


def escaped(text: str) -> str:
    """Write ``text`` so that expansion gives it back literally."""
    return text.replace("$", "$$").replace("{", "{{").replace("}", "}}")


def test_expand_own_port_reference_is_replaced() -> None:
    """{port} becomes the service's own port."""
    assert expand("serve --port {port}", refs=REFS, environ={}) == "serve --port 7001"


def test_expand_other_service_port_reference_is_replaced() -> None:
    """{services.NAME.port} becomes that service's port."""
    text = "redis://127.0.0.1:{services.redis.port}/0"
    assert expand(text, refs=REFS, environ={}) == "redis://127.0.0.1:6390/0"


def test_expand_project_root_reference_is_replaced() -> None:
    """{project.root} becomes the project's root folder."""
    assert expand("{project.root}/data", refs=REFS, environ={}) == "/srv/app/data"


def test_expand_env_variable_set_is_replaced() -> None:
    """${VAR} becomes the variable's value."""
    assert expand("key=${API_KEY}", refs={}, environ={"API_KEY": "abc"}) == "key=abc"


def test_expand_env_variable_unset_with_default_uses_default() -> None:
    """${VAR:-default} becomes the default when VAR is not set."""
    assert expand("${HOST:-127.0.0.1}:80", refs={}, environ={}) == "127.0.0.1:80"


def test_expand_env_variable_set_with_default_uses_value() -> None:
    """${VAR:-default} becomes VAR's value when it is set."""
    assert expand("${HOST:-127.0.0.1}", refs={}, environ={"HOST": "localhost"}) == "localhost"


def test_expand_env_variable_empty_default_gives_empty_string() -> None:
    """${VAR:-} with VAR unset becomes the empty string."""
    assert expand("a${MISSING:-}b", refs={}, environ={}) == "ab"


def test_expand_env_variable_set_but_empty_with_default_uses_default() -> None:
    """${VAR:-default} uses the default when VAR is set to the empty string, as in a shell."""
    assert expand("sleep ${DELAY:-5}", refs={}, environ={"DELAY": ""}) == "sleep 5"


def test_expand_unknown_reference_raises_naming_placeholder() -> None:
    """A reference naming nothing raises PlaceholderError carrying it and the known names."""
    with pytest.raises(PlaceholderError) as caught:
        expand("{services.nope.port}", refs=REFS, environ={})
    assert caught.value.placeholder == "{services.nope.port}"
    assert "services.redis.port" in caught.value.known


def test_expand_unset_env_variable_without_default_raises() -> None:
    """${VAR} with VAR unset and no default raises PlaceholderError naming it."""
    with pytest.raises(PlaceholderError) as caught:
        expand("x ${UNSET_VAR} y", refs=REFS, environ={})
    assert caught.value.placeholder == "${UNSET_VAR}"


def test_expand_double_braces_give_literal_braces() -> None:
    """{{ and }} stand for { and }, even around a reference name."""
    assert expand("{{port}}", refs=REFS, environ={}) == "{port}"
    assert expand("{{ {port} }}", refs=REFS, environ={}) == "{ 7001 }"


def test_expand_double_dollar_gives_literal_dollar() -> None:
    """$$ stands for $, so $${{VAR}} is the literal text ${VAR}."""
    result = expand("$${{HOME}} costs $$5", refs={}, environ={"HOME": "/root"})
    assert result == "${HOME} costs $5"


def test_expand_double_dollar_before_brace_leaves_brace_a_reference() -> None:
    """After $$ the braces still form a reference, so $${port} is a dollar and the port."""
    assert expand("$${port}", refs=REFS, environ={}) == "$7001"


def test_expand_braces_that_are_no_placeholder_are_kept() -> None:
    """Braces around something that is not a name (like a Python dict) are left alone."""
    text = "python3 -c 'print({1: 2})'"
    assert expand(text, refs=REFS, environ={}) == text


def test_expand_values_are_not_expanded_again() -> None:
    """A value that itself looks like a placeholder is inserted literally (one pass only)."""
    assert expand("${A}", refs=REFS, environ={"A": "{port}${B}"}) == "{port}${B}"


@PROPERTY_SETTINGS
@given(text=PLAIN_TEXT)
def test_expand_text_without_special_characters_is_unchanged(text: str) -> None:
    """Text with no brace or dollar sign comes back exactly as it went in."""
    assert expand(text, refs=REFS, environ={"HOME": "/root"}) == text


@PROPERTY_SETTINGS
@given(text=ANY_TEXT)
def test_expand_escaped_text_round_trips(text: str) -> None:
    """Any text with its braces and dollars doubled expands back to itself."""
    assert expand(escaped(text), refs=REFS, environ={"HOME": "/root"}) == text


@PROPERTY_SETTINGS
@given(text=BRACEY_TEXT)
def test_expand_escaped_brace_heavy_text_round_trips(text: str) -> None:
    """Text made mostly of braces, dollars and name characters round-trips through escapes."""
    assert expand(escaped(text), refs=REFS, environ={"aZ": "value"}) == text


@PROPERTY_SETTINGS
@given(
    before=PLAIN_TEXT,
    after=PLAIN_TEXT,
    value=st.text(alphabet=string.printable, max_size=30),
)
def test_expand_env_value_is_inserted_verbatim(before: str, after: str, value: str) -> None:
    """${VAR} is replaced by exactly its value, whatever characters the value holds."""
    result = expand(f"{before}${{VAR}}{after}", refs=REFS, environ={"VAR": value})
    assert result == before + value + after
