"""Households below zero (docs/ledger.md, "Households below zero").

Offline terminals can let a household spend more than its balance (within the bound of the
offline limits). Every such household is listed for the staff with what it owes and since when;
`household.overdrawn_since` is kept by caisse.cards.versions.mark_overdrafts, which every change of a member
balance goes through. Recovery is the written policy of docs/ledger.md: the next allowances
credit the same account, so they cover the overdraft first; nothing here moves money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, literal, select
from sqlmodel import Session

from caisse.db import table_of
from caisse.models import Household, LedgerAccount

_account = table_of(LedgerAccount)
_household = table_of(Household)


@dataclass(frozen=True, slots=True)
class Overdraft:
    household_id: int
    name: str
    zone: str
    balance_cents: int  # below zero: what the household owes the caisse
    since: datetime | None  # when the balance last went below zero


@dataclass(frozen=True, slots=True)
class OverdraftTotal:
    households: int
    owed_cents: int  # > 0: the sum of the overdrafts


def overdrawn_households(session: Session, *, limit: int = 1_000) -> list[Overdraft]:
    """Every household whose balance is below zero, the deepest first."""
    balance = (_account.c.credits_posted_cents - _account.c.debits_posted_cents).label("balance")
    rows = session.execute(
        select(_household.c.id, _household.c.name, _household.c.zone, balance, _household.c.overdrawn_since)
        .join(_account, _account.c.code == literal("member:") + cast(_household.c.id, String))
        .where(balance < 0)
        .order_by(balance, _household.c.id)
        .limit(limit)
    ).all()
    return [Overdraft(int(h), name, zone, int(b), since) for h, name, zone, b, since in rows]


def total(session: Session) -> OverdraftTotal:
    """How many households are below zero and what they owe in all (no names: for every role)."""
    overdrafts = overdrawn_households(session, limit=1_000_000)
    return OverdraftTotal(households=len(overdrafts), owed_cents=-sum(o.balance_cents for o in overdrafts))
