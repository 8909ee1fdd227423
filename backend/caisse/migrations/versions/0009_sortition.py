"""Sortition of new members: draws, quotas per stratum, volunteers (caisse.sortition).

Revision ID: 0009
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sortition_draw",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seed_phrase", sa.String(length=500), nullable=True),
        sa.Column("seed_hex", sa.String(length=64), nullable=True),
        sa.Column("seed_published_by", sa.String(length=100), nullable=True),
        sa.Column("seed_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drawn_by", sa.String(length=100), nullable=True),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sortition_quota",
        sa.Column("draw_id", sa.Integer(), nullable=False),
        sa.Column("income_quartile", sa.SmallInteger(), nullable=False),
        sa.Column("age_band", sa.SmallInteger(), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.CheckConstraint("income_quartile BETWEEN 1 AND 4", name="ck_sortition_quota_quartile"),
        sa.CheckConstraint("age_band BETWEEN 1 AND 3", name="ck_sortition_quota_age_band"),
        sa.CheckConstraint("seats >= 0", name="ck_sortition_quota_seats"),
        sa.ForeignKeyConstraint(["draw_id"], ["sortition_draw.id"]),
        sa.PrimaryKeyConstraint("draw_id", "income_quartile", "age_band"),
    )
    op.create_table(
        "sortition_volunteer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draw_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("income_quartile", sa.SmallInteger(), nullable=False),
        sa.Column("age_band", sa.SmallInteger(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("selected", sa.Boolean(), nullable=True),
        sa.CheckConstraint("income_quartile BETWEEN 1 AND 4", name="ck_sortition_volunteer_quartile"),
        sa.CheckConstraint("age_band BETWEEN 1 AND 3", name="ck_sortition_volunteer_age_band"),
        sa.ForeignKeyConstraint(["draw_id"], ["sortition_draw.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("draw_id", "number", name="uq_sortition_volunteer_draw_number"),
    )


def downgrade() -> None:
    op.drop_table("sortition_volunteer")
    op.drop_table("sortition_quota")
    op.drop_table("sortition_draw")
