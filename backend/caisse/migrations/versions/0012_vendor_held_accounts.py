"""Held money in its own account: `vendor_held:{vendor}` for every vendor, and the money of the
records held and undecided today moved there by transfers (docs/ledger.md, "Holds and review").

Before this revision a hold did not touch the ledger: a held payment's money sat in
vendor_payable, and a held void had already refunded the member. Now a held record's money waits
in vendor_held until a person decides, and settlement pays only from vendor_payable. So that an
upgraded database satisfies the new invariants, this revision posts, once per record (reference
`hold:{terminal}:{seq}`, kind `hold`; the ledger is never edited):

- a held payment not voided: vendor_payable -> vendor_held;
- a held void whose payment is not held (held on its own): member -> vendor_held, the refund the
  void gave before it was decided now waits for the decision like any held void's;
- a held payment voided by a void: nothing moves (the void gave the money back); the void is
  marked held too, so both carry the coming decision.

Downgrade leaves the accounts and transfers in place: the ledger is never edited.

Revision ID: 0012
Revises: 0013
Create Date: 2026-11-28
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_account = sa.table("ledger_account", sa.column("id", sa.Integer), sa.column("code", sa.String),
                    sa.column("kind", sa.String), sa.column("debits_posted_cents", sa.BigInteger),
                    sa.column("credits_posted_cents", sa.BigInteger), sa.column("created_at", sa.DateTime(timezone=True)))
_transfer = sa.table("ledger_transfer", sa.column("debit_account_id", sa.Integer), sa.column("credit_account_id", sa.Integer),
                     sa.column("amount_cents", sa.BigInteger), sa.column("kind", sa.String), sa.column("reference", sa.String),
                     sa.column("memo", sa.String), sa.column("created_at", sa.DateTime(timezone=True)))
_FOLLOWS_PAYMENT = "annulation d'un paiement retenu : suit la décision sur ce paiement"


def upgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    vendors = bind.execute(sa.text("SELECT id FROM vendor ORDER BY id")).scalars().all()
    existing = set(bind.execute(sa.text("SELECT code FROM ledger_account WHERE kind = 'vendor_held'")).scalars())
    missing = [f"vendor_held:{v}" for v in vendors if f"vendor_held:{v}" not in existing]
    if missing:
        op.bulk_insert(_account, [{"code": code, "kind": "vendor_held", "debits_posted_cents": 0, "credits_posted_cents": 0,
                                   "created_at": now} for code in missing])
    held = bind.execute(sa.text(
        "SELECT r.terminal_id, r.seq, r.kind, r.ref_seq, r.amount_cents, r.voided, r.hold_reason, t.vendor_id,"
        " p.review, p.household_id FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id"
        " LEFT JOIN transaction_record p ON r.kind = 2 AND p.terminal_id = r.terminal_id AND p.seq = r.ref_seq"
        " WHERE r.status = 'accepted' AND r.review = 'held' ORDER BY r.id")).all()
    moves = []  # (debit code, credit code, amount, reference)
    for terminal_id, seq, kind, _, amount, voided, reason, vendor_id, payment_review, payment_household in held:
        reference = f"hold:{terminal_id}:{seq}"
        if kind == 1 and not voided:
            moves.append((f"vendor_payable:{vendor_id}", f"vendor_held:{vendor_id}", amount, reference))
        elif kind == 1:
            bind.execute(sa.text(
                "UPDATE transaction_record SET review = 'held', hold_reason = :reason WHERE terminal_id = :t"
                " AND kind = 2 AND ref_seq = :s AND status = 'accepted' AND review IS NULL"),
                {"reason": (reason or _FOLLOWS_PAYMENT)[:200], "t": terminal_id, "s": seq})
        elif payment_review != "held":
            moves.append((f"member:{payment_household}", f"vendor_held:{vendor_id}", amount, reference))
    posted = set(bind.execute(sa.text("SELECT reference FROM ledger_transfer WHERE kind = 'hold'")).scalars())
    moves = [move for move in moves if move[3] not in posted]
    if not moves:
        return
    ids = dict(bind.execute(sa.text("SELECT code, id FROM ledger_account")).all())
    debits: dict[int, int] = defaultdict(int)
    credits: dict[int, int] = defaultdict(int)
    rows = []
    for debit, credit, amount, reference in moves:
        rows.append({"debit_account_id": ids[debit], "credit_account_id": ids[credit], "amount_cents": amount, "kind": "hold",
                     "reference": reference, "memo": "migration 0012", "created_at": now})
        debits[ids[debit]] += amount
        credits[ids[credit]] += amount
    op.bulk_insert(_transfer, rows)
    for account_id in sorted(debits.keys() | credits.keys()):
        bind.execute(sa.text("UPDATE ledger_account SET debits_posted_cents = debits_posted_cents + :d,"
                             " credits_posted_cents = credits_posted_cents + :c WHERE id = :id"),
                     {"d": debits.get(account_id, 0), "c": credits.get(account_id, 0), "id": account_id})


def downgrade() -> None:
    pass  # the ledger is never edited: the held accounts and the transfers into them stay
