"""``opsctl.secrets``: masking and scrubbing of URL passwords in free text."""

from __future__ import annotations

import pytest

from opsctl.secrets import MASK, mask_url, scrub


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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6390/0?password=S3cr3t", f"redis://127.0.0.1:6390/0?password={MASK}"),
        ("redis://h:1/0?db=2&pass=abc&x=1", f"redis://h:1/0?db=2&pass={MASK}&x=1"),
        ("redis://h:1/0?pwd=abc", f"redis://h:1/0?pwd={MASK}"),
        ("redis://h:1/0?auth=abc", f"redis://h:1/0?auth={MASK}"),
        (
            "https://h/x?api_key=abc&access_token=def",
            f"https://h/x?api_key={MASK}&access_token={MASK}",
        ),
        ("redis://u:pw@h:1/0?password=S", f"redis://u:{MASK}@h:1/0?password={MASK}"),
        ("redis://h:1/0?db=2", "redis://h:1/0?db=2"),
    ],
)
def test_query_string_passwords_are_masked(url: str, expected: str) -> None:
    """A password given as a query parameter is masked by mask_url and by scrub."""
    assert mask_url(url) == expected
    assert scrub(f"Redis at {url} does not answer") == f"Redis at {expected} does not answer"
