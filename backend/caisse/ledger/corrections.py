"""Staff mistakes undone (docs/ledger.md, "Reversals"): an allowance credit, a contribution, a
grant or a fee entered twice is taken back by a new transfer in the other direction, never by
editing or deleting a row.

The reversal's reference is `reversal:{original transfer id}`: in the system's namespace (a key a
person types is posted behind its kind's namespace, caisse.ledger.postings.user_reference), unique, so a
transfer is reversed at most once. The original and its register row (a contribution) stay as
they were; readers net them out (the budget, the matching funds, the average contribution).
Nothing here commits: the caller does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

from caisse import audit
from caisse.cards.versions import bump_cards
from caisse.db import is_postgresql
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.ledger import postings as ledger
from caisse.models import LedgerAccount
from caisse.staff import accounts

# What staff enter by hand. Payments, voids and rejections come from terminals and reviews (a void
# or a review corrects them), settlements are bank transfers, expiries and matching are computed,
# and a reversal is not reversed: the entry is made again under a new reference.
REVERSIBLE = {ledger.TransferKind.ALLOWANCE: "allocation", "contribution": "cotisation", "grant": "subvention",
              "fee": "frais"}
MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Reversal:
    original_reference: str
    reference: str
    amount_cents: int
    created: bool  # False: the transfer was reversed before (idempotent)


def reverse(session: Session, *, reference: str, by: str, reason: str, os_user: str | None = None) -> Reversal:
    """Take back the transfer `reference` entered by mistake, as the active console account `by`.

    Refused: an unknown reference, a kind that is not entered by hand, and an allowance the
    household has already spent (its balance would fall below zero: what was spent is settled
    with the household by a person, not by putting it in debt from the office)."""
    by = accounts.active_user(session, email=by).email
    reason = reason.strip()
    if not 0 < len(reason) <= MAX_REASON_CHARS:
        raise InvalidInput("invalid_reason", f"a reversal says why, in 1 to {MAX_REASON_CHARS} characters")
    original = ledger.find_transfer(session, reference=reference)
    if original is None:
        raise NotFound("transfer_not_found", f"no transfer {reference!r}")
    assert original.id is not None
    if original.kind not in REVERSIBLE:
        raise Conflict("not_reversible", f"a {original.kind} transfer is not a staff entry: it cannot be reversed")
    debit, credit = original.credit_account_id, original.debit_account_id  # the other direction
    _lock_accounts(session, [debit, credit])
    reversal_reference = ledger.reversal_reference(original.id)
    if ledger.find_transfer(session, reference=reversal_reference) is not None:
        return Reversal(reference, reversal_reference, original.amount_cents, created=False)
    taken_from = session.get(LedgerAccount, debit, populate_existing=True)
    assert taken_from is not None
    household_id = int(taken_from.code.split(":", 1)[1]) if taken_from.code.startswith("member:") else None
    balance = taken_from.credits_posted_cents - taken_from.debits_posted_cents
    if household_id is not None and balance < original.amount_cents:
        raise Conflict("reversal_would_overdraw",
                       f"household {household_id} has {balance} cents left, the entry was {original.amount_cents}")
    ledger.post_transfer(session, debit=debit, credit=credit, amount_cents=original.amount_cents,
                         kind=ledger.TransferKind.REVERSAL, reference=reversal_reference,
                         memo=f"contre-passation de {reference} : {reason}"[:300])
    if household_id is not None:
        bump_cards(session, household_ids=[household_id])  # terminals learn the new balance
    audit.record(session, actor=by, action="ledger.reverse", subject=f"transfer:{original.id}",
                 detail={"reference": reference, "reversal": reversal_reference, "kind": original.kind,
                         "amount_cents": original.amount_cents, "reason": reason,
                         **({"os_user": os_user} if os_user else {})})
    return Reversal(reference, reversal_reference, original.amount_cents, created=True)


def _lock_accounts(session: Session, account_ids: list[int]) -> None:
    """Both accounts, in ascending id order (docs/ledger.md, "Lock order"), before the balance is
    read: a concurrent reversal or payment waits, so the check above holds when the transfer posts.
    SQLite has one writer at a time (BEGIN IMMEDIATE)."""
    if is_postgresql(session):
        session.execute(text("SELECT id FROM ledger_account WHERE id IN (:a, :b) ORDER BY id FOR NO KEY UPDATE"),
                        {"a": min(account_ids), "b": max(account_ids)})


def reversed_sql(reference_column: str) -> str:
    """SQL true when the transfer whose reference is `reference_column` has been reversed."""
    return ("EXISTS (SELECT 1 FROM ledger_transfer o JOIN ledger_transfer rv ON rv.reference = 'reversal:'"
            f" || CAST(o.id AS VARCHAR(20)) WHERE o.reference = {reference_column})")

