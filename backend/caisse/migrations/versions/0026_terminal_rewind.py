"""What a terminal's health report says of its acknowledged records after a restore from a backup:
its own acked_seq, the records it no longer holds, and when the backend was found behind it.

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("terminal_acked_seq", "lost_first_seq", "lost_last_seq", "rewound_from_seq", "rewound_to_seq")


def upgrade() -> None:
    with op.batch_alter_table("terminal_health") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("terminal_health") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
