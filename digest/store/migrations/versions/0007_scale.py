"""subscriber_files: the subscribers files each list imported (SHA-256 of the bytes and of the
import's parameters, the rows it rejected or warned about), so ``send`` does not read an
unchanged file again (digest/store/filesync.py).

Revision ID: 0007_scale
Revises: 0007_delivery
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_scale"
down_revision = "0007_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_files",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("list_id", sa.Integer, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("params", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("imported_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE",
                                name="fk_subscriber_files_list_id_lists"),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber_files"),
        sa.UniqueConstraint("list_id", "path", name="uq_subscriber_files_list_id_path"),
    )


def downgrade() -> None:
    op.drop_table("subscriber_files")
