"""The ledger auditor: checks every invariant of docs/ledger.md against the database."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlmodel import Session

from caisse import ledger
from caisse.models import (
    BankReturn,
    LedgerAccount,
    LedgerTransfer,
    RecordStatus,
    SettlementItem,
    SettlementRun,
    SettlementStatus,
    TransactionRecord,
)


def assert_ledger_invariants(session: Session) -> None:
    session.expire_all()
    accounts = session.execute(select(LedgerAccount)).scalars().all()
    transfers = session.execute(select(LedgerTransfer)).scalars().all()
    debits: dict[int, int] = defaultdict(int)
    credits: dict[int, int] = defaultdict(int)
    for transfer in transfers:
        assert transfer.amount_cents > 0
        assert transfer.debit_account_id != transfer.credit_account_id
        debits[transfer.debit_account_id] += transfer.amount_cents
        credits[transfer.credit_account_id] += transfer.amount_cents
    total = sum(t.amount_cents for t in transfers)
    # 1. every transfer balances
    assert sum(a.debits_posted_cents for a in accounts) == total
    assert sum(a.credits_posted_cents for a in accounts) == total
    # 2. the sum of all balances is zero
    assert sum(a.credits_posted_cents - a.debits_posted_cents for a in accounts) == 0
    assert ledger.summary(session).balance_sum_cents == 0
    # 3. a reference (so a record) is posted at most once
    assert len({t.reference for t in transfers}) == len(transfers)
    # 4. balances equal the sum of transfers
    for account in accounts:
        assert account.id is not None
        assert (account.debits_posted_cents, account.credits_posted_cents) == (debits[account.id], credits[account.id]), account.code
    # 5. accepted records and transfers match one to one
    by_reference = {t.reference: t for t in transfers}
    records = session.execute(select(TransactionRecord)).scalars().all()
    for record in records:
        transfer = by_reference.get(ledger.record_reference(record.terminal_id, record.seq))
        if record.status == RecordStatus.ACCEPTED:
            assert transfer is not None and transfer.amount_cents == record.amount_cents
        else:
            assert transfer is None
    record_transfers = session.execute(
        select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.reference.startswith("record:"))  # type: ignore[attr-defined]
    ).scalar_one()
    assert record_transfers == sum(1 for r in records if r.status == RecordStatus.ACCEPTED)
    # 6. money is conserved per purpose: what vendors earned, less what reviewers rejected, is still
    #    payable or paid out; a rejected payment is reversed once and never settled
    payable = sum(a.credits_posted_cents - a.debits_posted_cents for a in accounts if a.kind in ("vendor_payable", "vendor_paid"))
    accepted = [r for r in records if r.status == RecordStatus.ACCEPTED]
    reversed_cents = sum(t.amount_cents for t in transfers if t.kind == ledger.TransferKind.REJECT)
    earned = sum(r.amount_cents for r in accepted if r.kind == 1) - sum(r.amount_cents for r in accepted if r.kind == 2)
    assert payable == earned - reversed_cents
    settled_ids = set(session.execute(select(SettlementItem.record_id)).scalars())
    for record in accepted:
        if record.review == "rejected":
            assert record.id not in settled_ids and record.voided
            assert (record.kind != 1) or ledger.reject_reference(record.terminal_id, record.seq) in by_reference or any(
                r.kind == 2 and r.terminal_id == record.terminal_id and r.ref_seq == record.seq for r in accepted)
    # 7. what was paid out is exactly what exported settlement runs settled (docs/settlement.md)
    paid_out = sum(a.credits_posted_cents - a.debits_posted_cents for a in accounts if a.kind == "vendor_paid")
    settled = session.execute(
        select(func.coalesce(func.sum(SettlementItem.amount_cents), 0))
        .join(SettlementRun, SettlementRun.id == SettlementItem.run_id)  # type: ignore[arg-type]
        .where(SettlementRun.status == SettlementStatus.EXPORTED)  # type: ignore[arg-type]
    ).scalar_one()
    # ... less the transfers the bank gave back, plus those exported runs paid again (caisse.bank)
    returned = sum(r.amount_cents for r in session.execute(select(BankReturn)).scalars())
    assert returned == sum(t.amount_cents for t in transfers if t.kind == ledger.TransferKind.BANK_RETURN)
    repaid = session.execute(
        select(func.coalesce(func.sum(BankReturn.amount_cents), 0))
        .join(SettlementRun, SettlementRun.id == BankReturn.repaid_run_id)  # type: ignore[arg-type]
        .where(SettlementRun.status == SettlementStatus.EXPORTED)  # type: ignore[arg-type]
    ).scalar_one()
    assert paid_out == settled - returned + repaid
