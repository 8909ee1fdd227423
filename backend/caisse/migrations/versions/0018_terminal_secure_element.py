"""Whether a terminal was registered with a secure element holding its member-code key
(docs/protocol.md, "Member-code verifiers"); NULL for terminals registered before.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("terminal", sa.Column("secure_element", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("terminal", "secure_element")
