"""Editors of the desk: names, Argon2 password hashes and the key that binds their sessions.

The store keeps hashes only (``digest.passwords`` makes and checks them). A name is 1-64
characters (letters, digits, ``. _ @ -``, starting with a letter or digit) and two names that
differ only in case are the same editor. ``session_key`` is a random value written into
every session cookie; it changes with the password, so a new password (and removing the
editor) ends every session signed in before.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from digest.errors import StoreError

from .engine import Database, guarded
from .schema import editors

__all__ = ["Editor", "EditorsMixin", "InvalidEditorError", "check_editor_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class InvalidEditorError(StoreError, ValueError):
    """Raised when an editor's name is not acceptable, or is taken, or names nobody."""


@dataclass(frozen=True, slots=True)
class Editor:
    """One editor; ``password_hash`` is a PHC string (``$argon2id$...``)."""

    name: str
    password_hash: str
    session_key: str
    created_at: datetime
    password_changed_at: datetime
    last_sign_in_at: datetime | None


def check_editor_name(name: str) -> str:
    """``name`` stripped, or :class:`InvalidEditorError` saying what a name may hold."""
    cleaned = name.strip()
    if not _NAME.fullmatch(cleaned):
        raise InvalidEditorError(
            f"The editor name {name!r} is not usable; use 1-64 letters, digits, dots, "
            "underscores, @ or hyphens, starting with a letter or digit (e.g. ana.lopez).")
    return cleaned


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _editor(row: sa.Row[tuple[object, ...]]) -> Editor:
    m = row._mapping
    return Editor(name=m["name"], password_hash=m["password_hash"], session_key=m["session_key"],
                  created_at=m["created_at"], password_changed_at=m["password_changed_at"],
                  last_sign_in_at=m["last_sign_in_at"])


class EditorsMixin(Database):
    """Store methods for the desk's editors."""

    @guarded
    def add_editor(self, name: str, password_hash: str, *,
                   now: datetime | None = None) -> Editor:
        """Add editor ``name`` with ``password_hash``.

        :raises InvalidEditorError: the name is not usable or an editor has it already.
        """
        name = check_editor_name(name)
        now = _now(now)
        with self.write() as conn:
            taken = conn.execute(sa.select(editors.c.name)
                                 .where(editors.c.name_key == name.casefold())).scalar()
            if taken is not None:
                raise InvalidEditorError(
                    f"An editor named {taken!r} exists already; `editors passwd {taken}` "
                    "sets a new password, or pick another name.")
            conn.execute(editors.insert().values(
                name=name, name_key=name.casefold(), password_hash=password_hash,
                session_key=secrets.token_hex(16), created_at=now, password_changed_at=now))
        found = self.get_editor(name)
        assert found is not None
        return found

    @guarded
    def set_editor_password(self, name: str, password_hash: str, *,
                            now: datetime | None = None) -> Editor:
        """Replace the editor's password hash and end every session they had.

        :raises InvalidEditorError: there is no such editor.
        """
        key = check_editor_name(name).casefold()
        with self.write() as conn:
            changed = conn.execute(editors.update().where(editors.c.name_key == key).values(
                password_hash=password_hash, session_key=secrets.token_hex(16),
                password_changed_at=_now(now))).rowcount
        if not changed:
            raise InvalidEditorError(f"There is no editor named {name!r}; "
                                     "`editors list` shows them.")
        found = self.get_editor(name)
        assert found is not None
        return found

    @guarded
    def update_password_hash(self, name: str, old_hash: str, new_hash: str) -> None:
        """Store a stronger hash of the same password (after a sign-in found the stored one
        made with weaker parameters); sessions stay valid. Nothing happens when the hash
        changed meanwhile."""
        with self.write() as conn:
            conn.execute(editors.update().where(
                editors.c.name_key == name.casefold(), editors.c.password_hash == old_hash,
            ).values(password_hash=new_hash))

    @guarded
    def end_sessions(self, name: str) -> None:
        """End every session of the editor (signing out ends them on every device)."""
        with self.write() as conn:
            conn.execute(editors.update().where(editors.c.name_key == name.casefold())
                         .values(session_key=secrets.token_hex(16)))

    @guarded
    def remove_editor(self, name: str) -> bool:
        """Remove the editor (their sessions end at their next request); False when there
        was none by that name."""
        key = name.strip().casefold()
        with self.write() as conn:
            return bool(conn.execute(editors.delete().where(editors.c.name_key == key)).rowcount)

    @guarded
    def get_editor(self, name: str) -> Editor | None:
        """The editor named ``name`` (any case), or None."""
        with self.read() as conn:
            row = conn.execute(sa.select(editors)
                               .where(editors.c.name_key == name.strip().casefold())).first()
        return _editor(row) if row is not None else None

    @guarded
    def list_editors(self) -> list[Editor]:
        """Every editor, by name."""
        with self.read() as conn:
            return [_editor(r) for r in conn.execute(sa.select(editors)
                                                     .order_by(editors.c.name_key))]

    @guarded
    def record_sign_in(self, name: str, *, now: datetime | None = None) -> None:
        """Note when the editor last signed in (``editors list`` shows it)."""
        with self.write() as conn:
            conn.execute(editors.update().where(editors.c.name_key == name.casefold())
                         .values(last_sign_in_at=_now(now)))
