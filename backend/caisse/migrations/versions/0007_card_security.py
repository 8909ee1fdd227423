"""Card security and lifecycle (docs/cards.md): card type, block reason and flag, the
version that carried a block to terminals, SUN counters used once, the cards version each
terminal proved it held, member codes and the wrong tries terminals report.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_type", sa.String(length=8), nullable=False, server_default="basic"))
        batch_op.add_column(sa.Column("block_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("flag_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("blocked_version", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_salt", sa.LargeBinary(length=8), nullable=True))
        batch_op.add_column(sa.Column("code_verifier", sa.LargeBinary(length=8), nullable=True))
    op.create_table(
        "card_counter",
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["card.id"]),
        sa.PrimaryKeyConstraint("card_id", "counter"),
    )
    op.create_table(
        "terminal_sync",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("cards_version", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["terminal_id"], ["terminal.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_terminal_sync_terminal_version", "terminal_sync", ["terminal_id", "cards_version"])
    op.create_table(
        "code_failure",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["card.id"]),
        sa.ForeignKeyConstraint(["terminal_id"], ["terminal.id"]),
        sa.PrimaryKeyConstraint("terminal_id", "card_id"),
    )


def downgrade() -> None:
    op.drop_table("code_failure")
    op.drop_index("ix_terminal_sync_terminal_version", table_name="terminal_sync")
    op.drop_table("terminal_sync")
    op.drop_table("card_counter")
    with op.batch_alter_table("household", schema=None) as batch_op:
        batch_op.drop_column("code_verifier")
        batch_op.drop_column("code_salt")
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_column("blocked_version")
        batch_op.drop_column("flag_reason")
        batch_op.drop_column("block_reason")
        batch_op.drop_column("card_type")
