"""Offline limits (sync v2): the limits and cards version each terminal was last sent, the log of
limits sent, the balance each v2 sync sent per household and cards version, and when a household
went below zero.

Revision ID: 0013
Revises: 0017
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("limits_version", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cards_version_sent", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overdrawn_since", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "terminal_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("limits_version", sa.BigInteger(), nullable=False),
        sa.Column("offline_share_bp", sa.Integer(), nullable=False),
        sa.Column("offline_daily_cap_cents", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["terminal_id"], ["terminal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_terminal_limits_terminal_id", "terminal_limits", ["terminal_id", "id"])
    op.create_table(
        "feed_balance",
        sa.Column("household_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cards_version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("balance_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("household_id", "cards_version"),
    )


def downgrade() -> None:
    op.drop_table("feed_balance")
    op.drop_index("ix_terminal_limits_terminal_id", table_name="terminal_limits")
    op.drop_table("terminal_limits")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_column("overdrawn_since")
    with op.batch_alter_table("terminal", schema=None) as batch_op:
        batch_op.drop_column("cards_version_sent")
        batch_op.drop_column("limits_version")
