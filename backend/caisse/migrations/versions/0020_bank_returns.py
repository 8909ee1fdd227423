"""Bank answers imported: files seen, transfers returned, transfers debited.

Revision ID: 0020
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("settlement_line", sa.Column("debited_on", sa.Date(), nullable=True))
    op.create_table(
        "bank_file",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=35), nullable=False),
        sa.Column("imported_by", sa.String(length=254), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "bank_return",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=35), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("reason_code", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("needs_new_iban", sa.Boolean(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repaid_run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["settlement_run.id"]),
        sa.ForeignKeyConstraint(["repaid_run_id"], ["settlement_run.id"]),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendor.id"]),
        sa.ForeignKeyConstraint(["file_sha256"], ["bank_file.sha256"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id"),
    )
    op.create_index("ix_bank_return_vendor_id", "bank_return", ["vendor_id"])


def downgrade() -> None:
    op.drop_index("ix_bank_return_vendor_id", table_name="bank_return")
    op.drop_table("bank_return")
    op.drop_table("bank_file")
    op.drop_column("settlement_line", "debited_on")
