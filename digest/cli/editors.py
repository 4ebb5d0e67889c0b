"""The ``editors`` commands: who may sign in to the editor's desk (``serve``, ``/desk/``).

Passwords come from ``DIGEST_EDITOR_PASSWORD`` or, on a terminal, a prompt (typed twice,
not echoed); never from an option, so they stay out of shell history and process lists.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click
from rich.markup import escape

from digest import pipeline
from digest.errors import ConfigError
from digest.passwords import check_new_password, hash_password
from digest.store.editors import InvalidEditorError, check_editor_name

from .support import config_option, console, handle_errors, open_settings

__all__ = ["PASSWORD_ENV", "editors"]

PASSWORD_ENV = "DIGEST_EDITOR_PASSWORD"


def _new_password(name: str) -> str:
    """The password from the environment, else asked for on the terminal."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        try:
            password = click.prompt(f"Password for {name}", hide_input=True,
                                    confirmation_prompt="Type it again", err=True)
        except click.Abort:
            raise ConfigError(f"No password was typed for {name}; type it when asked, or "
                              f"set {PASSWORD_ENV}.") from None
    check_new_password(password, name)
    return password


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@click.group()
def editors() -> None:
    """Add, remove and list the editors who may sign in to the desk (/desk/ of the web app).

    \b
    Example:
      python run_digest.py editors add ana
      DIGEST_EDITOR_PASSWORD=... python run_digest.py editors add ben
    """


@editors.command()
@click.argument("name")
@config_option
@handle_errors
def add(name: str, config_path: str | None) -> None:
    """Add editor NAME (password from DIGEST_EDITOR_PASSWORD or a prompt)."""
    settings = open_settings(config_path)
    name = check_editor_name(name)
    password = _new_password(name)
    with pipeline.open_store_for(settings) as store:
        editor = store.add_editor(name, hash_password(password))
    console.print(f"Editor {escape(editor.name)} added; they sign in at "
                  f"{escape(settings.web.base_url)}/desk/login.", highlight=False, soft_wrap=True)


@editors.command()
@click.argument("name")
@config_option
@handle_errors
def passwd(name: str, config_path: str | None) -> None:
    """Set a new password for editor NAME (ends every session they have open)."""
    settings = open_settings(config_path)
    name = check_editor_name(name)
    with pipeline.open_store_for(settings) as store:
        if store.get_editor(name) is None:
            raise InvalidEditorError(f"There is no editor named {name!r}; `editors list` "
                                     "shows them.")
        password = _new_password(name)
        editor = store.set_editor_password(name, hash_password(password))
    console.print(f"New password set for {escape(editor.name)}; their open sessions ended.",
                  highlight=False, soft_wrap=True)


@editors.command()
@click.argument("name")
@config_option
@handle_errors
def remove(name: str, config_path: str | None) -> None:
    """Remove editor NAME (their open sessions end at once; edition history keeps the name)."""
    settings = open_settings(config_path)
    with pipeline.open_store_for(settings) as store:
        removed = store.remove_editor(name)
    if not removed:
        raise InvalidEditorError(f"There is no editor named {name!r}; `editors list` shows "
                                 "them.")
    console.print(f"Editor {escape(name.strip())} removed.", highlight=False, soft_wrap=True)


@editors.command("list")
@config_option
@handle_errors
def list_(config_path: str | None) -> None:
    """Every editor: name, when added, password last set, last sign-in."""
    settings = open_settings(config_path)
    with pipeline.open_store_for(settings) as store:
        found = store.list_editors()
    if not found:
        console.print("No editors yet; `editors add NAME` adds one.", highlight=False)
        return
    for e in found:
        click.echo(f"{e.name}\tadded {_when(e.created_at)}\tpassword set "
                   f"{_when(e.password_changed_at)}\tlast sign-in {_when(e.last_sign_in_at)}")
