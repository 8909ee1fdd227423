"""The bank's answers (caisse.settlement.bank_returns): rejected and returned transfers go back to the vendor and are
paid again; statements mark what was debited; a wrong file changes nothing.

The sample files in bank_files/ are written to the published ISO 20022 message definitions
(pain.002.001.03, camt.054.001.02, camt.053.001.02, the versions of the EPC SCT guideline and the
CFONB guides); `$name` placeholders take the ids the caisse gave its run."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from string import Template

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse.config import Settings
from caisse.errors import CaisseError
from caisse.ledger import postings as ledger
from caisse.models import AuditEvent, BankFile, BankReturn, LedgerTransfer, SettlementLine, SettlementRun
from caisse.settlement import bank_returns as bank
from caisse.settlement import runs as settlement
from caisse.vendors import service as vendor_service
from tests.backend.audit import assert_ledger_invariants
from tests.backend.settlement.test_payout import NEW_IBAN, add_staff
from tests.backend.settlement.test_settlement import IBANS, Market, _paid_cents, _settle, _texts

FILES = Path(__file__).parent / "bank_files"
DAY2, DAY3 = date(2026, 1, 2), date(2026, 1, 3)
STAFF = "alice@caisse.test"


def sample(name: str, **values: object) -> bytes:
    return Template((FILES / name).read_text(encoding="utf-8")).substitute(tag=name, **values).encode()


class Paid:
    """Two vendors paid by run 1 (10,00 and 25,00 EUR), a staff account to import with."""

    def __init__(self, session: Session, engine: Engine, rules: Settings) -> None:
        add_staff(session, STAFF, "bob@caisse.test")
        self.session, self.engine, self.rules = session, engine, rules
        self.market = Market(session, rules, vendors=2)
        self.market.pay(0, 1_000)
        self.market.pay(1, 2_500)
        result = _settle(engine, rules)
        assert result.status == "exported"
        self.run = session.get(SettlementRun, result.run_id)
        assert self.run is not None
        self.lines = {line.vendor_id: line for line in session.execute(
            select(SettlementLine).where(SettlementLine.run_id == result.run_id)).scalars()}
        self.ids = [self.lines[v].payment_id or "" for v in self.market.vendor_ids]
        session.commit()  # end the read: on SQLite every transaction holds the write lock

    def load(self, content: bytes) -> bank.ImportResult:
        result = bank.import_file(self.session, content=content, by=STAFF)
        self.session.commit()
        return result

    def rejection(self, reason: str, *, index: int = 0, amount: str | None = None) -> bytes:
        return sample("pain.002-rejet-paiement.xml", message_id=self.run.message_id, batch_id=self.run.payment_info_id,
                      rejected=self.ids[index], accepted=self.ids[1 - index], reason=reason,
                      amount=amount or f"{self.lines[self.market.vendor_ids[index]].amount_cents / 100:.2f}")


@pytest.fixture
def paid(session: Session, engine: Engine, rules: Settings) -> Paid:
    return Paid(session, engine, rules)


def _repaid(session: Session, run_id: int) -> list[tuple[int, int, str | None]]:
    return [(p.vendor_id, p.amount_cents, p.iban) for p in settlement.run_payouts(session, run_id=run_id)]


def test_a_rejected_payment_returns_to_its_vendor_once_and_waits_for_a_new_iban(paid: Paid, session: Session,
                                                                                 folder: Path) -> None:
    vendor = paid.market.vendor_ids[0]
    before = _paid_cents(session)
    result = paid.load(paid.rejection("AC04"))
    [returned] = result.returned
    assert (returned.payment_id, returned.amount_cents, returned.iban) == (paid.ids[0], 1_000, IBANS[0])
    assert returned.needs_new_iban and returned.reason == "compte clôturé (AC04)"
    assert _paid_cents(session) == before - 1_000
    assert ledger.balance_cents(session, code=ledger.vendor_payable_code(vendor)) == 1_000
    assert ledger.find_transfer(session, reference=f"return:{paid.ids[0]}") is not None
    assert session.execute(select(func.count()).where(AuditEvent.action == "bank.return")).scalar_one() == 1
    # The same file again, then another file naming the same payment: nothing moves twice.
    assert paid.load(paid.rejection("AC04")).already_imported
    again = paid.load(sample("camt.054-retour.xml", returned=paid.ids[0], amount="10.00", reason="AC04"))
    assert again.already_returned == [paid.ids[0]] and not again.returned
    assert _paid_cents(session) == before - 1_000
    assert_ledger_invariants(session)
    session.commit()
    # The next run holds it while the IBAN is the one that came back ...
    second = _settle(paid.engine, paid.rules, DAY2)
    assert second.held == [(vendor, 1_000, settlement.HELD_RETURNED.format(reason="compte clôturé (AC04)"))]
    assert _repaid(session, second.run_id) == []
    session.commit()
    # ... and pays it to the new IBAN, approved by a second person.
    change = vendor_service.request_iban_change(session, vendor_id=vendor, iban=NEW_IBAN, by=STAFF)
    vendor_service.approve_iban_change(session, change_id=change.id, by="bob@caisse.test")
    session.commit()
    paid.market.pay(0, 300, time=1_767_254_400 + 2 * 86_400 + 60)
    third = _settle(paid.engine, paid.rules, DAY3)
    assert _repaid(session, third.run_id) == [(vendor, 1_300, NEW_IBAN)]
    assert session.execute(select(BankReturn.repaid_run_id)).scalar_one() == third.run_id
    assert _paid_cents(session) == before + 300
    assert sorted(_texts(_sepa_of(folder, third.run_id), ".//CdtTrfTxInf/Amt/InstdAmt")) == ["13.00"]
    [statement] = folder.glob(f"*-reglement-{third.run_id}/releve-commercant-{vendor}.csv")
    rows = statement.read_text(encoding="utf-8-sig").splitlines()
    assert f"virement {paid.ids[0]} retourné par la banque (compte clôturé (AC04)), payé à nouveau;;;;;10,00" in rows
    assert rows[-1] == "total;;;1;;13,00"
    assert_ledger_invariants(session)
    session.commit()
    # A fourth run pays nothing more.
    assert _settle(paid.engine, paid.rules, date(2026, 1, 4)).paid_cents == 0


def _sepa_of(folder: Path, run_id: int):  # type: ignore[no-untyped-def]
    import xml.etree.ElementTree as etree

    [path] = folder.glob(f"*-reglement-{run_id}/virements-sepa.xml")
    return etree.parse(str(path)).getroot()


def test_a_transfer_returned_for_another_reason_is_paid_again_by_the_next_run(paid: Paid, session: Session) -> None:
    vendor = paid.market.vendor_ids[1]
    result = paid.load(sample("camt.054-retour.xml", returned=paid.ids[1], amount="25.00", reason="MS02"))
    [returned] = result.returned
    assert (returned.vendor_id, returned.reason, returned.needs_new_iban) == (vendor, "refusé par le bénéficiaire (MS02)", False)
    session.commit()
    second = _settle(paid.engine, paid.rules, DAY2)
    assert _repaid(session, second.run_id) == [(vendor, 2_500, IBANS[1])] and second.held == []
    assert_ledger_invariants(session)


def test_a_file_rejected_whole_returns_every_payment_of_its_run(paid: Paid, session: Session) -> None:
    result = paid.load(sample("pain.002-rejet-fichier.xml", message_id=paid.run.message_id))
    assert sorted(r.payment_id for r in result.returned) == sorted(paid.ids)
    assert {r.reason_code for r in result.returned} == {"FF01"}
    session.commit()
    second = _settle(paid.engine, paid.rules, DAY2)
    assert sorted(_repaid(session, second.run_id)) == sorted([(paid.market.vendor_ids[0], 1_000, IBANS[0]),
                                                               (paid.market.vendor_ids[1], 2_500, IBANS[1])])
    assert_ledger_invariants(session)


def test_a_statement_marks_the_transfers_debited_and_leaves_other_movements_alone(paid: Paid, session: Session) -> None:
    content = sample("camt.053-releve.xml", batch_id=paid.run.payment_info_id, first=paid.ids[0], second=paid.ids[1],
                     total="35.00")
    transfers = session.execute(select(func.count()).select_from(LedgerTransfer)).scalar_one()
    result = paid.load(content)
    assert (result.message_type, result.debited, result.returned) == ("camt.053.001.02", 2, [])
    session.expire_all()
    assert {line.debited_on for line in paid.lines.values()} == {date(2026, 1, 5)}
    assert session.execute(select(func.count()).select_from(LedgerTransfer)).scalar_one() == transfers


def test_a_return_of_a_transfer_the_caisse_did_not_send_is_reported_not_dropped(paid: Paid, session: Session) -> None:
    before = _paid_cents(session)
    result = paid.load(sample("camt.054-retour.xml", returned="REMB-2026-007", amount="25.00", reason="AC04"))
    assert (result.returned, result.foreign_returns) == ([], ["REMB-2026-007"])
    assert _paid_cents(session) == before


def test_a_duplicate_refused_by_the_bank_moves_no_money(paid: Paid, session: Session) -> None:
    before = _paid_cents(session)
    result = paid.load(paid.rejection("AM05"))
    assert result.duplicates_ignored == [paid.ids[0]] and not result.returned
    assert _paid_cents(session) == before


def _refused(paid: Paid, content: bytes, code: str, *, by: str = STAFF) -> CaisseError:
    with pytest.raises(CaisseError) as raised:
        bank.import_file(paid.session, content=content, by=by)
    paid.session.rollback()
    assert raised.value.code == code
    assert paid.session.execute(select(func.count()).select_from(BankFile)).scalar_one() == 0
    assert paid.session.execute(select(func.count()).select_from(BankReturn)).scalar_one() == 0
    return raised.value


def test_wrong_files_are_refused_in_french_and_change_nothing(paid: Paid, folder: Path) -> None:
    unknown = paid.rejection("AC04").replace(paid.ids[0].encode(), b"CAISSE-99-99")
    assert "CAISSE-99-99" in _refused(paid, unknown, "bank_payment_unknown").detail
    # One unknown payment in a file refuses the whole file, the good answers too.
    both = sample("pain.002-rejet-fichier.xml", message_id="CAISSE-R99-XXXX")
    _refused(paid, both, "bank_payment_unknown")
    [own_file] = folder.glob("*/virements-sepa.xml")  # the caisse's own pain.001, imported by mistake
    assert "ni un pain.002" in _refused(paid, own_file.read_bytes(), "bank_file_unknown").detail
    _refused(paid, b"IBAN;montant\nFR76;12,00\n", "bank_file_unreadable")
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">&b;</Document>')
    _refused(paid, bomb, "bank_file_unreadable")
    wrong_amount = paid.rejection("AC04", amount="100.00")
    assert "100,00 EUR" in _refused(paid, wrong_amount, "bank_amount_mismatch").detail


def test_an_unknown_account_cannot_import(paid: Paid) -> None:
    _refused(paid, paid.rejection("AC04"), "not_an_active_account", by="Le Trésorier")


def test_the_bank_commands_import_once_list_and_refuse_in_french(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  session: Session, engine: Engine, rules: Settings) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app

    url = str(rules.database_url)
    if not url.startswith("sqlite"):
        pytest.skip("the command reads CAISSE_DATABASE_URL: the SQLite variant covers it")
    paid = Paid(session, engine, rules)
    session.commit()
    engine.dispose()
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    runner = CliRunner()
    path = tmp_path / "rejet.xml"
    path.write_bytes(paid.rejection("AC01"))
    first = runner.invoke(app, ["banque", "importer", str(path), "--by", STAFF])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "1" and "IBAN incorrect (AC01)" in first.stderr and "nouvel IBAN" in first.stderr
    again = runner.invoke(app, ["banque", "importer", str(path), "--by", STAFF])
    assert again.exit_code == 0 and "déjà importé" in again.stderr and again.stdout.strip() == "0"
    listed = runner.invoke(app, ["banque", "retours", "--en-attente"])
    assert listed.exit_code == 0 and f"{paid.ids[0]}\t1\t" in listed.stdout and "en attente" in listed.stdout
    path.write_bytes(paid.rejection("AC01").replace(paid.ids[0].encode(), b"CAISSE-7-7"))
    unknown = runner.invoke(app, ["banque", "importer", str(path), "--by", STAFF])
    assert unknown.exit_code == 1 and "CAISSE-7-7 est inconnu" in unknown.stderr and "Traceback" not in unknown.output
