"""The editor's desk: editors (Argon2 password hashes and the key binding their sessions).

The desk's sign-in limits share the ``signup_limits`` buckets of 0005_consent.

Revision ID: 0005_desk
Revises: 0005_sched
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_desk"
down_revision = "0005_sched"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "editors",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("name_key", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("session_key", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("password_changed_at", sa.DateTime, nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_editors"),
        sa.UniqueConstraint("name_key", name="uq_editors_name_key"),
    )


def downgrade() -> None:
    op.drop_table("editors")
