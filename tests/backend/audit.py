"""The ledger auditor of the tests: every invariant of docs/ledger.md, checked by caisse.reports.invariants
(the module `caisse verify` and the simulation's auditor use too), and the vendor accounts worked
out record by record here, an oracle independent of the SQL caisse.settlement.runs.payable_differences
(invariant `vendor_accounts_match_records`) uses."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlmodel import Session

from caisse.ledger import postings as ledger
from caisse.models import BankReturn, LedgerAccount, RecordStatus, SettlementItem, SettlementRun, SettlementStatus, Terminal, TransactionRecord
from caisse.reports import invariants


def assert_ledger_invariants(session: Session) -> None:
    session.expire_all()
    broken = {invariant.key: problems for invariant, problems in invariants.check_all(session) if problems}
    assert not broken, broken
    accounts = session.execute(select(LedgerAccount)).scalars().all()
    accepted = session.execute(select(TransactionRecord).where(TransactionRecord.status == RecordStatus.ACCEPTED)).scalars().all()  # type: ignore[arg-type]
    assert_vendor_accounts_match_records(session, list(accounts), list(accepted))


def assert_vendor_accounts_match_records(session: Session, accounts: list[LedgerAccount],
                                         accepted: list[TransactionRecord]) -> None:
    """vendor_payable:{v} = what its records not paid out yet add to it, plus the bank returns no
    exported run paid again; vendor_held:{v} = the records held undecided (docs/ledger.md, "Holds
    and review"). Worked out record by record here, independently of
    caisse.settlement.runs.payable_differences, which computes the same in SQL."""
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
