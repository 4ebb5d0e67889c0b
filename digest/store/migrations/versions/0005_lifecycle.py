"""Edition lifecycle: a status per edition and the append-only edition_events record.

Existing editions are mapped from what the ledger says: never published -> draft; published
with ledger rows still queued or sending -> sending; published with every row terminal ->
sent; "published" with no ledger row at all (no recipients were found) -> draft again, with
``published_at`` cleared, since nothing went out. Each edition gets one event saying so.

Revision ID: 0005_lifecycle
Revises: 0005_carried
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_lifecycle"
down_revision = "0005_carried"
branch_labels = None
depends_on = None

_STATUSES = "'draft', 'approved', 'sending', 'sent', 'held', 'cancelled', 'missed'"


def upgrade() -> None:
    # One ALTER on both backends: on SQLite a batch rebuild of editions would drop the table,
    # and with foreign keys on, that cascades to its ledger rows.
    op.execute("ALTER TABLE editions ADD COLUMN status VARCHAR(16) DEFAULT 'draft' NOT NULL "
               f"CONSTRAINT ck_editions_status CHECK (status IN ({_STATUSES}))")
    op.execute(
        "UPDATE editions SET status = CASE "
        "WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = editions.id "
        "AND d.status IN ('queued', 'sending')) THEN 'sending' "
        "ELSE 'sent' END "
        "WHERE published_at IS NOT NULL AND EXISTS "
        "(SELECT 1 FROM deliveries d WHERE d.edition_id = editions.id)")
    # Their stories were marked carried by 0005_carried (it went by published_at): undo that.
    op.execute(
        "UPDATE edition_stories SET carried = NULL, shown_in = NULL, dropped_from = NULL "
        "WHERE edition_id IN (SELECT e.id FROM editions e WHERE e.published_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = e.id))")
    op.execute(
        "UPDATE editions SET published_at = NULL, status = 'draft' "
        "WHERE published_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM deliveries d WHERE d.edition_id = editions.id)")
    op.create_table(
        "edition_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("edition_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("cause", sa.String(1000), nullable=True),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_edition_events"),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE",
                                name="fk_edition_events_edition_id_editions"),
    )
    op.create_index("ix_edition_events_edition_id_id", "edition_events", ["edition_id", "id"])
    op.execute(
        "INSERT INTO edition_events (edition_id, created_at, old_status, new_status, actor, "
        "cause) SELECT id, COALESCE(published_at, created_at), NULL, status, 'migration', "
        "'status derived from the delivery ledger when the lifecycle was introduced' "
        "FROM editions ORDER BY id")


def downgrade() -> None:
    op.drop_index("ix_edition_events_edition_id_id", table_name="edition_events")
    op.drop_table("edition_events")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_column("editions", "status")
    # On SQLite the column stays (its default keeps older code working): dropping a column
    # with a CHECK means rebuilding editions, which would cascade-delete its ledger rows.
