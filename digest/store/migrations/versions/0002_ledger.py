"""Editions, the stories they carried, and the delivery ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "editions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("list_id", sa.Integer, nullable=False),
        sa.Column("date", sa.Date, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=True),
        sa.Column("message_id_domain", sa.String(253), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_editions"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE",
                                name="fk_editions_list_id_lists"),
        sa.UniqueConstraint("list_id", "date", "seq", name="uq_editions_list_id_date_seq"),
    )
    op.create_table(
        "edition_stories",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("edition_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("story_id", sa.String(2000), nullable=False),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("headline_key", sa.String(1000), nullable=False),
        sa.Column("section", sa.String(200), nullable=False),
        sa.Column("headline", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_edition_stories"),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE",
                                name="fk_edition_stories_edition_id_editions"),
        sa.UniqueConstraint("edition_id", "position",
                            name="uq_edition_stories_edition_id_position"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("edition_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("message_id", sa.String(400), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("first_attempt_at", sa.DateTime, nullable=True),
        sa.Column("last_attempt_at", sa.DateTime, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("last_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("response", sa.String(1000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE",
                                name="fk_deliveries_edition_id_editions"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_deliveries_subscriber_id_subscribers"),
        sa.UniqueConstraint("edition_id", "subscriber_id",
                            name="uq_deliveries_edition_id_subscriber_id"),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'expired', 'skipped')",
            name="ck_deliveries_status"),
    )
    op.create_index("ix_deliveries_edition_id_status_next_attempt_at", "deliveries",
                    ["edition_id", "status", "next_attempt_at"])
    op.create_index("ix_deliveries_claimed_by", "deliveries", ["claimed_by"])
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("edition_stories")
    op.drop_table("editions")
