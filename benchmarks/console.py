"""The console's read-side queries (caisse.reports.directory) on a large database: how long a page waits.

    python benchmarks/console.py [-n 1000000] [--vendors 1000] [--households 5000] [--db sqlite|postgresql|both]

Seeds like benchmarks/flows.py (V producers with a terminal each, N accepted records spread over
H households), then posts the ledger transfer of every record and one monthly allowance per
household (not timed). Then times, best of three, each query a console page runs: the household
list and a search, one household's payments and allowances (no index serves them: they scan the
records and the transfers), the vendor list, the terminal overview (one grouped scan of the
records), the budget page's twelve months of caisse.fund.service.budgets and the home page's list of
what waits too long (caisse.reports.overdue). Not a test: numbers depend
on the machine. Results go in docs/console.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flows import fresh_engine, main, spread  # type: ignore[import-not-found]
from settle import seed  # type: ignore[import-not-found]
from sqlalchemy import Engine, text
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import session_factory
from caisse.fund import service as fund
from caisse.members import households as household_service
from caisse.reports import directory, overdue

SCHEMA = "caisse_bench_console"
RUNS = 3
HOUSEHOLD = 7


def post_transfers(engine: Engine, *, households: int) -> None:
    """The ledger as ingestion leaves it: a payment transfer per record, an allowance per household."""
    with session_factory(engine)() as session:
        session.execute(text(
            "INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount_cents, kind, reference, created_at)"
            " SELECT m.id, v.id, r.amount_cents, 'payment', 'record:' || r.terminal_id || ':' || r.seq, r.received_at"
            " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id"
            " JOIN ledger_account m ON m.code = 'member:' || r.household_id"
            " JOIN ledger_account v ON v.code = 'vendor_payable:' || t.vendor_id"))
        for household_id in range(1, households + 1):
            household_service.credit_household(session, household_id=household_id, amount_cents=10_000,
                                   reference=f"allocation-{household_id}-2026-01")  # no colon: a user reference
        session.commit()


def queries() -> dict[str, Callable[[Session], Any]]:
    return {
        "households, first 100": lambda s: directory.search_households(s, limit=100),
        "households, search 'foyer 42'": lambda s: directory.search_households(s, query="foyer 42", limit=100),
        "households, search 'FOYÉR 42' (folded)": lambda s: directory.households_page(s, query="FOYÉR 42").rows,
        "households, page 40 of 50": lambda s: directory.households_page(s, page=40, per_page=50).rows,
        "cards, search 'foyer 4'": lambda s: directory.cards_page(s, query="foyer 4").rows or ["no card seeded"],
        "one household's payments": lambda s: directory.household_payments(s, household_id=HOUSEHOLD),
        "one household's allowances": lambda s: directory.household_allowances(s, household_id=HOUSEHOLD),
        "vendors": lambda s: directory.search_vendors(s),
        "terminals overview": lambda s: directory.terminal_rows(s),
        "terminals, first page of 50": lambda s: directory.terminals_page(s).rows,
        "budget, 12 months": lambda s: fund.budgets(s, months=[f"2026-{m:02d}" for m in range(1, 13)], settings=Settings()),
        "waiting too long (home)": lambda s: overdue.overdue(s, settings=Settings()) or ["nothing"],
    }


def measure(engine: Engine) -> dict[str, float]:
    best: dict[str, float] = {}
    for name, query in queries().items():
        for _ in range(RUNS):
            with session_factory(engine)() as session:
                start = time.perf_counter()
                rows = query(session)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
                assert rows, name
    return best


def run(db: str, *, n: int, vendors: int, households: int) -> None:
    with fresh_engine(db, schema=SCHEMA) as engine:
        seed(engine, n=n, vendors=vendors)
        spread(engine, households=households)
        post_transfers(engine, households=households)
        if db == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        print(f"{db}: {n} records, {vendors} vendors, {households} households (best of {RUNS})")
        for name, seconds in measure(engine).items():
            print(f"  {name:<32} {seconds * 1000:9.1f} ms")


if __name__ == "__main__":
    main(run, __doc__ or "")
