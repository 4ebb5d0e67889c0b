"""Bounce events: bounces and complaints attributed to a subscriber (audit, soft-bounce count).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bounce_events"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_bounce_events_subscriber_id_subscribers"),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"], ondelete="SET NULL",
                                name="fk_bounce_events_delivery_id_deliveries"),
        sa.UniqueConstraint("event_key", name="uq_bounce_events_event_key"),
        sa.CheckConstraint("kind IN ('hard', 'soft', 'complaint')",
                           name="ck_bounce_events_kind"),
    )
    op.create_index("ix_bounce_events_subscriber_id_kind_created_at", "bounce_events",
                    ["subscriber_id", "kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_bounce_events_subscriber_id_kind_created_at", table_name="bounce_events")
    op.drop_table("bounce_events")
