"""Merge the branches the console and the sortition grew in parallel off 0005 (0006b, 0007, 0008, 0009), so the
history is one line again and the next migration has a single parent. Changes nothing.

Revision ID: 0010
Revises: 0006b, 0007, 0008, 0009
Create Date: 2026-11-27
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | tuple[str, ...] | None = ("0006b", "0007", "0008", "0009")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
