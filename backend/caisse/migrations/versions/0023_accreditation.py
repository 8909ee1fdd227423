"""Vendor accreditation: criteria, visit, training, and the history of its state.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vendor", sa.Column("visited_on", sa.Date(), nullable=True))
    op.add_column("vendor", sa.Column("visited_by", sa.String(length=200), nullable=True))
    op.add_column("vendor", sa.Column("trained_on", sa.Date(), nullable=True))
    op.create_table(
        "accreditation_criterion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("label"),
    )
    op.create_table(
        "vendor_criterion",
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("criterion_id", sa.Integer(), nullable=False),
        sa.Column("checked_by", sa.String(length=254), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendor.id"]),
        sa.ForeignKeyConstraint(["criterion_id"], ["accreditation_criterion.id"]),
        sa.PrimaryKeyConstraint("vendor_id", "criterion_id"),
    )
    op.create_table(
        "accreditation_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["vendor_id"], ["vendor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_accreditation_state_vendor_id", "accreditation_state", ["vendor_id"])
    # What each vendor has now is all that is known of its past: it applies from its creation on.
    op.execute("INSERT INTO accreditation_state (vendor_id, status, starts_on, ends_on, since)"
               " SELECT id, convention_status, convention_start, convention_end, created_at FROM vendor")


def downgrade() -> None:
    op.drop_index("ix_accreditation_state_vendor_id", table_name="accreditation_state")
    op.drop_table("accreditation_state")
    op.drop_table("vendor_criterion")
    op.drop_table("accreditation_criterion")
    # Not in batch mode: SQLite would copy the vendor table, which other tables' foreign keys
    # name; its own DROP COLUMN (3.35+) leaves them be.
    for column in ("trained_on", "visited_by", "visited_on"):
        op.execute(f"ALTER TABLE vendor DROP COLUMN {column}")
