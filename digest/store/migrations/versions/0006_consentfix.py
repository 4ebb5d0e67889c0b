"""suppressions.mailbox: the mailbox each suppressed address delivers to (digest.mailboxes),
so a complaint refuses sign-ups of the mailbox's other spellings (``victim+x@``, Gmail's
dotted forms). Existing rows are filled in from their ``email_key``.

Revision ID: 0006_consentfix
Revises: 0005_desk
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from digest.mailboxes import mailbox

revision = "0006_consentfix"
down_revision = "0005_desk"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("mailbox", sa.String(320), nullable=True))
    conn = op.get_bind()
    table = sa.table("suppressions", sa.column("id", sa.Integer),
                     sa.column("email_key", sa.String), sa.column("mailbox", sa.String))
    after = 0
    while True:
        rows = conn.execute(sa.select(table.c.id, table.c.email_key)
                            .where(table.c.id > after).order_by(table.c.id)
                            .limit(_BATCH)).all()
        if not rows:
            break
        conn.execute(table.update().where(table.c.id == sa.bindparam("b_id"))
                     .values(mailbox=sa.bindparam("b_mailbox")),
                     [{"b_id": r.id, "b_mailbox": mailbox(r.email_key)} for r in rows])
        after = rows[-1].id
    op.create_index("ix_suppressions_mailbox", "suppressions", ["mailbox"])


def downgrade() -> None:
    op.drop_index("ix_suppressions_mailbox", table_name="suppressions")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("mailbox")
