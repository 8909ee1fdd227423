"""Payees frozen in the run, SEPA ids stored before the file is written, IBAN changes by two people.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("settlement_run", sa.Column("message_id", sa.String(length=35), nullable=True))
    op.add_column("settlement_run", sa.Column("payment_info_id", sa.String(length=35), nullable=True))
    op.add_column("settlement_run", sa.Column("execution_date", sa.Date(), nullable=True))
    op.add_column("settlement_line", sa.Column("payee_name", sa.String(length=200), nullable=True))
    op.add_column("settlement_line", sa.Column("payee_iban", sa.String(length=34), nullable=True))
    op.add_column("settlement_line", sa.Column("payee_bic", sa.String(length=11), nullable=True))
    op.add_column("settlement_line", sa.Column("payment_id", sa.String(length=35), nullable=True))
    op.create_table(
        "vendor_iban_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=254), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_vendor_iban_change_vendor_id", "vendor_iban_change", ["vendor_id"])
    # Runs prepared before this revision and not exported yet: their ids and payees are given now,
    # from the vendors as they stand (the BIC is left to the export, which reads it from the IBAN).
    op.execute("UPDATE settlement_run SET message_id = 'CAISSE-R' || CAST(id AS VARCHAR(20)),"
               " payment_info_id = 'CAISSE-R' || CAST(id AS VARCHAR(20)) || '-P' WHERE status <> 'exported'")
    op.execute("UPDATE settlement_line SET payment_id = 'CAISSE-' || CAST(run_id AS VARCHAR(20)) || '-'"
               " || CAST(vendor_id AS VARCHAR(20)) WHERE status = 'paid'")
    op.execute("UPDATE settlement_line SET payee_name = (SELECT v.name FROM vendor v WHERE v.id = settlement_line.vendor_id),"
               " payee_iban = (SELECT v.iban FROM vendor v WHERE v.id = settlement_line.vendor_id) WHERE status = 'paid'"
               " AND run_id IN (SELECT id FROM settlement_run WHERE status <> 'exported')")


def downgrade() -> None:
    op.drop_index("ix_vendor_iban_change_vendor_id", table_name="vendor_iban_change")
    op.drop_table("vendor_iban_change")
    for column in ("payment_id", "payee_bic", "payee_iban", "payee_name"):
        op.drop_column("settlement_line", column)
    for column in ("execution_date", "payment_info_id", "message_id"):
        op.drop_column("settlement_run", column)
