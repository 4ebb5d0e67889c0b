"""Claim index: due ledger rows in (next_attempt_at, id) order without a sort.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_edition_id_status_next_attempt_at_id", "deliveries",
                    ["edition_id", "status", "next_attempt_at", "id"])
    op.drop_index("ix_deliveries_edition_id_status_next_attempt_at", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_edition_id_status_next_attempt_at", "deliveries",
                    ["edition_id", "status", "next_attempt_at"])
    op.drop_index("ix_deliveries_edition_id_status_next_attempt_at_id", table_name="deliveries")
