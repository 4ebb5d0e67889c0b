"""Delivery that always finishes: fenced claims, capped ambiguous retries, late replies.

- ``deliveries.claim_token``: the fencing token, a claim counter every claim increments;
  every mark is conditional on ``claimed_by`` and it.
- ``deliveries.ambiguous``: how many ambiguous outcomes (disconnect or timeout after the
  final dot) a row has had; at ``[delivery] max_ambiguous`` it ends ``sent_unconfirmed``.
- the ``sent_unconfirmed`` status (terminal, counted as delivered).
- ``delivery_events``: replies that came back after their claim was lost (a late 250 for a
  row someone else now owns), kept as evidence, never as a second outcome.

Revision ID: 0007_delivery
Revises: 0006_consentfix
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_delivery"
down_revision = "0006_consentfix"
branch_labels = None
depends_on = None

_OLD = "status IN ('queued', 'sending', 'sent', 'failed', 'expired', 'skipped')"
_NEW = ("status IN ('queued', 'sending', 'sent', 'sent_unconfirmed', 'failed', 'expired', "
        "'skipped')")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claim_token", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("ambiguous", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint("ck_deliveries_status", _NEW)
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("claim_token", sa.Integer, nullable=False),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="CASCADE",
                                name="fk_delivery_events_delivery_id_deliveries"),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_events"),
    )
    op.create_index("ix_delivery_events_delivery_id", "delivery_events", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_events_delivery_id", table_name="delivery_events")
    op.drop_table("delivery_events")
    op.execute("UPDATE deliveries SET status = 'sent' WHERE status = 'sent_unconfirmed'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_status", type_="check")
        batch.create_check_constraint("ck_deliveries_status", _OLD)
        batch.drop_column("ambiguous")
        batch.drop_column("claim_token")
