"""The last health report of each terminal (protocol v2, "Health report"), shown in the console.

Revision ID: 0017
Revises: 0020
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terminal_health",
        sa.Column("terminal_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("terminal_time", sa.BigInteger(), nullable=False),
        sa.Column("firmware_version", sa.String(length=32), nullable=False),
        sa.Column("uptime_s", sa.BigInteger(), nullable=False),
        sa.Column("boots", sa.BigInteger(), nullable=False),
        sa.Column("watchdog_resets", sa.BigInteger(), nullable=False),
        sa.Column("crash_resets", sa.BigInteger(), nullable=False),
        sa.Column("task_restarts", sa.BigInteger(), nullable=False),
        sa.Column("safe_mode_boots", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.String(length=80), nullable=False),
        sa.Column("battery_mv", sa.Integer(), nullable=True),
        sa.Column("battery_low", sa.Boolean(), nullable=False),
        sa.Column("unsent_records", sa.BigInteger(), nullable=False),
        sa.Column("unsigned_records", sa.BigInteger(), nullable=False),
        sa.Column("log_free_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["terminal_id"], ["terminal.id"]),
        sa.PrimaryKeyConstraint("terminal_id"),
    )


def downgrade() -> None:
    op.drop_table("terminal_health")
