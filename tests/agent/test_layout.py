"""Names and text as the agent and opsctl's side shape them."""

from __future__ import annotations

import pytest

from opsctl.agent._layout import LONGEST_DETAIL, finite_number, one_line
from opsctl.secrets import mask, register
from tests.agent.conftest import PASSWORD


def test_one_line_folds_whitespace_and_masks_known_secrets() -> None:
    """Short text comes back whole, on one line, with registered secrets masked."""
    register(PASSWORD)
    assert one_line(f"reloading\n\t{PASSWORD}   model ") == f"reloading {mask(PASSWORD)} model"


@pytest.mark.parametrize("filler", [" ", "y"], ids=["spaces", "letters"])
def test_one_line_never_shows_part_of_a_secret_cut_by_its_window(filler: str) -> None:
    """Wherever a long text puts a secret, even across the end of the part that is read,
    no piece of it is shown, and the line is at most 500 characters, marked as cut.
    """
    register(PASSWORD)
    for offset in range(3800, 4100, 3):
        line = one_line(filler * offset + PASSWORD + "x" * 60_000)
        assert PASSWORD[:6] not in line, offset
        assert len(line) <= LONGEST_DETAIL
        assert line.endswith("…")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10**400, "needs a finite number, not an integer too large for a float"),
        (-(10**400), "needs a finite number, not an integer too large for a float"),
        (float("inf"), "needs a finite number, not inf"),
        (False, "needs a number, not bool"),
        ("3", "needs a number, not str"),
    ],
    ids=["huge int", "huge negative int", "infinity", "bool", "string"],
)
def test_finite_number_refuses_what_is_not_a_finite_float(value: object, expected: str) -> None:
    """Only ints and floats that fit a float and are finite pass, as ValueError otherwise."""
    with pytest.raises(ValueError, match="^Gauge 'q' ") as raised:
        finite_number(value, what="Gauge 'q'")
    assert expected in str(raised.value)


def test_finite_number_returns_a_float() -> None:
    """Ints come back as floats, the largest that fit included."""
    assert finite_number(2**1023, what="x") == float(2**1023)
    assert finite_number(7, what="x") == 7.0
