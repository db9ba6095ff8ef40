"""`opsctl init`: the files a new project starts from, written once and never overwritten."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

from tests.support import CliResult, run_cli, write_project

ROO_FILES = {
    "productContext.md",
    "activeContext.md",
    "systemPatterns.md",
    "decisionLog.md",
    "progress.md",
}
KEYS_TOML = """
    [project]
    name = "withkeys"

    [keys.OPENAI_API_KEY]
    provider = "openai"
    description = "Embeddings for the search worker"

    [keys.HF]
    provider = "huggingface"
    env = "HF_TOKEN"
    required = false

    [keys.BROKER]
    provider = "alpaca"
    env = "BROKER_KEY_ID"
    secret_env = "BROKER_SECRET"
"""
DOTENV = """
    OPENAI_API_KEY=sk-dotenv-value-0123456789abcdef
    HF_TOKEN=hf_dotenvvalue0123456789
    BROKER_KEY_ID=PKDOTENVVALUE0123
    BROKER_SECRET=dotenv-broker-secret-value
"""


def init(folder: Path, *args: str) -> CliResult:
    return run_cli("init", str(folder), *args)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``folder``: its bytes, mtime and mode, by relative path."""
    return {
        str(path.relative_to(folder)): (
            path.read_bytes(),
            path.stat().st_mtime_ns,
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def variable_lines(text: str) -> list[str]:
    """The non-comment, non-blank lines of an env file."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_init_in_an_empty_folder_creates_every_file(tmp_path: Path) -> None:
    """A commented opsctl.toml named after the folder, .env.example, the bank's files and a
    .gitignore with .env and .opsctl/ are created, and each is reported as created.
    """
    folder = tmp_path / "my-stack"
    result = init(folder)
    assert result.exit_code == 0, result.output

    config = folder / "opsctl.toml"
    text = config.read_text()
    assert tomllib.loads(text)["project"]["name"] == "my-stack"
    assert sum(line.lstrip().startswith("#") for line in text.splitlines()) >= 10
    assert (folder / ".env.example").is_file()
    assert {path.name for path in (folder / "memory-bank").iterdir()} == ROO_FILES
    assert (folder / ".gitignore").read_text().splitlines() == [".env", ".opsctl/"]
    assert not (folder / ".env").exists()
    assert result.stdout.count("created") == 2 + len(ROO_FILES)
    assert "added .env, .opsctl/" in result.stdout


def test_created_config_validates(tmp_path: Path) -> None:
    """The scaffolded opsctl.toml passes `config validate`."""
    assert init(tmp_path).exit_code == 0
    result = run_cli("-c", str(tmp_path / "opsctl.toml"), "config", "validate")
    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout


def test_name_option_names_the_project(tmp_path: Path) -> None:
    """--name sets project.name instead of the folder's name."""
    assert init(tmp_path, "--name", "renamed").exit_code == 0
    config = tomllib.loads((tmp_path / "opsctl.toml").read_text())
    assert config["project"]["name"] == "renamed"


def test_second_init_changes_no_byte_and_no_mtime(tmp_path: Path) -> None:
    """Run again, init keeps every file: same set of files, same bytes, mtimes and modes."""
    assert init(tmp_path).exit_code == 0
    before = snapshot(tmp_path)

    again = init(tmp_path)
    assert again.exit_code == 0, again.output
    assert snapshot(tmp_path) == before
    assert "created" not in again.stdout
    assert "added" not in again.stdout
    assert again.stdout.count("kept") == len(before)


def test_init_never_overwrites_existing_files(tmp_path: Path) -> None:
    """An existing opsctl.toml, .env.example and bank file keep their content; the missing
    bank files are still created.
    """
    config = write_project(tmp_path, '[project]\nname = "mine"\n')
    (tmp_path / ".env.example").write_text("MINE=\n")
    (tmp_path / "memory-bank").mkdir()
    (tmp_path / "memory-bank" / "progress.md").write_text("# My progress\n")
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}

    result = init(tmp_path)
    assert result.exit_code == 0, result.output
    for path, data in before.items():
        assert path.read_bytes() == data, path
    assert {path.name for path in (tmp_path / "memory-bank").iterdir()} == ROO_FILES
    assert tomllib.loads(config.read_text())["project"]["name"] == "mine"


def test_env_example_lists_declared_keys_without_values(tmp_path: Path) -> None:
    """With keys declared in an existing opsctl.toml and values in .env, .env.example names
    every key variable (the pair's secret too) exactly once, each with an empty value.
    """
    write_project(tmp_path, KEYS_TOML, env=DOTENV)
    dotenv = (tmp_path / ".env").read_bytes()

    assert init(tmp_path).exit_code == 0
    example = (tmp_path / ".env.example").read_text()
    assert variable_lines(example) == [
        "OPENAI_API_KEY=",
        "HF_TOKEN=",
        "BROKER_KEY_ID=",
        "BROKER_SECRET=",
    ]
    for line in variable_lines(DOTENV):
        assert line.strip().partition("=")[2] not in example
    assert "Embeddings for the search worker" in example
    assert "(optional)" in example
    assert (tmp_path / ".env").read_bytes() == dotenv


def test_env_example_lists_the_providers_default_secret_variable(tmp_path: Path) -> None:
    """An alpaca key without secret_env still needs APCA_API_SECRET_KEY, its provider's
    default; .env.example lists it next to the key id.
    """
    write_project(
        tmp_path,
        """
        [keys.APCA_API_KEY_ID]
        provider = "alpaca"
        """,
    )
    assert init(tmp_path).exit_code == 0
    example = (tmp_path / ".env.example").read_text()
    assert variable_lines(example) == ["APCA_API_KEY_ID=", "APCA_API_SECRET_KEY="]


def test_gitignore_lines_are_appended_once_keeping_existing_lines(tmp_path: Path) -> None:
    """An existing .gitignore without a final newline keeps its lines; .env and .opsctl/ are
    appended on lines of their own, and a second init adds nothing more.
    """
    (tmp_path / ".gitignore").write_text("node_modules/\n*.pyc")

    assert init(tmp_path).exit_code == 0
    expected = "node_modules/\n*.pyc\n.env\n.opsctl/\n"
    assert (tmp_path / ".gitignore").read_text() == expected
    assert init(tmp_path).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == expected


def test_gitignore_adds_only_the_missing_line(tmp_path: Path) -> None:
    """A .gitignore that already ignores .env gets only .opsctl/ appended."""
    (tmp_path / ".gitignore").write_text("# local\n.env\n")
    result = init(tmp_path)
    assert result.exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == "# local\n.env\n.opsctl/\n"
    assert "added .opsctl/" in result.stdout


def test_gitignore_listing_the_state_folder_without_slash_is_kept(tmp_path: Path) -> None:
    """'.opsctl' without the trailing slash already ignores the state folder: nothing is added."""
    (tmp_path / ".gitignore").write_text(".opsctl\n.env\n")
    before = (tmp_path / ".gitignore").stat().st_mtime_ns
    assert init(tmp_path).exit_code == 0
    assert (tmp_path / ".gitignore").read_text() == ".opsctl\n.env\n"
    assert (tmp_path / ".gitignore").stat().st_mtime_ns == before


def test_gitignore_that_is_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    """A .gitignore that is not a file is reported as such (exit 2), not as an internal error."""
    (tmp_path / ".gitignore").mkdir()
    result = init(tmp_path)
    assert result.exit_code == 2, result.output
    assert "is not a file" in result.output
