"""The firmware version a terminal reports on sync (X-Caisse-Firmware), shown in the console.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("terminal", sa.Column("firmware_version", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("terminal", "firmware_version")
