"""Membership as the field report tells it: the volunteers' questionnaire, age-band schemes and
quotas from population shares, invitations, leaving and the erasure of personal data.

Revision ID: 0021
Revises: 0026
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_SCHEME = "2024-18-34-35-59-60"


def upgrade() -> None:
    with op.batch_alter_table("household") as table:
        table.add_column(sa.Column("left_on", sa.Date(), nullable=True))
        table.add_column(sa.Column("leaving_blocked_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("leaving_settled_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sortition_draw") as table:
        table.add_column(sa.Column("scheme", sa.String(length=32), nullable=False, server_default=_OLD_SCHEME))
        table.add_column(sa.Column("closing_date", sa.Date(), nullable=True))
    with op.batch_alter_table("sortition_quota") as table:
        table.add_column(sa.Column("population_share", sa.String(length=24), nullable=True))
    with op.batch_alter_table("sortition_volunteer") as table:
        table.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        table.add_column(sa.Column("household_size", sa.Integer(), nullable=True))
        table.add_column(sa.Column("shops", sa.String(length=500), nullable=True))
        table.add_column(sa.Column("invitation", sa.String(length=16), nullable=True))
        table.add_column(sa.Column("invitation_decided_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("household_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
        table.create_foreign_key("fk_sortition_volunteer_household", "household", ["household_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("sortition_volunteer") as table:
        table.drop_constraint("fk_sortition_volunteer_household", type_="foreignkey")
        for name in ("erased_at", "household_id", "invitation_decided_at", "invitation", "shops", "household_size", "birth_date"):
            table.drop_column(name)
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch would copy and drop these tables,
    # which other tables' foreign keys refer to.
    op.drop_column("sortition_quota", "population_share")
    op.drop_column("sortition_draw", "closing_date")
    op.drop_column("sortition_draw", "scheme")
    for name in ("erased_at", "leaving_settled_at", "leaving_blocked_at", "left_on"):
        op.drop_column("household", name)
