"""Bounds on what hostile input can make the backend write (docs/security.md, "Attacks and their
bounds"):

- the rejection log keeps a summary of each rejected upload (SHA-256, size, reason) and the
  bytes only when the terminal's key signed them (at most 154); `rejection_budget` counts what
  each source logged this minute;
- manual credits are posted under `credit:{key}` (caisse.ledger.user_reference): earlier ones,
  posted under the caller's bare key, move there, which also frees any system reference a key
  had taken (a `record:{t}:{s}` key stopped that terminal's uploads).

Revision ID: 0014
Revises: 0018
Create Date: 2026-12-06
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reasons of bytes nobody proved the terminal signed: only their summary stays.
_UNSIGNED_REASONS = ("malformed", "wrong_terminal", "bad_signature")
_ROWS_PER_PASS = 1_000


def upgrade() -> None:
    op.create_table(
        "rejection_budget",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    with op.batch_alter_table("rejected_upload") as batch:
        batch.add_column(sa.Column("raw_sha256", sa.LargeBinary(length=32), nullable=True))
        batch.add_column(sa.Column("raw_size", sa.Integer(), nullable=True))
    _summarize_rejections()
    with op.batch_alter_table("rejected_upload") as batch:
        batch.alter_column("raw_sha256", existing_type=sa.LargeBinary(length=32), nullable=False)
        batch.alter_column("raw_size", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("raw", existing_type=sa.LargeBinary(), type_=sa.LargeBinary(length=154), nullable=True)
    unsigned = ", ".join(f"'{reason}'" for reason in _UNSIGNED_REASONS)
    op.execute(f"UPDATE rejected_upload SET raw = NULL WHERE reason IN ({unsigned}) OR length(raw) > 154")
    op.execute(
        "UPDATE ledger_transfer SET reference = 'credit:' || reference WHERE kind = 'allowance'"
        " AND substr(reference, 1, 10) <> 'allowance:' AND substr(reference, 1, 7) <> 'credit:'"
    )


def _summarize_rejections() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE rejected_upload SET raw_sha256 = sha256(raw), raw_size = length(raw)")
    else:  # SQLite has no SHA-256 in SQL: by passes of rows (a development database)
        while rows := bind.execute(sa.text("SELECT id, raw FROM rejected_upload WHERE raw_sha256 IS NULL LIMIT :n"),
                                   {"n": _ROWS_PER_PASS}).all():
            bind.execute(sa.text("UPDATE rejected_upload SET raw_sha256 = :digest, raw_size = :size WHERE id = :id"),
                         [{"id": i, "digest": hashlib.sha256(raw).digest(), "size": len(raw)} for i, raw in rows])


def downgrade() -> None:
    # Credits keep their `credit:` references: the earlier code reads any reference.
    op.execute("UPDATE rejected_upload SET raw = raw_sha256 WHERE raw IS NULL")  # the bytes are gone: the digest stands in
    with op.batch_alter_table("rejected_upload") as batch:
        batch.alter_column("raw", existing_type=sa.LargeBinary(length=154), type_=sa.LargeBinary(), nullable=False)
        batch.drop_column("raw_size")
        batch.drop_column("raw_sha256")
    op.drop_table("rejection_budget")
