"""Offline budgets at ingestion (docs/ledger.md, "Offline limits").

A terminal on sync v2 approves a payment offline only while its household's spend on this
terminal this day stays within min(balance at sync x offline_share_bp / 10 000,
offline_daily_cap_cents) (firmware/caisse_terminal/policy.py). Ingestion replays that check on
the records it receives: a payment within the limits the terminal had is owed to the vendor (the
food is gone); one beyond them is accepted but held for a person, with a French reason.

What the terminal had is not always known exactly, so every doubt goes the vendor's way:

- limits: the two last sent to it (`terminal_limits`), the more generous of each (the answer
  with the newer ones may have been lost);
- balance: the largest of those the terminal may hold for the household: the one sent at the
  newest version of the household at or below the cards version it had proved holding before
  the tap (`terminal_sync`), and every one sent after that up to its last answer
  (`feed_balance`, written by v2 syncs);
- day spend: every stored record of this terminal and household dated that day (payments minus
  voids, whatever their verdict: the terminal counted each when it committed it), plus those
  before it in the batch. A record of that day stored earlier with a higher seq counts too, so
  uploading backwards does not escape the check: the order of upload may change which record
  is held, never how much is owed.

A terminal that never synced v2 has no household budget: its records are judged as v1's.
Reads only: a handful of statements per batch, none per record. Nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlmodel import Session

from caisse.db import id_in, table_of
from caisse.models import FeedBalance, TerminalLimits, TerminalSync, TransactionRecord
from caisse.money import euros
from caisse.terminals.service import TerminalState
from caisse_common.protocol import Kind, Record

# The terminal's day: UTC+1 all year, as its log's day summary (firmware/caisse_terminal/log.py).
DAY_OFFSET_S = 3_600
DAY_S = 86_400
# Seqs looked back per step for a day's first record: an honest terminal keeps at most ~3 000
# records of a day (its log), so one step is the rule.
_SCAN_ROWS = 4_096

_record = table_of(TransactionRecord)
_limits = table_of(TerminalLimits)
_sync = table_of(TerminalSync)
_feed = table_of(FeedBalance)


def terminal_day(time_s: int) -> int:
    """The day number of a record's time, as the terminal counts it."""
    return (time_s + DAY_OFFSET_S) // DAY_S


def daily_budget_cents(balance_cents: int, *, share_bp: int, cap_cents: int) -> int:
    """What one terminal may grant a household in a day: min(balance x share, cap), rounded down."""
    return min(balance_cents * share_bp // 10_000, cap_cents)


@dataclass(slots=True)
class Judge:
    """The budget check of one batch: what was loaded, and the day spend as records go by."""

    share_bp: int
    cap_cents: int
    balances: dict[int, int]  # household -> the most generous balance the terminal may hold
    spent: defaultdict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))  # (household, day) -> cents

    def judge(self, record: Record, household_id: int) -> str | None:
        """Count the record in its day's spend; for a payment beyond the budget, the hold reason."""
        key = (household_id, terminal_day(record.time))
        if record.kind == Kind.VOID:
            self.spent[key] -= record.amount_cents
            return None
        self.spent[key] += record.amount_cents
        balance = self.balances.get(household_id)
        budget = self.cap_cents if balance is None else daily_budget_cents(balance, share_bp=self.share_bp,
                                                                             cap_cents=self.cap_cents)
        if self.spent[key] <= budget:
            return None
        # One reason per household and budget, not per record: records are held in one statement per reason.
        return f"plafond hors ligne dépassé : foyer {household_id}, {euros(max(budget, 0))} € par jour sur ce terminal"


def load_judge(
    session: Session, *, terminal_id: int, terminal: TerminalState, payments: Collection[tuple[Record, int]],
) -> Judge | None:
    """The judge of a batch whose new records are (record, household id) pairs; None when the
    terminal never synced v2 or the batch holds no payment."""
    if terminal.limits_version is None or not any(r.kind == Kind.PAYMENT for r, _ in payments):
        return None
    sent = session.execute(
        select(_limits.c.offline_share_bp, _limits.c.offline_daily_cap_cents)
        .where(_limits.c.terminal_id == terminal_id).order_by(_limits.c.id.desc()).limit(2)
    ).all()
    households = {h for _, h in payments}
    judge = Judge(share_bp=max(s for s, _ in sent), cap_cents=max(c for _, c in sent),
                  balances=_balances(session, terminal_id=terminal_id, households=households,
                                     earliest_s=min(r.time for r, _ in payments),
                                     last_sent=terminal.cards_version_sent or 0))
    _load_day_spend(session, judge, terminal_id=terminal_id, records=[r for r, _ in payments], households=households)
    return judge


def _balances(session: Session, *, terminal_id: int, households: set[int], earliest_s: int, last_sent: int) -> dict[int, int]:
    """Per household, the largest balance the terminal may hold at `earliest_s` (module docstring)."""
    proved = session.execute(
        select(_sync.c.cards_version).where(_sync.c.terminal_id == terminal_id,
                                            _sync.c.synced_at <= datetime.fromtimestamp(earliest_s, UTC))
        .order_by(_sync.c.cards_version.desc()).limit(1)
    ).scalar_one_or_none() or 0
    older = _feed.alias("older")
    held = (select(func.max(older.c.cards_version))
            .where(older.c.household_id == _feed.c.household_id, older.c.cards_version <= proved).scalar_subquery())
    rows = session.execute(
        select(_feed.c.household_id, func.max(_feed.c.balance_cents))
        .where(id_in(session, _feed.c.household_id, sorted(households)), _feed.c.cards_version <= last_sent,
               _feed.c.cards_version >= func.coalesce(held, 0))
        .group_by(_feed.c.household_id)
    ).all()
    return {int(h): int(b) for h, b in rows}


def _load_day_spend(session: Session, judge: Judge, *, terminal_id: int, records: list[Record], households: set[int]) -> None:
    """Add up the stored records of the batch's households and days, summed in SQL: every record
    of the terminal from the first one of the batch's earliest day on (found by stepping back
    _SCAN_ROWS seqs at a time from the batch's lowest seq), those stored above the batch included."""
    days = {terminal_day(r.time) for r in records}
    first_day = min(days)
    floor = min(r.seq for r in records)
    while floor > 1:
        floor = max(floor - _SCAN_ROWS, 1)
        before = session.execute(
            select(_record.c.time).where(_record.c.terminal_id == terminal_id, _record.c.seq == floor - 1)
        ).scalar_one_or_none()
        if before is None or terminal_day(before) < first_day:
            break
    day = ((_record.c.time + DAY_OFFSET_S) / DAY_S).label("day")  # integer division on both databases
    signed = case((_record.c.kind == Kind.PAYMENT, _record.c.amount_cents), else_=-_record.c.amount_cents)
    rows = session.execute(
        select(_record.c.household_id, day, func.sum(signed))
        .where(_record.c.terminal_id == terminal_id, _record.c.seq >= floor,
               _record.c.time >= first_day * DAY_S - DAY_OFFSET_S, _record.c.time < (max(days) + 1) * DAY_S - DAY_OFFSET_S,
               id_in(session, _record.c.household_id, sorted(households)))
        .group_by(_record.c.household_id, day)
    ).all()
    for household_id, row_day, cents in rows:
        if int(row_day) in days:
            judge.spent[(int(household_id), int(row_day))] += int(cents)
