"""Alembic environment: runs digest's migrations on the connection the store hands over."""

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
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two processes opening a fresh database at once: one migrates, the other waits
        # and then finds the schema at head.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7243511)")
    context.run_migrations()
