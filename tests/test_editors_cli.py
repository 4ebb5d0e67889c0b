"""``editors add | passwd | remove | list``: Argon2 hashes in the store, passwords from the
environment or a prompt, one sentence for every mistake; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result

from digest.cli import main
from digest.passwords import verify_password
from digest.store import open_store

pytest_plugins = ["store_backends"]

CONFIG = """
[digest]
work_dir = "var"

[site]
name = "Gazette"
url = "https://gazette.example"
postal_address = "1 Main St"

[web]
base_url = "https://news.example.org/digest"

[lists.daily]
sources = ["front.txt"]
from = "Gazette <am@gazette.example>"
"""
GOOD = "a long and quiet passphrase"


@pytest.fixture
def cli(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "templates").mkdir()
    config = tmp_path / "digest.toml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("DIGEST_DATABASE_URL", store_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "editors-test-key-000000")
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None, password: str | None = None) -> Result:
        env = {"DIGEST_EDITOR_PASSWORD": password} if password is not None else {}
        return runner.invoke(main, ["editors", *args, "--config", str(config)], input=stdin,
                             env=env, catch_exceptions=False)

    run.url = store_url  # type: ignore[attr-defined]
    return run


def test_add_from_the_environment_stores_an_argon2id_hash(cli) -> None:
    result = cli("add", "ana", password=GOOD)
    assert result.exit_code == 0, result.output
    assert "Editor ana added; they sign in at https://news.example.org/digest/desk/login." \
        in result.output
    with open_store(cli.url) as store:
        editor = store.get_editor("ana")
    assert editor.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD not in editor.password_hash
    assert verify_password(editor.password_hash, GOOD, PasswordHasher())
    assert not verify_password(editor.password_hash, GOOD + "x")


def test_add_asks_twice_on_the_terminal(cli) -> None:
    result = cli("add", "ben", stdin=f"{GOOD}\n{GOOD}\n")
    assert result.exit_code == 0, result.output
    assert "Password for ben" in result.output and "Type it again" in result.output
    assert GOOD not in result.output
    mismatch = cli("add", "cat", stdin=f"{GOOD}\nsomething else entirely\n")
    assert mismatch.exit_code == 2
    assert "No password was typed for cat" in mismatch.output


@pytest.mark.parametrize("name,password,sentence", [
    ("ana", "short", "use at least 15"),
    ("ana", "x" * 1025, "longer than 1024"),
    ("long-enough-name", "Long-Enough-Name", "is the editor's name"),
    ("bad name", GOOD, "is not usable"),
    ("ana/x", GOOD, "is not usable"),
])
def test_a_bad_name_or_password_is_one_sentence(cli, name, password, sentence) -> None:
    result = cli("add", name, password=password)
    assert result.exit_code == 1
    assert sentence in result.output
    assert "Traceback" not in result.output
    with open_store(cli.url) as store:
        assert store.list_editors() == []


def test_list_passwd_and_remove(cli) -> None:
    assert cli("list").output.strip() == "No editors yet; `editors add NAME` adds one."
    cli("add", "ana", password=GOOD)
    cli("add", "Ben", password=GOOD)
    duplicate = cli("add", "BEN", password=GOOD)
    assert duplicate.exit_code == 1 and "An editor named 'Ben' exists already" in \
        duplicate.output
    lines = cli("list").output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["ana", "Ben"]
    assert "last sign-in never" in lines[0]
    with open_store(cli.url) as store:
        before = store.get_editor("ana")
    changed = cli("passwd", "ana", password="another fine passphrase")
    assert changed.exit_code == 0 and "their open sessions ended" in changed.output
    with open_store(cli.url) as store:
        after = store.get_editor("ana")
    assert after.session_key != before.session_key
    assert verify_password(after.password_hash, "another fine passphrase")
    assert cli("passwd", "nobody", password=GOOD).exit_code == 1
    assert cli("remove", "ANA").output.strip() == "Editor ANA removed."
    missing = cli("remove", "ana")
    assert missing.exit_code == 1 and "no editor named 'ana'" in missing.output
    assert [line.split("\t")[0] for line in cli("list").output.strip().splitlines()] == ["Ben"]
