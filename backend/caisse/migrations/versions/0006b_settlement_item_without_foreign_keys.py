"""settlement_item without foreign keys: checking them cost more than the rest of the insert.

On PostgreSQL the two foreign-key triggers took 17 of 29 s of the INSERT ... SELECT settling 1M
records (docs/performance.md, Settlement). They guarded nothing the code does not already ensure:
an item is inserted by `INSERT ... SELECT` from transaction_record (records are never deleted), in
the transaction that inserted its run (runs are never deleted either).

Revision ID: 0006b
Revises: 0006
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006b"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's foreign keys of 0003 have no name: batch mode names them by this convention to drop them.
_SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_KEYS = (("record_id", "transaction_record"), ("run_id", "settlement_run"))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("settlement_item", naming_convention=_SQLITE_NAMES) as batch_op:
            for column, table in _KEYS:
                batch_op.drop_constraint(f"fk_settlement_item_{column}_{table}", type_="foreignkey")
    else:
        for column, _ in _KEYS:
            op.drop_constraint(f"settlement_item_{column}_fkey", "settlement_item", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("settlement_item", schema=None) as batch_op:
        for column, table in _KEYS:
            batch_op.create_foreign_key(f"settlement_item_{column}_fkey", table, [column], ["id"])
