"""Schema versions: bring a database to the newest revision with Alembic, configured in code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from digest.errors import StoreError

__all__ = ["MIGRATIONS", "current_revision", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest revision this version of digest knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: head), keeping every row.

    Returns at once when the database is already there.
    """
    target = head_revision() if revision == "head" else revision
    current = current_revision(engine)
    if current == target:
        return
    if current is not None and not _known(current):
        raise StoreError(f"The database is at schema revision {current!r}, which this "
                         "version of digest does not know (it was made by a newer one); "
                         "upgrade digest or point database.url at another database.")
    cfg = _config()
    with engine.connect() as conn:
        conn = conn.execution_options(immediate=True)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()
