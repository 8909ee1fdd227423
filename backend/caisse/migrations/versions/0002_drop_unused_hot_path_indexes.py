"""Drop indexes no query uses, which every ingested record paid for on insert.

transaction_record.card_uid and ledger_transfer.{debit,credit}_account_id: balances live on the
accounts and nothing reads records by card yet. Add an index back with the query that needs it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transaction_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transaction_record_card_uid"))
    with op.batch_alter_table("ledger_transfer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_transfer_debit_account_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_transfer_credit_account_id"))


def downgrade() -> None:
    with op.batch_alter_table("ledger_transfer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_transfer_credit_account_id"), ["credit_account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_transfer_debit_account_id"), ["debit_account_id"], unique=False)
    with op.batch_alter_table("transaction_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transaction_record_card_uid"), ["card_uid"], unique=False)
