"""Records held for review: a payment can be held (a card flagged as cloned, say) until a person
releases it (the vendor is paid) or rejects it (the member is refunded). docs/ledger.md, Holds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transaction_record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transaction_record", schema=None) as batch_op:
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("reviewed_by")
        batch_op.drop_column("hold_reason")
        batch_op.drop_column("review")
