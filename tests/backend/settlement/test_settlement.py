"""Nightly settlement: what is paid, what is held back, crashes, approval, SEPA file, statements."""

from __future__ import annotations

import csv
import itertools
import time
import xml.etree.ElementTree as etree
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text, update
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.db import session_factory
from caisse.errors import Conflict
from caisse.ingest import terminal_decisions
from caisse.ingest.upload import ingest_batch
from caisse.ledger import postings as ledger
from caisse.main import create_app
from caisse.members import households as household_service
from caisse.models import Counter, SettlementItem, SettlementRun, Terminal, TransactionRecord, Vendor
from caisse.reports import invariants
from caisse.settlement import runs as settlement
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import T0, Chain, new_key, new_uid
from tests.fixtures.database import ADMIN_TOKEN

DAY1 = date(2026, 1, 1)  # the factories' records are stamped from 2026-01-01 08:01 UTC
IBANS = ["FR1420041010050500013M02606", "DE89370400440532013000", "FR7630006000011234567890189"]

pytestmark = pytest.mark.usefixtures("deciders")  # review decisions name active console accounts


class Market:
    """Vendors with a terminal each, one household with a card and plenty of money."""

    def __init__(self, session: Session, settings: Settings, *, vendors: int = 2, ibans: list[str | None] | None = None):
        self.session, self.settings = session, settings
        household = household_service.create_household(session, name="Famille Diallo", members=4, zone="Nord")
        assert household.id is not None
        self.uid = new_uid()
        card_service.issue_card(session, household_id=household.id, uid_hex=self.uid.hex())
        household_service.credit_household(session, household_id=household.id, amount_cents=1_000_000)
        self.chains: list[Chain] = []
        self.vendor_ids: list[int] = []
        for index in range(vendors):
            iban = (ibans or IBANS)[index % len(ibans or IBANS)]
            vendor = vendor_service.create_vendor(session, name=f"Ferme {index}", kind="producer", zone="Nord", iban=iban)
            assert vendor.id is not None
            key = new_key()
            terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id, public_key_hex=protocol.public_key_bytes(key).hex())
            assert terminal.id is not None
            self.chains.append(Chain(terminal.id, key))
            self.vendor_ids.append(vendor.id)
        session.commit()

    def upload(self, index: int, raws: list[bytes]) -> None:
        ingest_batch(self.session, terminal_id=self.chains[index].terminal_id, raw_records=raws, settings=self.settings)
        self.session.commit()

    def pay(self, index: int, amount_cents: int, **fields: object) -> None:
        self.upload(index, [self.chains[index].pay(self.uid, amount_cents, **fields)])


def _settle(engine: Engine, rules: Settings, run_date: date = DAY1, **kwargs: object) -> settlement.SettleResult:
    return settlement.settle(session_factory(engine), run_date=run_date, settings=rules, **kwargs)  # type: ignore[arg-type]


def _paid_cents(session: Session) -> int:
    session.expire_all()
    paid = ledger.balance_cents(session, code=ledger.Account.VENDOR_PAID)
    session.commit()  # end the read: on SQLite every transaction holds the write lock (BEGIN IMMEDIATE)
    return paid


def _sepa(folder: Path) -> etree.Element:
    [path] = folder.glob("*/virements-sepa.xml")
    return etree.parse(str(path)).getroot()


def _texts(root: etree.Element, path: str) -> list[str]:
    return [element.text or "" for element in root.iterfind(path, {"": root.tag.split("}")[0][1:]})]


def _control_sum_cents(root: etree.Element) -> int:
    """The group header's CtrlSum, and each batch's and each payment's amounts, all agree."""
    from decimal import Decimal

    [header] = _texts(root, ".//GrpHdr/CtrlSum")
    batches = sum(Decimal(value) for value in _texts(root, ".//PmtInf/CtrlSum"))
    payments = sum(Decimal(value) for value in _texts(root, ".//CdtTrfTxInf/Amt/InstdAmt"))
    assert Decimal(header) == batches == payments
    return int(Decimal(header) * 100)


def test_a_run_pays_each_vendor_its_payments_minus_voids(session: Session, engine: Engine, rules: Settings, folder: Path) -> None:
    market = Market(session, rules)
    market.pay(0, 1_250)
    market.pay(0, 800)
    market.upload(0, [market.chains[0].void(2)])
    market.pay(1, 499)
    result = _settle(engine, rules)
    assert (result.status, result.paid_cents, result.paid_records, result.held) == ("exported", 1_250 + 499, 4, [])
    assert _paid_cents(session) == 1_749
    assert vendor_service.vendor_payable_cents(session, vendor_id=market.vendor_ids[0]) == 0
    assert _control_sum_cents(_sepa(folder)) == 1_749
    assert_ledger_invariants(session)


def test_the_sepa_file_validates_against_the_schema_and_names_each_vendor(session: Session, engine: Engine, rules: Settings, folder: Path) -> None:
    import xmlschema
    from sepaxml import validation

    market = Market(session, rules, vendors=3)
    for index, amount in enumerate((1_000, 2_345, 67)):
        market.pay(index, amount)
    _settle(engine, rules)
    [path] = folder.glob("*/virements-sepa.xml")
    schema = xmlschema.XMLSchema(str(Path(validation.__file__).parent / "schemas" / f"{rules.sepa_schema}.xsd"))
    schema.validate(str(path))
    root = _sepa(folder)
    assert _control_sum_cents(root) == 3_412
    ibans = _texts(root, ".//CdtrAcct/Id/IBAN")
    assert sorted(ibans) == sorted(IBANS)


def test_running_twice_for_a_date_pays_once(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    first, second = _settle(engine, rules), _settle(engine, rules)
    assert first.run_id == second.run_id and second.paid_cents == 1_000
    assert _paid_cents(session) == 1_000


def test_records_after_the_cutoff_and_late_uploads_go_to_the_next_run(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 100)  # 2026-01-01 08:01 UTC
    market.pay(0, 200, time=T0 + 86_400)  # 2026-01-02
    assert _settle(engine, rules, DAY1).paid_cents == 100
    market.pay(1, 300, time=T0 + 3_600)  # taken on day 1, uploaded after its run
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 200 + 300
    assert _paid_cents(session) == 600


def test_a_void_after_its_payment_was_settled_is_taken_back_next_time(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(0, 500)
    assert _settle(engine, rules, DAY1).paid_cents == 1_500
    market.upload(0, [market.chains[0].void(2)])  # a void stamped on day 1, arrived late
    market.pay(0, 700, time=T0 + 86_400)
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 700 - 500
    assert _paid_cents(session) == 1_000 + 700
    assert_ledger_invariants(session)


def _flag_suspect(market: Market, index: int) -> None:
    """The terminal's seq 1 uploaded again with other bytes, genuinely signed: a seq conflict."""
    chain = market.chains[index]
    conflicting = protocol.signed(replace(chain.records[0], amount_cents=chain.records[0].amount_cents + 1), chain.key)
    market.upload(index, [conflicting.encode()])


def _status(session: Session, market: Market, index: int) -> str:
    session.expire_all()
    status = session.get(Terminal, market.chains[index].terminal_id).status  # type: ignore[union-attr]
    session.commit()
    return status


def test_a_suspect_terminal_s_records_are_held_until_a_person_decides_and_revoking_it_pays_nothing(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """On the code before holds on flagging, a run held back a terminal's records only while its
    status was `suspect`: revoking the terminal (another status) paid them all."""
    from caisse.ingest import review

    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(1, 400)
    _flag_suspect(market, 0)
    market.pay(0, 250)  # a suspect terminal is still heard, its records held as they arrive
    result = _settle(engine, rules, DAY1)
    assert result.paid_cents == 400
    with TestClient(create_app(rules, engine=engine)) as client:  # as the provisioning tool revokes
        revoked = client.post(f"/v1/admin/terminals/{market.chains[0].terminal_id}/revoke",
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert revoked.json()["status"] == "revoked"
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 0  # revoking released nothing
    assert result.held == [(market.vendor_ids[0], 1_250, settlement.HELD_REVIEW)]
    released = review.decide_all(session, decision=review.Decision.RELEASE, by="tresoriere@caisse.test", terminal_id=market.chains[0].terminal_id)
    session.commit()
    assert len(released) == 2
    assert _settle(engine, rules, date(2026, 1, 3)).paid_cents == 1_250
    assert_ledger_invariants(session)


def test_clearing_a_suspect_terminal_makes_it_active_and_pays_nothing_by_itself(session: Session, engine: Engine, rules: Settings) -> None:
    from caisse import audit
    from caisse.ingest import review

    market = Market(session, rules)
    market.pay(0, 1_000)
    _flag_suspect(market, 0)
    terminal_id = market.chains[0].terminal_id
    terminal_decisions.clear_suspect_terminal(session, terminal_id=terminal_id, by=accounts.SYSTEM)
    session.commit()
    assert _status(session, market, 0) == "active"
    [event] = audit.events(session, subjects=[f"terminal:{terminal_id}"])
    assert (event.actor, event.action) == (accounts.SYSTEM, "terminal.clear")
    session.commit()
    assert _settle(engine, rules, DAY1).paid_cents == 0
    market.pay(0, 300)  # active again: its new records are paid as usual
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 300
    with pytest.raises(Conflict):
        terminal_decisions.clear_suspect_terminal(session, terminal_id=terminal_id, by=accounts.SYSTEM)
    session.rollback()
    review.release(session, record_id=_id(session, market, 0, 1), by="tresoriere@caisse.test")
    session.commit()
    assert _settle(engine, rules, date(2026, 1, 3)).paid_cents == 1_000
    assert_ledger_invariants(session)


def test_revoking_an_active_terminal_holds_its_unsettled_records_with_a_french_reason(session: Session, engine: Engine, rules: Settings) -> None:
    from caisse.ingest import review
    from caisse.settlement import statements

    market = Market(session, rules)
    market.pay(0, 700)
    assert _settle(engine, rules, DAY1).paid_cents == 700
    market.pay(0, 200, time=T0 + 86_400)
    terminal_decisions.revoke_terminal(session, terminal_id=market.chains[0].terminal_id, by=accounts.SYSTEM)
    session.commit()
    held = statements.held_for_review(session)
    session.commit()
    assert [(r.seq, r.reason) for r in held] == [(2, review.HOLD_REVOKED)]  # the settled one stays settled
    assert vendor_service.vendor_payable_cents(session, vendor_id=market.vendor_ids[0]) == 0
    session.commit()
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 0
    assert_ledger_invariants(session)


# Accounts against records ------------------------------------------------------------------------

_drifts = itertools.count()


def _drift(session: Session, market: Market, index: int, cents: int) -> None:
    """Money in or out of a vendor's payable with no record behind it: what a rejected held void
    left on the code before vendor_held (-30 EUR), or any posting a bug might make."""
    payable = ledger.vendor_payable_code(market.vendor_ids[index])
    member = ledger.member_code(card_service.get_card(session, uid_hex=market.uid.hex()).household_id)
    ids = ledger.account_ids(session, codes=[payable, member])
    debit, credit = (ids[payable], ids[member]) if cents < 0 else (ids[member], ids[payable])
    ledger.post_transfer(session, debit=debit, credit=credit, amount_cents=abs(cents), kind=ledger.TransferKind.VOID,
                         reference=f"test-drift:{next(_drifts)}")
    session.commit()


def _payable(session: Session, market: Market, index: int) -> int:
    session.expire_all()
    cents = vendor_service.vendor_payable_cents(session, vendor_id=market.vendor_ids[index])
    session.commit()
    return cents


def test_a_negative_payable_with_no_record_behind_it_is_reported_and_never_paid_from(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """On the code before the comparison, a run summed the records, not the account: the vendor
    was paid its 10 EUR from an account at -30 EUR, and nothing ever said so."""
    market = Market(session, rules)
    _drift(session, market, 0, -3_000)
    market.pay(0, 1_000)
    market.pay(1, 500)
    result = _settle(engine, rules, DAY1)
    assert (result.paid_cents, _payable(session, market, 0)) == (500, -2_000)
    assert result.held == [(market.vendor_ids[0], 1_000, settlement.HELD_SHORT.format(available="-20,00", net="10,00"))]
    [difference] = result.differences
    sentence = f"commerçant {market.vendor_ids[0]} : compte à payer -20,00 €, enregistrements 10,00 € (écart -30,00 €)"
    assert difference.french() == sentence
    assert sentence in (Path(result.output_dir or "") / "resume.csv").read_text(encoding="utf-8")
    code = ledger.vendor_payable_code(market.vendor_ids[0])
    assert [(d.code, d.balance_cents, d.records_cents) for d in settlement.payable_differences(session)] == [(code, -2_000, 1_000)]


def test_money_in_a_payable_without_records_is_reported_and_only_the_records_are_paid(
    session: Session, engine: Engine, rules: Settings
) -> None:
    market = Market(session, rules)
    _drift(session, market, 0, 500)
    market.pay(0, 1_000)
    result = _settle(engine, rules, DAY1)
    assert result.paid_cents == 1_000
    assert [(d.balance_cents, d.records_cents) for d in result.differences] == [(500, 0)]
    assert _payable(session, market, 0) == 500


def test_a_run_never_pays_a_vendor_more_than_its_payable_account_holds(session: Session, engine: Engine, rules: Settings) -> None:
    """A void stamped after the cut-off of a payment before it, both uploaded before the run: paying
    the payment would leave the account below zero until the next run."""
    market = Market(session, rules)
    market.pay(0, 400)
    market.pay(0, 1_000, time=T0 + 14 * 3_600 + 55 * 60)  # 23:55 in Paris
    market.upload(0, [market.chains[0].void(2, time=T0 + 15 * 3_600 + 2 * 60)])  # 00:02 the next day
    first = _settle(engine, rules, DAY1)
    assert (first.paid_cents, _payable(session, market, 0)) == (0, 400)
    assert first.held == [(market.vendor_ids[0], 1_400, settlement.HELD_SHORT.format(available="4,00", net="14,00"))]
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 400
    assert _payable(session, market, 0) == 0
    assert settlement.payable_differences(session) == []
    assert_ledger_invariants(session)


def test_a_budget_with_a_vendor_account_that_disagrees_with_its_records_is_not_reconciled(session: Session, rules: Settings) -> None:
    from caisse.fund import service as fund

    market = Market(session, rules)
    _drift(session, market, 0, -3_000)
    result = fund.budget(session, month="2026-01", settings=rules)
    assert not result.reconciled
    assert f"commerçant {market.vendor_ids[0]} : compte à payer -30,00 €, enregistrements 0,00 € (écart -30,00 €)" in result.differences


def test_a_record_after_a_gap_waits_until_its_chain_is_verified(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    chain = market.chains[0]
    first, second = chain.pay(market.uid, 100), chain.pay(market.uid, 200)
    market.upload(0, [second])  # seq 1 has not arrived yet
    result = _settle(engine, rules, DAY1)
    assert result.paid_cents == 0 and result.held == [(market.vendor_ids[0], 200, settlement.HELD_UNVERIFIED)]
    market.upload(0, [first])
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 300


@pytest.mark.parametrize("iban", [None, "FR7630006000011234567890188"])
def test_a_vendor_without_a_valid_iban_is_held_back_with_a_french_reason(session: Session, engine: Engine, rules: Settings, iban: str | None) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(1, 250)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[0]).values(iban=iban))  # type: ignore[arg-type]
    session.commit()
    result = _settle(engine, rules, DAY1)
    assert result.paid_cents == 250
    [(vendor_id, amount, reason)] = result.held
    assert (vendor_id, amount) == (market.vendor_ids[0], 1_000)
    assert reason.startswith("IBAN manquant" if iban is None else "IBAN invalide")
    summary = next(Path(result.output_dir or "").glob("resume.csv")).read_text(encoding="utf-8-sig")
    assert "retenu" in summary and reason in summary


def test_a_second_person_must_approve_when_the_caisse_requires_it(session: Session, engine: Engine, rules: Settings) -> None:
    from tests.backend.settlement.test_payout import add_staff

    strict = rules.model_copy(update={"settlement_requires_approval": True})
    add_staff(session, "alice@caisse.test", "bob@caisse.test")
    market = Market(session, strict)
    market.pay(0, 1_000)
    prepared = _settle(engine, strict, by="alice@caisse.test")
    assert prepared.status == "prepared" and _paid_cents(session) == 0
    with pytest.raises(Conflict):
        settlement.approve_run(session, run_id=prepared.run_id, by="alice@caisse.test", settings=strict)
    session.rollback()
    settlement.approve_run(session, run_id=prepared.run_id, by="bob@caisse.test", settings=strict)
    session.commit()
    exported = _settle(engine, strict, by="alice@caisse.test")
    assert (exported.status, _paid_cents(session)) == ("exported", 1_000)


def test_the_statement_lists_each_transaction_and_the_total_in_french(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules, vendors=1)
    market.pay(0, 1_250)
    market.pay(0, 5)
    result = _settle(engine, rules)
    path = Path(result.output_dir or "") / f"releve-commercant-{market.vendor_ids[0]}.csv"
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines(), delimiter=";"))
    assert rows[1] == ["date", "heure", "terminal", "numéro", "opération", "montant (EUR)"]
    assert rows[2] == ["01/01/2026", "09:01:00", str(market.chains[0].terminal_id), "1", "paiement", "12,50"]
    assert rows[-1] == ["total", "", "", "2", "", "12,55"]


CRASH_POINTS = ["_insert_paid_lines", "approve_run", "write_statements", "_post_payouts"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_crash_anywhere_then_a_rerun_pays_every_payment_exactly_once(
    session: Session, engine: Engine, rules: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    market = Market(session, rules)
    for amount in (100, 250, 999):
        market.pay(0, amount)
    market.pay(1, 42)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"power cut in {crash_at}")

    with monkeypatch.context() as patch:
        patch.setattr(settlement, crash_at, crash)
        with pytest.raises(RuntimeError):
            _settle(engine, rules)
    assert _paid_cents(session) == 0  # nothing paid until the export commits
    result = _settle(engine, rules)
    assert (result.status, result.paid_cents) == ("exported", 1_391)
    assert _paid_cents(session) == 1_391 == settlement.settled_total_cents(session)
    assert _control_sum_cents(_sepa(folder)) == 1_391
    assert not list(folder.glob("*.en-cours"))
    accepted = session.execute(select(func.count()).select_from(TransactionRecord)).scalar_one()
    assert session.execute(select(func.count()).select_from(SettlementItem)).scalar_one() == accepted
    assert session.execute(select(func.count()).select_from(SettlementRun)).scalar_one() == 1
    assert_watermark_sound(session)
    assert_ledger_invariants(session)


def watermark(session: Session) -> int:
    counter = session.get(Counter, "settlement_scan_from")
    return 0 if counter is None else counter.value


def assert_watermark_sound(session: Session) -> None:
    """Below the watermark every accepted record is settled, or rejected (a void: its payment is)."""
    session.expire_all()
    forgotten = invariants.watermark_sound(session)
    session.commit()
    assert forgotten == []


def _id(session: Session, market: Market, index: int, seq: int) -> int:
    return session.execute(select(TransactionRecord.id).where(  # type: ignore[call-overload]
        TransactionRecord.terminal_id == market.chains[index].terminal_id, TransactionRecord.seq == seq)).scalar_one()


def test_the_watermark_stops_at_the_oldest_unsettled_record_and_late_uploads_land_above_it(
    session: Session, engine: Engine, rules: Settings
) -> None:
    from caisse.ingest import review

    market = Market(session, rules)
    market.pay(0, 100)
    market.pay(0, 200)
    market.pay(1, 300, time=T0 + 86_400)  # day 2: after day 1's cut-off
    first, second, tomorrow = _id(session, market, 0, 1), _id(session, market, 0, 2), _id(session, market, 1, 1)
    assert review.hold(session, record_ids=[first], reason="carte suspecte") == 1
    session.commit()
    assert _settle(engine, rules, DAY1).paid_cents == 200
    assert watermark(session) == first  # held: the next run starts there
    market.pay(0, 400, time=T0 + 3_600)  # stamped on day 1, uploaded after its run
    late = _id(session, market, 0, 3)
    assert late > tomorrow > second > first
    review.release(session, record_id=first, by="tresoriere@caisse.test")
    session.commit()
    # Between the watermark and the last settled record, what was settled is not paid again.
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 100 + 300 + 400
    assert watermark(session) == late + 1
    assert _paid_cents(session) == 1_000
    assert_watermark_sound(session)
    assert_ledger_invariants(session)


def test_the_watermark_waits_below_records_after_the_cutoff_and_held_vendors(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 500, time=T0 + 86_400)  # day 2
    market.pay(1, 250)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[1]).values(iban=None))  # type: ignore[arg-type]
    session.commit()
    assert _settle(engine, rules, DAY1).paid_cents == 0
    assert watermark(session) == _id(session, market, 0, 1)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[1]).values(iban=IBANS[0]))  # type: ignore[arg-type]
    session.commit()
    assert _settle(engine, rules, date(2026, 1, 2)).paid_cents == 750
    assert_watermark_sound(session)


_COPY_RECORD = (
    "INSERT INTO transaction_record (terminal_id, seq, raw, digest, kind, flags, time, amount_cents, ref_seq, card_uid,"
    " card_auth, prev_hash, household_id, status, reason, chain_verified, voided, received_at)"
    " SELECT terminal_id, :seq, raw, digest, kind, flags, time, :amount, ref_seq, card_uid, card_auth, prev_hash,"
    " household_id, status, reason, chain_verified, voided, received_at FROM transaction_record WHERE id = :template"
)


def test_a_run_waits_for_records_in_flight_so_none_falls_below_the_watermark(session: Session, engine: Engine, rules: Settings) -> None:
    """PostgreSQL takes an id before its transaction commits: a run that saw a larger id committed
    and not the smaller one in flight would leave it below the watermark, never paid."""
    import threading

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no insert is ever in flight during a run")
    market = Market(session, rules)
    market.pay(0, 100)
    template = _id(session, market, 0, 1)
    session.commit()
    with session_factory(engine)() as in_flight:
        in_flight.execute(text(_COPY_RECORD), {"seq": 1_000, "amount": 7, "template": template})  # not committed yet
        with session_factory(engine)() as other:
            other.execute(text(_COPY_RECORD), {"seq": 1_001, "amount": 11, "template": template})
            _post_copy(other, market, seq=1_001, amount_cents=11)
            other.commit()
        results: list[settlement.SettleResult] = []
        run = threading.Thread(target=lambda: results.append(_settle(engine, rules)))
        run.start()
        deadline = time.monotonic() + 30
        while run.is_alive() and not _waiting_for_lock(engine):
            assert time.monotonic() < deadline, "the run neither finished nor waited"
            run.join(timeout=0.05)
        _post_copy(in_flight, market, seq=1_000, amount_cents=7)  # the run waits on the records, not the accounts
        in_flight.commit()
    run.join(timeout=60)
    assert not run.is_alive()
    [result] = results
    assert result.paid_cents == 100 + 7 + 11  # the run waited for the insert in flight
    assert_watermark_sound(session)


def _post_copy(session: Session, market: Market, *, seq: int, amount_cents: int) -> None:
    """The copied record's payment, as ingestion posts it: a run pays only what the account holds."""
    member = ledger.member_code(card_service.get_card(session, uid_hex=market.uid.hex()).household_id)
    payable = ledger.vendor_payable_code(market.vendor_ids[0])
    ids = ledger.account_ids(session, codes=[member, payable])
    ledger.post_transfer(session, debit=ids[member], credit=ids[payable], amount_cents=amount_cents, kind=ledger.TransferKind.PAYMENT,
                         reference=ledger.record_reference(market.chains[0].terminal_id, seq))


def _waiting_for_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'transaction_record'::regclass")).scalar_one())


_examples = itertools.count()


@hypothesis_settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                     phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    days=st.lists(
        st.lists(st.tuples(st.integers(0, 2), st.integers(1, 5_000), st.booleans(), st.booleans()), max_size=6),
        min_size=1, max_size=3,
    ),
    crash=st.lists(st.sampled_from([None, *CRASH_POINTS]), min_size=3, max_size=3),
)
def test_the_ledger_stays_balanced_and_payouts_equal_settled_payments(
    engine: Engine, rules: Settings, days: list[list[tuple[int, int, bool, bool]]], crash: list[str | None]
) -> None:
    # Examples share the test's database: each gets its own vendors and its own dates (a run is
    # per date), and the invariants hold across all of them.
    first_day = 4 * next(_examples)
    with session_factory(engine)() as session:
        market = Market(session, rules, vendors=3)
        paid_before = _paid_cents(session)
        for day, taps in enumerate(days, start=first_day):
            for vendor, amount, void, late in taps:
                market.pay(vendor, amount, time=T0 + day * 86_400 + (3_600 if late else 0))
                if void:
                    market.upload(vendor, [market.chains[vendor].void(len(market.chains[vendor].records))])
            run_date = DAY1 + timedelta(days=day)
            point = crash[day - first_day]
            if point is not None:
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(settlement, point, _crash)
                    try:
                        settlement.settle(session_factory(engine), run_date=run_date, settings=rules)
                    except RuntimeError:
                        pass  # the crash point is not reached when a day has nothing to pay
            result = settlement.settle(session_factory(engine), run_date=run_date, settings=rules)
            assert result.status == "exported" and result.held == []
            if result.paid_cents:
                [path] = Path(result.output_dir or "").glob("virements-sepa.xml")
                assert _control_sum_cents(etree.parse(str(path)).getroot()) == result.paid_cents
        assert _paid_cents(session) == settlement.settled_total_cents(session)
        expected = sum(amount for taps in days for _, amount, void, _ in taps if not void)
        assert _paid_cents(session) - paid_before == expected
        assert_watermark_sound(session)
        assert_ledger_invariants(session)
        session.commit()


def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("crash")


def test_the_settle_commands_prepare_then_wait_for_the_treasurer(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app

    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("CAISSE_SETTLEMENT_REQUIRES_APPROVAL", "true")
    from caisse.db import make_engine
    from tests.backend.settlement.test_payout import add_staff

    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with session_factory(engine)() as session:
        add_staff(session, "alice@caisse.test", "bob@caisse.test")
    engine.dispose()
    prepared = runner.invoke(app, ["settle", "--date", "2026-01-01", "--by", "alice@caisse.test"])
    assert (prepared.exit_code, prepared.stdout.strip()) == (0, "1") and "settle-approve" in prepared.stderr
    assert runner.invoke(app, ["settle-approve", "1", "--by", "alice@caisse.test"]).exit_code == 1
    assert runner.invoke(app, ["settle-approve", "1", "--by", "bob@caisse.test"]).exit_code == 0
    exported = runner.invoke(app, ["settle", "--date", "2026-01-01"])
    assert exported.exit_code == 0 and "exporté" in exported.stderr
    assert runner.invoke(app, ["settle", "--date", "tomorrow"]).exit_code == 1


def test_a_vendor_is_registered_only_with_an_iban_whose_checksum_holds(session: Session) -> None:
    from caisse.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        vendor_service.create_vendor(session, name="Boulangerie", kind="bakery", zone="Sud", iban="FR7630006000011234567890188")
    assert refused.value.code == "invalid_iban"


def test_a_terminal_that_distrusts_its_clock_is_paid_the_night_its_payment_arrives(
        session: Session, engine: Engine, rules: Settings) -> None:
    """Its RTC restarted wrong (here years ahead) and the terminal said so (flag 0x02): the record
    is judged on its reception, so tonight's run pays it rather than a run in 2031."""
    market = Market(session, rules)
    with time_machine.travel(datetime(2026, 1, 1, 17, 0, tzinfo=UTC), tick=False):  # received on DAY1
        market.pay(0, 1_234, time=int(datetime(2031, 6, 1, tzinfo=UTC).timestamp()), flags=protocol.FLAG_UNTRUSTED_TIME)
    result = _settle(engine, rules, run_date=DAY1)
    assert (result.paid_cents, result.paid_records) == (1_234, 1)
    assert_ledger_invariants(session)
