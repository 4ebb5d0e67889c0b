"""Core tables: lists, subscribers, memberships, suppressions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lists"),
        sa.UniqueConstraint("name", name="uq_lists_name"),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscribers"),
        sa.UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("list_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sections", sa.JSON, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
        sa.Column("changed_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE",
                                name="fk_memberships_list_id_lists"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_memberships_subscriber_id_subscribers"),
        sa.UniqueConstraint("list_id", "subscriber_id",
                            name="uq_memberships_list_id_subscriber_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')",
            name="ck_memberships_status"),
    )
    op.create_index("ix_memberships_list_id_status_subscriber_id", "memberships",
                    ["list_id", "status", "subscriber_id"])
    op.create_index("ix_memberships_subscriber_id", "memberships", ["subscriber_id"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("email_key", name="uq_suppressions_email_key"),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("memberships")
    op.drop_table("subscribers")
    op.drop_table("lists")
