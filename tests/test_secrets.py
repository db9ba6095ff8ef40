"""``opsctl.secrets``: masking and scrubbing of URL passwords in free text."""

from __future__ import annotations

import pytest

from opsctl.secrets import MASK, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:hunter2x@127.0.0.1:6390/0", f"redis://user:{MASK}@127.0.0.1:6390/0"),
        ("url=https://:pw-abc@h/x", f"url=https://:{MASK}@h/x"),
        ("(git+ssh://me:tok@host)", f"(git+ssh://me:{MASK}@host)"),
        ("two a://u:p@h b://v:q@i", f"two a://u:{MASK}@h b://v:{MASK}@i"),
        # No password, or no user-info part: unchanged.
        ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
        ("http://host:8080/path@x", "http://host:8080/path@x"),
    ],
)
def test_url_passwords_are_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_long_runs_of_scheme_like_text_are_left_as_they_are() -> None:
    """Text that only looks like the start of URLs, again and again, comes back whole
    (this shape once took quadratic time to scan).
    """
    letters = "A" * 200_000
    repeated = "a://b:" * 30_000
    assert scrub(letters) == letters
    assert scrub(repeated) == repeated
