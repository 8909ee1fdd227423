"""The ledger auditor: checks every invariant of docs/ledger.md against the database."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlmodel import Session

from caisse import ledger, settlement
from caisse.models import (
    BankReturn,
    LedgerAccount,
    LedgerTransfer,
    RecordStatus,
    SettlementItem,
    SettlementRun,
    SettlementStatus,
    Terminal,
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
    # 6. every vendor account holds what its records say (docs/ledger.md, "Holds and review")
    accepted = [r for r in records if r.status == RecordStatus.ACCEPTED]
    assert_vendor_accounts_match_records(session, accounts, accepted)
    # a rejected record is never settled; a rejected payment went back to the member exactly once:
    # by its reversal, or by a void (posted to the member, or released to it)
    settled_ids = set(session.execute(select(SettlementItem.record_id)).scalars())
    kinds = {a.id: a.kind for a in accounts}
    refunds: dict[tuple[int, int], int] = defaultdict(int)
    for record in accepted:
        references = [ledger.record_reference(record.terminal_id, record.seq),
                      ledger.release_reference(record.terminal_id, record.seq),
                      ledger.reject_reference(record.terminal_id, record.seq)]
        paid_back = [by_reference[r] for r in references if r in by_reference and kinds[by_reference[r].credit_account_id] == "member"]
        refunds[(record.terminal_id, record.seq if record.kind == 1 else record.ref_seq)] += len(paid_back)
    for record in accepted:
        if record.review == "rejected":
            assert record.id not in settled_ids
            if record.kind == 1:
                assert record.voided and refunds[(record.terminal_id, record.seq)] == 1
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


def assert_vendor_accounts_match_records(session: Session, accounts: list[LedgerAccount],
                                         accepted: list[TransactionRecord]) -> None:
    """vendor_payable:{v} = what its records not paid out yet add to it, plus the bank returns no
    exported run paid again; vendor_held:{v} = the
    records held undecided (docs/ledger.md, "Holds and review"). Worked out record by record here,
    independently of caisse.settlement.payable_differences, which computes the same in SQL."""
    vendors = dict(session.execute(select(Terminal.id, Terminal.vendor_id)).all())  # type: ignore[call-overload]
    paid_out = set(session.execute(
        select(SettlementItem.record_id).join(SettlementRun, SettlementRun.id == SettlementItem.run_id)  # type: ignore[arg-type]
        .where(SettlementRun.status == SettlementStatus.EXPORTED)).scalars())  # type: ignore[arg-type]
    stored = {(r.terminal_id, r.seq): r for r in accepted}
    payable: dict[str, int] = defaultdict(int)
    held: dict[str, int] = defaultdict(int)
    for record in accepted:
        vendor = vendors[record.terminal_id]
        payable_code, held_code = ledger.vendor_payable_code(vendor), ledger.vendor_held_code(vendor)
        if record.kind == 1:
            if record.review == "held" and not record.voided:
                held[held_code] += record.amount_cents
            if record.review in (None, "released") and record.id not in paid_out:
                payable[payable_code] += record.amount_cents
            continue
        payment_review = stored[(record.terminal_id, record.ref_seq)].review
        follows = payment_review == "held"  # posted from vendor_held when its payment was held
        if record.review == "held" and not follows:
            held[held_code] += record.amount_cents
        if not follows and (record.review or payment_review) != "rejected" and record.id not in paid_out:
            payable[payable_code] -= record.amount_cents
    exported = set(session.execute(select(SettlementRun.id).where(SettlementRun.status == SettlementStatus.EXPORTED)).scalars())  # type: ignore[arg-type]
    for returned in session.execute(select(BankReturn)).scalars():  # given back, not paid again yet
        if returned.repaid_run_id not in exported:
            payable[ledger.vendor_payable_code(returned.vendor_id)] += returned.amount_cents
    for account in accounts:
        balance = account.credits_posted_cents - account.debits_posted_cents
        if account.kind == "vendor_payable":
            assert balance == payable.get(account.code, 0), account.code
        elif account.kind == "vendor_held":
            assert balance == held.get(account.code, 0), account.code
    assert settlement.payable_differences(session) == []  # the SQL the staff's reports use agrees
