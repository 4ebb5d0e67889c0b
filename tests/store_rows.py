"""Every row of a store, to show that something wrote nothing at all."""

from __future__ import annotations

import sqlalchemy as sa

from digest.store import Store
from digest.store.schema import metadata

__all__ = ["all_rows"]


def all_rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table (and Alembic's version), in primary-key order: compare two
    of these taken before and after."""
    with store.engine.connect() as conn:
        dump = {t.name: [tuple(r) for r in conn.execute(
            sa.select(t).order_by(*t.primary_key.columns))] for t in metadata.sorted_tables}
        dump["alembic_version"] = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT version_num FROM alembic_version")]
    return dump
