"""settlement_item indexed by run alone, not (run, vendor).

Run ids only grow, so an index on run_id is appended to; (run_id, vendor_id) took each insert
to one of a thousand places in the tree and made settling a 1M-record day 3x slower. Statements
read a run's items in one pass ordered by vendor instead (docs/performance.md, Settlement).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_item", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_item_run_vendor")
        batch_op.create_index("ix_settlement_item_run_id", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlement_item", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_item_run_id")
        batch_op.create_index("ix_settlement_item_run_vendor", ["run_id", "vendor_id"], unique=False)
