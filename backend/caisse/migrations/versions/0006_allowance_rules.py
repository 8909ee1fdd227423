"""Allowance rules in a table: the committee's rule, in force from a month (docs/settlement.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "allowance_rule",
        sa.Column("effective_month", sa.String(length=7), nullable=False),
        sa.Column("rule", sa.String(length=24), nullable=False),
        sa.Column("flat_cents", sa.BigInteger(), nullable=False),
        sa.Column("base_cents", sa.BigInteger(), nullable=False),
        sa.Column("per_extra_member_cents", sa.BigInteger(), nullable=False),
        sa.Column("pro_rata", sa.Boolean(), nullable=False),
        sa.Column("unspent", sa.String(length=16), nullable=False),
        sa.Column("carry_over_cap_cents", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rule IN ('flat', 'per_member', 'average_contribution')", name="ck_allowance_rule_rule"),
        sa.CheckConstraint("unspent IN ('carry_over', 'expire')", name="ck_allowance_rule_unspent"),
        sa.CheckConstraint("flat_cents >= 0 AND base_cents >= 0 AND per_extra_member_cents >= 0"
                           " AND carry_over_cap_cents >= 0", name="ck_allowance_rule_amounts"),
        sa.PrimaryKeyConstraint("effective_month"),
    )


def downgrade() -> None:
    op.drop_table("allowance_rule")
