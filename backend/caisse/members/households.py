"""Households' services: create, edit, balance, cards, manual credits.

None of them commits: the caller does, so a household and its ledger account appear together.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from caisse import audit
from caisse.cards.versions import bump_cards
from caisse.db import get_or_not_found
from caisse.errors import Conflict, InvalidInput, require_text
from caisse.ledger import postings as ledger
from caisse.models import Card, Household
from caisse.staff import accounts

MAX_CREDIT_CENTS = 1_000_000  # 10 000 EUR: far above any monthly allowance, catches typos



def create_household(session: Session, *, name: str, members: int, zone: str) -> Household:
    require_text(name=name, zone=zone)
    if members < 1:
        raise InvalidInput("invalid_members", "a household has at least one member")
    household = Household(name=name.strip(), members=members, zone=zone.strip())
    session.add(household)
    session.flush()
    assert household.id is not None
    ledger.ensure_account(session, code=ledger.member_code(household.id), kind=ledger.AccountKind.MEMBER)
    return household


def get_household(session: Session, *, household_id: int) -> Household:
    return get_or_not_found(session, Household, household_id, code="household_not_found")


def update_household(session: Session, *, household_id: int, name: str, members: int, zone: str) -> Household:
    household = get_household(session, household_id=household_id)
    require_text(name=name, zone=zone)
    if members < 1:
        raise InvalidInput("invalid_members", "a household has at least one member")
    household.sqlmodel_update({"name": name.strip(), "members": members, "zone": zone.strip()})
    session.add(household)
    session.flush()
    return household


def household_balance_cents(session: Session, *, household_id: int) -> int:
    return ledger.balance_cents(session, code=ledger.member_code(household_id))


def household_cards(session: Session, *, household_id: int) -> list[Card]:
    return list(session.execute(select(Card).where(col(Card.household_id) == household_id).order_by(col(Card.id))).scalars())


@dataclass(frozen=True, slots=True)
class Credit:
    reference: str  # the caller's key (or the one made for it): send it again to retry
    ledger_reference: str  # what the ledger posted it under, `credit:{reference}` (to reverse it)
    amount_cents: int
    created: bool  # False when the reference had been posted before (idempotent retry)


def credit_household(
    session: Session, *, household_id: int, amount_cents: int, memo: str | None = None, reference: str | None = None,
    by: str = accounts.SYSTEM, os_user: str | None = None,
) -> Credit:
    """Allowance credit: allowance_fund -> member. Same reference + same body = the same credit.
    Posted as `credit:{reference}` (ledger.user_reference): a key cannot take a system reference."""
    by = accounts.staff_actor(session, by=by, os_user=os_user)
    get_household(session, household_id=household_id)
    if not 0 < amount_cents <= MAX_CREDIT_CENTS:
        raise InvalidInput("invalid_amount", f"amount_cents must be between 1 and {MAX_CREDIT_CENTS}")
    key = uuid.uuid4().hex if reference is None else reference
    posted_as = ledger.user_reference("credit", key)
    fund = ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND, kind=ledger.AccountKind.ALLOWANCE_FUND)
    member = ledger.ensure_account(session, code=ledger.member_code(household_id), kind=ledger.AccountKind.MEMBER)
    existing = ledger.find_transfer(session, reference=posted_as)
    if existing is not None:
        same = (existing.debit_account_id, existing.credit_account_id, existing.amount_cents) == (fund, member, amount_cents)
        if not same:
            raise Conflict("reference_reused", f"reference {key!r} was posted with a different body")
        return Credit(reference=key, ledger_reference=posted_as, amount_cents=amount_cents, created=False)
    ledger.post_transfer(session, debit=fund, credit=member, amount_cents=amount_cents,
                         kind=ledger.TransferKind.ALLOWANCE, reference=posted_as, memo=memo)
    bump_cards(session, household_ids=[household_id])
    audit.record(session, actor=by, action="household.credit", subject=f"household:{household_id}",
                 detail={"amount_cents": amount_cents, "memo": memo, "reference": posted_as}, os_user=os_user)
    return Credit(reference=key, ledger_reference=posted_as, amount_cents=amount_cents, created=True)
