"""Alembic environment: runs digest's migrations on the connection the store hands over.

``digest.store.migrate.upgrade`` passes a connection already inside its transaction (and
holding the migration lock), so Alembic neither begins nor commits: every revision of one
upgrade lands in that one transaction, or none does.
"""

from __future__ import annotations

from alembic import context

from digest.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("digest migrations run through digest.store.open_store, not the CLI.")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
