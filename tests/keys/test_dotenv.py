"""Safe .env editing: byte-for-byte preservation, quoting, mode, symlinks, locking, crashes."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opsctl.errors import UsageError
from opsctl.keys import quote, set_key, unset_key

INTERPOLATION = re.compile(r"\$\{[^}]*\}")

MIXED = (
    b"# settings for the app\n"
    b"\n"
    b"export PLAIN=value\n"
    b'DOUBLE="two words # not a comment"\n'
    b"SINGLE='single # quoted'\n"
    b"   \n"
    b"INLINE=abc  # trailing comment\n"
    b'MULTI="line one\nline two"\n'
    b"TARGET=old\n"
    b"EMPTY=\n"
    b"# last comment, no newline at the end"
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def env(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder / ".env"


def test_quote_reads_back_through_dotenv(env: Path) -> None:
    env.write_text("K=" + quote("a 'b' \\ # $HOME") + "\n")
    assert dotenv_values(env)["K"] == "a 'b' \\ # $HOME"


def test_quote_refuses_interpolation() -> None:
    with pytest.raises(UsageError, match=r"\$\{"):
        quote("prefix ${HOME} suffix")


def test_replacing_a_key_keeps_every_other_byte(env: Path) -> None:
    env.write_bytes(MIXED)
    result = set_key(env, "TARGET", "new")
    assert result.replaced
    assert env.read_bytes() == MIXED.replace(b"TARGET=old\n", b"TARGET='new'\n")
    values = dotenv_values(env)
    assert values["TARGET"] == "new"
    assert values["DOUBLE"] == "two words # not a comment"
    assert values["MULTI"] == "line one\nline two"


def test_crlf_file_keeps_its_line_endings(env: Path) -> None:
    original = b"# comment\r\nA=1\r\n\r\nexport KEY=old\r\nB='two'\r\n"
    env.write_bytes(original)
    set_key(env, "KEY", "new")
    assert env.read_bytes() == b"# comment\r\nA=1\r\n\r\nexport KEY='new'\r\nB='two'\r\n"
    set_key(env, "ADDED", "x")
    assert env.read_bytes().endswith(b"B='two'\r\nADDED='x'\r\n")
    assert b"\n" not in env.read_bytes().replace(b"\r\n", b"")


def test_export_prefix_is_kept(env: Path) -> None:
    env.write_bytes(b"export KEY=old\nOTHER=1\n")
    set_key(env, "KEY", "new")
    assert env.read_bytes() == b"export KEY='new'\nOTHER=1\n"


def test_blank_lines_before_a_replaced_key_are_kept(env: Path) -> None:
    env.write_bytes(b"A=1\n\n\nKEY=old\nB=2\n")
    set_key(env, "KEY", "new")
    assert env.read_bytes() == b"A=1\n\n\nKEY='new'\nB=2\n"


def test_whitespace_only_lines_before_a_replaced_key_are_kept(env: Path) -> None:
    env.write_bytes(b"A=1\n  \n\t\nKEY=old\nB=2\n")
    set_key(env, "KEY", "new")
    assert env.read_bytes() == b"A=1\n  \n\t\nKEY='new'\nB=2\n"


def test_the_last_duplicate_is_replaced(env: Path) -> None:
    env.write_bytes(b"KEY=first\nA=1\nKEY=second\nB=2\n")
    result = set_key(env, "KEY", "third")
    assert result.replaced
    assert env.read_bytes() == b"KEY=first\nA=1\nKEY='third'\nB=2\n"
    assert dotenv_values(env)["KEY"] == "third"


def test_a_new_key_is_appended(env: Path) -> None:
    env.write_bytes(b"A=1\n# end\n")
    result = set_key(env, "NEW", "v")
    assert not result.replaced
    assert env.read_bytes() == b"A=1\n# end\nNEW='v'\n"


def test_appending_to_a_file_without_final_newline(env: Path) -> None:
    env.write_bytes(b"A=1")
    set_key(env, "NEW", "v")
    assert env.read_bytes() == b"A=1\nNEW='v'\n"


def test_a_missing_file_is_created_private(env: Path) -> None:
    result = set_key(env, "NEW", "v")
    assert result.fixed_mode is None
    assert env.read_bytes() == b"NEW='v'\n"
    assert mode_of(env) == 0o600


def test_unset_removes_every_assignment_and_keeps_the_rest(env: Path) -> None:
    env.write_bytes(b"# head\nKEY=1\nA=1\nexport KEY=2\n# tail\nKEY='3'\nB=2\n")
    result = unset_key(env, "KEY")
    assert result.replaced
    assert env.read_bytes() == b"# head\nA=1\n# tail\nB=2\n"
    assert "KEY" not in dotenv_values(env)


def test_unset_keeps_a_blank_line_before_the_removed_key(env: Path) -> None:
    env.write_bytes(b"A=1\n\nKEY=old\nB=2\n")
    unset_key(env, "KEY")
    assert env.read_bytes() == b"A=1\n\nB=2\n"


def test_unset_of_an_absent_key_changes_nothing(env: Path) -> None:
    env.write_bytes(MIXED)
    env.chmod(0o600)
    before = env.stat().st_mtime_ns
    result = unset_key(env, "ABSENT")
    assert not result.replaced
    assert env.read_bytes() == MIXED
    assert env.stat().st_mtime_ns == before
    assert not unset_key(env.parent / "missing.env", "KEY").replaced
    assert not (env.parent / "missing.env").exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (b"A=1\nthis is not valid\nB=2\n", 2),
        (b"A=1\n\n\nKEY='unterminated\n", 4),
        (b"A=1\r\n\r\nnot valid\r\n", 3),
        (b"A=1\n  \nnot valid\n", 3),
        (b"A=1\r\rnot valid\r", 3),
    ],
    ids=["plain", "after-blank-lines", "crlf", "after-whitespace-line", "cr-endings"],
)
def test_a_malformed_line_is_named_and_the_file_untouched(
    env: Path, text: bytes, line: int
) -> None:
    env.write_bytes(text)
    os.utime(env, ns=(1_000_000_000, 1_000_000_000))
    for action in (lambda: set_key(env, "NEW", "v"), lambda: unset_key(env, "A")):
        with pytest.raises(UsageError) as caught:
            action()
        assert f"line {line}:" in caught.value.message
        assert str(env.resolve()) in caught.value.message
        assert env.read_bytes() == text
        assert env.stat().st_mtime_ns == 1_000_000_000
    assert sorted(p.name for p in env.parent.iterdir()) == [".env"]


def test_a_looser_mode_is_reported_and_fixed(env: Path) -> None:
    env.write_bytes(b"A=1\n")
    env.chmod(0o644)
    result = set_key(env, "KEY", "v")
    assert result.fixed_mode == 0o644
    assert mode_of(env) == 0o600
    again = set_key(env, "KEY", "w")
    assert again.fixed_mode is None


def test_a_looser_mode_is_fixed_even_when_nothing_changes(env: Path) -> None:
    env.write_bytes(b"KEY='v'\n")
    env.chmod(0o640)
    result = set_key(env, "KEY", "v")
    assert result.fixed_mode == 0o640
    assert mode_of(env) == 0o600
    assert env.read_bytes() == b"KEY='v'\n"


def test_unset_fixes_a_looser_mode(env: Path) -> None:
    env.write_bytes(b"A=1\nKEY=2\n")
    env.chmod(0o666)
    result = unset_key(env, "KEY")
    assert result.fixed_mode == 0o666
    assert mode_of(env) == 0o600


def test_a_symlinked_env_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "secrets" / "real.env"
    real.parent.mkdir()
    (tmp_path / "project").mkdir()
    real.write_bytes(b"# kept\nA=1\n")
    real.chmod(0o644)
    link = tmp_path / "project" / ".env"
    link.symlink_to(real)
    result = set_key(link, "KEY", "v")
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert result.path == real.resolve()
    assert result.fixed_mode == 0o644
    assert real.read_bytes() == b"# kept\nA=1\nKEY='v'\n"
    assert mode_of(real) == 0o600
    unset_key(link, "A")
    assert link.is_symlink()
    assert real.read_bytes() == b"# kept\nKEY='v'\n"
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.env"]


def test_concurrent_writers_never_lose_a_key(env: Path) -> None:
    env.write_bytes(b"# shared\n")
    rounds, writers = 5, 8
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            barrier.wait(5)
            for round_ in range(rounds):
                set_key(env, f"KEY_{index}_{round_}", f"value {index} {round_}")
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    values = dotenv_values(env)
    expected = {
        f"KEY_{index}_{round_}": f"value {index} {round_}"
        for index in range(writers)
        for round_ in range(rounds)
    }
    assert values == expected
    assert env.read_bytes().startswith(b"# shared\n")
    assert sorted(p.name for p in env.parent.iterdir()) == [".env"]


def test_a_crash_mid_write_leaves_no_copy_behind(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = b"# keep me\nKEY=old\n"
    env.write_bytes(original)
    env.chmod(0o600)
    temporaries: list[tuple[str, int, bytes]] = []

    def crash(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        path = Path(source)
        temporaries.append((path.name, mode_of(path), path.read_bytes()))
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr("opsctl._files.os.replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        set_key(env, "KEY", "brand-new-secret-value")
    monkeypatch.undo()

    assert env.read_bytes() == original
    assert mode_of(env) == 0o600
    assert sorted(p.name for p in env.parent.iterdir()) == [".env"]
    # The copy that existed for a moment held the secret, and only at mode 0600.
    [(name, mode, data)] = temporaries
    assert name.startswith(".")
    assert mode == 0o600
    assert b"brand-new-secret-value" in data


def test_an_interrupt_mid_write_leaves_no_copy_behind(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.write_bytes(b"A=1\n")

    def interrupt(source: object, target: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("opsctl._files.os.replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        set_key(env, "KEY", "secret-value")
    monkeypatch.undo()
    assert env.read_bytes() == b"A=1\n"
    assert sorted(p.name for p in env.parent.iterdir()) == [".env"]


def test_bad_variable_names_are_refused(env: Path) -> None:
    for name in ("1ABC", "A-B", "A B", ""):
        with pytest.raises(UsageError):
            set_key(env, name, "v")
    assert not env.exists()


HARD_CHARACTERS = st.sampled_from(
    [
        "'",
        '"',
        "\\",
        "#",
        "$",
        "{",
        "}",
        " ",
        "\t",
        "\n",
        "\r",
        "=",
        "`",
        "é",
        "€",
        "🔑",
        "a",
        "Z",
        "${",
        "${HOME}",
        "${X:-d}",
    ]
)
HARD_VALUES = st.one_of(
    st.text(st.characters(codec="utf-8")),
    st.lists(HARD_CHARACTERS, max_size=30).map("".join),
    st.lists(st.one_of(HARD_CHARACTERS, st.characters(codec="utf-8")), max_size=30).map("".join),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HARD_VALUES)
@example(value="it's a \\'quoted\\' value # with $dollar and spaces ")
@example(value="line one\nline two\n")
@example(value="${HOME}")
@example(value="")
def test_round_trip_through_python_dotenv(tmp_path: Path, value: str) -> None:
    env = tmp_path / "round-trip.env"
    before = b"# head\r\nexport FIRST=1\nKEY=old\n"
    env.write_bytes(before)
    try:
        set_key(env, "KEY", value)
    except UsageError:
        assert INTERPOLATION.search(value) or "\r" in value, f"refused for no reason: {value!r}"
        assert env.read_bytes() == before
        return
    values = dotenv_values(env)
    assert values["KEY"] == value
    assert values["FIRST"] == "1"
    assert env.read_bytes().startswith(b"# head\r\nexport FIRST=1\n")


@pytest.mark.parametrize("value", ["a\rb", "line one\r\nline two"])
def test_carriage_return_is_refused_and_the_file_kept(env: Path, value: str) -> None:
    """python-dotenv reads a stored CR back as LF, so such a value is refused untouched."""
    before = env.read_bytes() if env.exists() else None
    with pytest.raises(UsageError, match="carriage return"):
        set_key(env, "KEY", value)
    assert (env.read_bytes() if env.exists() else None) == before


@pytest.mark.parametrize("target", ["gone/real.env", "real.env"])
def test_a_dangling_symlink_is_refused_and_nothing_created(tmp_path: Path, target: str) -> None:
    """A .env link to a file that does not exist is refused; neither file nor folder is made."""
    link = tmp_path / ".env"
    link.symlink_to(tmp_path / target)

    with pytest.raises(UsageError, match=r"symbolic link to .*real\.env, which does not exist"):
        set_key(link, "KEY", "v")

    assert not (tmp_path / "gone").exists()
    assert not (tmp_path / "real.env").exists()
    assert link.is_symlink()


def test_a_missing_folder_is_not_created(tmp_path: Path) -> None:
    """The folder above a new .env must exist: set_key creates the file, never folders."""
    env = tmp_path / "absent" / ".env"

    with pytest.raises(UsageError, match=r"folder .*absent.* does not exist"):
        set_key(env, "KEY", "v")

    assert not (tmp_path / "absent").exists()


def test_bytes_that_are_not_utf8_are_refused_and_the_file_kept(env: Path) -> None:
    """A .env that is not UTF-8 raises a usage error naming the file; nothing changes."""
    env.write_bytes(b"A=caf\xe9\n")

    with pytest.raises(UsageError, match=r"\.env is not UTF-8"):
        set_key(env, "KEY", "v")

    assert env.read_bytes() == b"A=caf\xe9\n"


def test_a_file_of_cr_lines_gets_cr_lines(env: Path) -> None:
    """Lines added to a file whose lines end in a bare CR end the same way."""
    env.write_bytes(b"A=1\rB=2\r")

    set_key(env, "NEW", "v")
    set_key(env, "OTHER", "w")

    assert env.read_bytes() == b"A=1\rB=2\rNEW='v'\rOTHER='w'\r"
    assert dotenv_values(env) == {"A": "1", "B": "2", "NEW": "v", "OTHER": "w"}
