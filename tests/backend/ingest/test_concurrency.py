"""Concurrent uploads touching one household from many terminals: no lost update, to the cent."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.db import session_factory
from caisse.ingest.upload import Outcome, ingest_batch
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import Chain, new_key, new_uid

TERMINALS = 8
BATCHES_PER_TERMINAL = 4
RECORDS_PER_BATCH = 24
CREDITS = 20


def test_eight_terminals_paying_the_same_household_at_once_lose_no_cent(
    engine: Engine, session: Session, settings: Settings
) -> None:
    household = household_service.create_household(session, name="Famille Martin", members=5, zone="Sud")
    assert household.id is not None
    uids = [new_uid(), new_uid()]  # two cards of one household: shared balance
    for uid in uids:
        card_service.issue_card(session, household_id=household.id, uid_hex=uid.hex())
    chains: list[tuple[int, Chain]] = []
    for i in range(TERMINALS):
        vendor = vendor_service.create_vendor(session, name=f"Étal {i}", kind="market_stall", market="Marché Sud", zone="Sud")
        assert vendor.id is not None
        key = new_key()
        terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id, public_key_hex=protocol.public_key_bytes(key).hex())
        assert terminal.id is not None
        chains.append((vendor.id, Chain(terminal.id, key)))
    session.commit()

    uploads: list[tuple[int, list[bytes]]] = []
    expected_payable: dict[int, int] = {}
    for vendor_id, chain in chains:
        for b in range(BATCHES_PER_TERMINAL):
            batch = [chain.pay(uids[n % 2], 100 + 7 * n + b) for n in range(RECORDS_PER_BATCH)]
            uploads.append((chain.terminal_id, batch))
        expected_payable[vendor_id] = sum(r.amount_cents for r in chain.records)
    factory = session_factory(engine)
    start = threading.Barrier(TERMINALS + 1)

    def terminal_worker(terminal_id: int) -> int:
        accepted = 0
        start.wait()
        for tid, batch in uploads:
            if tid != terminal_id:
                continue
            with factory() as own:
                result = ingest_batch(own, terminal_id=tid, raw_records=batch, settings=settings)
                own.commit()
            accepted += sum(r.status == Outcome.ACCEPTED for r in result.results)
        return accepted

    def credit_worker() -> None:
        start.wait()
        for n in range(CREDITS):
            with factory() as own:
                household_service.credit_household(own, household_id=household.id, amount_cents=1_000, reference=f"concurrent-{n}")
                own.commit()

    with ThreadPoolExecutor(max_workers=TERMINALS + 1) as pool:
        credits = pool.submit(credit_worker)
        accepted = list(pool.map(terminal_worker, [chain.terminal_id for _, chain in chains]))
        credits.result()

    assert accepted == [BATCHES_PER_TERMINAL * RECORDS_PER_BATCH] * TERMINALS
    session.expire_all()
    for vendor_id, expected in expected_payable.items():
        assert vendor_service.vendor_payable_cents(session, vendor_id=vendor_id) == expected
    spent = sum(expected_payable.values())
    assert ledger.balance_cents(session, code=ledger.member_code(household.id)) == CREDITS * 1_000 - spent
    assert_ledger_invariants(session)
