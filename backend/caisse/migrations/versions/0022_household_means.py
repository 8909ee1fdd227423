"""Household means and size history (caisse.means); what each fee paid was for (caisse.costs).

Revision ID: 0022
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "household_means",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("effective_month", sa.String(length=7), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("income_quartile", sa.SmallInteger(), nullable=True),
        sa.Column("monthly_income_cents", sa.BigInteger(), nullable=True),
        sa.Column("chosen_contribution_cents", sa.BigInteger(), nullable=True),
        sa.Column("recorded_by", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size > 0", name="ck_household_means_size"),
        sa.CheckConstraint("income_quartile IS NULL OR income_quartile BETWEEN 1 AND 4", name="ck_household_means_quartile"),
        sa.CheckConstraint("monthly_income_cents IS NULL OR monthly_income_cents >= 0", name="ck_household_means_income"),
        sa.CheckConstraint("chosen_contribution_cents IS NULL OR chosen_contribution_cents >= 0",
                           name="ck_household_means_contribution"),
        sa.ForeignKeyConstraint(["household_id"], ["household.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("household_id", "effective_month", name="uq_household_means_month"),
    )
    op.create_index("ix_household_means_household_id", "household_means", ["household_id"])
    op.create_table(
        "fee_category",
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("category IN ('logiciel', 'banque', 'plateforme', 'personnel', 'autre')", name="ck_fee_category"),
        sa.PrimaryKeyConstraint("reference"),
    )


def downgrade() -> None:
    op.drop_table("fee_category")
    op.drop_index("ix_household_means_household_id", table_name="household_means")
    op.drop_table("household_means")
