"""Consent record: membership_events, memberships.sections_chosen_at, signup_limits.

Every existing membership gets one "record-start" event holding its state when the record
began (time: the membership's last change), so `subscribers history` explains every reader.

Revision ID: 0005_consent
Revises: 0005_lifecycle
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_consent"
down_revision = "0005_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(sa.Column("sections_chosen_at", sa.DateTime, nullable=True))
    op.create_table(
        "membership_events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("list_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("old_sections", sa.JSON, nullable=True),
        sa.Column("new_sections", sa.JSON, nullable=True),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_membership_events"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE",
                                name="fk_membership_events_list_id_lists"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE",
                                name="fk_membership_events_subscriber_id_subscribers"),
        sa.CheckConstraint("actor IN ('reader', 'editor', 'system', 'import')",
                           name="ck_membership_events_actor"),
    )
    op.create_index("ix_membership_events_subscriber_id_list_id_id", "membership_events",
                    ["subscriber_id", "list_id", "id"])
    op.create_table(
        "signup_limits",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signup_limits"),
        sa.UniqueConstraint("key", name="uq_signup_limits_key"),
    )
    op.create_index("ix_signup_limits_updated_at", "signup_limits", ["updated_at"])
    detail = ("json_object('source', source)" if op.get_bind().dialect.name == "sqlite"
              else "json_build_object('source', source)")
    op.execute(
        "INSERT INTO membership_events (created_at, list_id, subscriber_id, old_status, "
        "new_status, old_sections, new_sections, actor, cause, detail) "
        f"SELECT changed_at, list_id, subscriber_id, NULL, status, NULL, sections, 'system', "
        f"'record-start', {detail} FROM memberships ORDER BY id")


def downgrade() -> None:
    op.drop_index("ix_signup_limits_updated_at", table_name="signup_limits")
    op.drop_table("signup_limits")
    op.drop_index("ix_membership_events_subscriber_id_list_id_id",
                  table_name="membership_events")
    op.drop_table("membership_events")
    with op.batch_alter_table("memberships") as batch:
        batch.drop_column("sections_chosen_at")
