"""Who is paid, to which account, in which file: payees frozen at preparation, IBAN changes by two
people, approval by a real second account, settlement files that survive a crash, TARGET2 days,
SEPA names and countries (docs/settlement.md, "Payees and files")."""

from __future__ import annotations

import getpass
import json
import re
import xml.etree.ElementTree as etree
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import Engine, update
from sqlmodel import Session

from caisse import audit
from caisse.config import Settings, sepa_text
from caisse.db import session_factory
from caisse.errors import CaisseError, Conflict, InvalidInput
from caisse.models import ConsoleUser, Role, SettlementRun, Vendor
from caisse.settlement import runs as settlement
from caisse.settlement import sepa
from caisse.staff import accounts
from caisse.vendors import service as vendor_service
from tests.backend.audit import assert_ledger_invariants
from tests.backend.settlement.test_settlement import IBANS, Market, _paid_cents, _sepa, _settle, _texts

DAY1 = date(2026, 1, 1)
NEW_IBAN = "DE02120300000000202051"
SEPA_TEXT = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]+$")


def add_staff(session: Session, *emails: str, role: Role = Role.TREASURER, active: bool = True) -> None:
    for email in emails:
        session.add(ConsoleUser(email=email, role=role, password_hash="!", active=active))
    session.commit()


@pytest.fixture
def strict(rules: Settings) -> Settings:
    return rules.model_copy(update={"settlement_requires_approval": True})


# Case 6: the IBAN paid is frozen at preparation ------------------------------------------------

def test_an_iban_changed_after_preparation_is_not_the_one_paid(session: Session, engine: Engine, strict: Settings, folder: Path) -> None:
    add_staff(session, "alice@caisse.test", "bob@caisse.test")
    market = Market(session, strict)
    market.pay(0, 1_000)
    prepared = _settle(engine, strict, by="alice@caisse.test")
    vendor_id = market.vendor_ids[0]
    # Alice asks for a new IBAN, Bob approves it: a legitimate change, but the run was prepared before.
    change = vendor_service.request_iban_change(session, vendor_id=vendor_id, iban=NEW_IBAN, by="alice@caisse.test")
    vendor_service.approve_iban_change(session, change_id=change.id, by="bob@caisse.test")
    session.commit()
    assert vendor_service.get_vendor(session, vendor_id=vendor_id).iban == NEW_IBAN
    [line] = settlement.run_payouts(session, run_id=prepared.run_id)
    assert (line.vendor_id, line.iban) == (vendor_id, IBANS[0])  # what the approver sees
    settlement.approve_run(session, run_id=prepared.run_id, by="bob@caisse.test", settings=strict)
    session.commit()
    assert _settle(engine, strict, by="alice@caisse.test").status == "exported"
    root = _sepa(folder)
    assert _texts(root, ".//CdtrAcct/Id/IBAN") == [IBANS[0]]
    statement = (Path(_run(session, prepared.run_id).output_dir or "") / f"releve-commercant-{vendor_id}.csv").read_text(encoding="utf-8-sig")
    assert IBANS[0] in statement and NEW_IBAN not in statement
    # The next run pays the new IBAN.
    market.pay(0, 500, time=1_767_254_400 + 86_400)
    add_staff(session, "carol@caisse.test")
    second = _settle(engine, strict, date(2026, 1, 2), by="alice@caisse.test")
    [line] = settlement.run_payouts(session, run_id=second.run_id)
    assert line.iban == NEW_IBAN


def _run(session: Session, run_id: int) -> SettlementRun:
    session.expire_all()
    run = session.get(SettlementRun, run_id)
    assert run is not None
    return run


def test_one_person_cannot_change_an_iban_alone(session: Session, engine: Engine) -> None:
    add_staff(session, "alice@caisse.test", "bob@caisse.test")
    add_staff(session, "gone@caisse.test", active=False)
    vendor = vendor_service.create_vendor(session, name="Ferme", kind="producer", zone="Nord", iban=IBANS[0], by="alice@caisse.test")
    assert vendor.id is not None
    # The console's edit form: the IBAN typed there becomes a request, never the vendor's IBAN.
    edited = vendor_service.update_vendor(session, vendor_id=vendor.id, name="Ferme", kind="producer", zone="Nord",
                                 market="Marché des Arceaux", iban=NEW_IBAN, by="alice@caisse.test")
    assert edited.vendor.iban == IBANS[0] and edited.iban_change is not None
    with pytest.raises(Conflict) as same_person:
        vendor_service.approve_iban_change(session, change_id=edited.iban_change.id, by="ALICE@caisse.test")
    assert same_person.value.code == "second_person_required"
    for nobody in ("mallory", "gone@caisse.test"):
        with pytest.raises(InvalidInput) as refused:
            vendor_service.approve_iban_change(session, change_id=edited.iban_change.id, by=nobody)
        assert refused.value.code == "not_an_active_account"
    with pytest.raises(Conflict) as twice:
        vendor_service.request_iban_change(session, vendor_id=vendor.id, iban=IBANS[1], by="bob@caisse.test")
    assert twice.value.code == "iban_change_pending"
    assert vendor_service.get_vendor(session, vendor_id=vendor.id).iban == IBANS[0]
    vendor_service.approve_iban_change(session, change_id=edited.iban_change.id, by="bob@caisse.test", os_user="bob-os")
    session.commit()
    assert vendor_service.get_vendor(session, vendor_id=vendor.id).iban == NEW_IBAN
    with pytest.raises(Conflict):  # decided once
        vendor_service.approve_iban_change(session, change_id=edited.iban_change.id, by="bob@caisse.test")
    session.rollback()
    events = [(e.action, e.actor) for e in audit.events(session, subjects=[f"vendor:{vendor.id}"])]
    assert events == [("vendor.iban_approve", "bob@caisse.test"), ("vendor.iban_request", "alice@caisse.test"),
                      ("vendor.edit", "alice@caisse.test"), ("vendor.create", "alice@caisse.test")]
    [approval] = audit.events(session, action_prefix="vendor.iban_approve")
    assert json.loads(approval.detail or "{}")["os_user"] == "bob-os"
    session.commit()


def test_a_rejected_iban_change_changes_nothing(session: Session) -> None:
    add_staff(session, "alice@caisse.test", "bob@caisse.test")
    vendor = vendor_service.create_vendor(session, name="Ferme", kind="producer", zone="Nord", iban=IBANS[0], by="alice@caisse.test")
    assert vendor.id is not None
    change = vendor_service.request_iban_change(session, vendor_id=vendor.id, iban=NEW_IBAN, by="alice@caisse.test")
    vendor_service.reject_iban_change(session, change_id=change.id, by="bob@caisse.test")
    session.commit()
    assert vendor_service.get_vendor(session, vendor_id=vendor.id).iban == IBANS[0]
    assert vendor_service.pending_iban_change(session, vendor_id=vendor.id) is None


# Case 7: approval names an active console account other than the preparer -----------------------

def test_approval_needs_an_active_account_other_than_the_preparer(session: Session, engine: Engine, strict: Settings) -> None:
    add_staff(session, "alice@caisse.test", "bob@caisse.test")
    add_staff(session, "gone@caisse.test", active=False)
    market = Market(session, strict)
    market.pay(0, 1_000)
    prepared = _settle(engine, strict, by="alice@caisse.test")
    for by, code in (("anyone", "not_an_active_account"), ("gone@caisse.test", "not_an_active_account"),
                     (accounts.AUTOMATIC, "not_an_active_account"), (" Alice@Caisse.test ", "second_person_required")):
        with pytest.raises(CaisseError) as refused:
            settlement.approve_run(session, run_id=prepared.run_id, by=by, settings=strict)
        assert refused.value.code == code
        session.rollback()
    assert _run(session, prepared.run_id).status == "prepared"
    settlement.approve_run(session, run_id=prepared.run_id, by="bob@caisse.test", settings=strict, os_user="bob-os")
    session.commit()
    [approval] = audit.events(session, action_prefix="settlement.approve")
    assert (approval.actor, json.loads(approval.detail or "{}")["os_user"]) == ("bob@caisse.test", "bob-os")
    session.commit()


def test_a_run_is_prepared_by_the_timer_or_by_an_active_account(session: Session, engine: Engine, strict: Settings) -> None:
    market = Market(session, strict)
    market.pay(0, 1_000)
    with pytest.raises(InvalidInput):
        _settle(engine, strict, by="nobody")
    assert _settle(engine, strict).status == "prepared"  # the nightly timer: a person approves


def test_the_cli_approval_refuses_a_typed_name_and_records_the_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app
    from caisse.db import make_engine

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("CAISSE_SETTLEMENT_REQUIRES_APPROVAL", "true")
    monkeypatch.setattr(getpass, "getuser", lambda: "claire-os")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(url)
    with session_factory(engine)() as session:
        add_staff(session, "alice@caisse.test", "claire@caisse.test")
    prepared = runner.invoke(app, ["settle", "--date", "2026-01-01", "--by", "alice@caisse.test"])
    assert prepared.exit_code == 0, prepared.output
    typed = runner.invoke(app, ["settle-approve", "1", "--by", "Le Trésorier"])
    assert typed.exit_code == 1 and "compte actif" in typed.stderr and "Traceback" not in typed.output
    assert runner.invoke(app, ["settle-approve", "1", "--by", "alice@caisse.test"]).exit_code == 1
    approved = runner.invoke(app, ["settle-approve", "1", "--by", "claire@caisse.test"])
    assert approved.exit_code == 0, approved.output
    with session_factory(engine)() as session:
        [event] = audit.events(session, action_prefix="settlement.approve")
        assert event.actor == "claire@caisse.test" and json.loads(event.detail or "{}")["os_user"] == "claire-os"
    engine.dispose()


# Case 11: settlement files --------------------------------------------------------------------

def _ids(root: etree.Element) -> list[str]:
    return _texts(root, ".//GrpHdr/MsgId") + _texts(root, ".//PmtInf/PmtInfId") + _texts(root, ".//CdtTrfTxInf/PmtId/EndToEndId")


def test_a_crash_between_the_rename_and_the_commit_rewrites_the_same_file(
    session: Session, engine: Engine, rules: Settings, folder: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(1, 250)
    sessions = session_factory(engine)
    export_run = settlement.export_run

    def exporting(session: Session, **kwargs: object) -> SettlementRun:
        session.info["exported"] = True  # the files are in place: the next commit is the export's
        return export_run(session, **kwargs)  # type: ignore[arg-type]

    def crashing_sessions() -> Session:
        opened = sessions()
        real_commit = opened.commit

        def commit() -> None:
            if opened.info.get("exported"):
                raise RuntimeError("power cut after the rename, before the commit")
            real_commit()

        monkeypatch.setattr(opened, "commit", commit)
        return opened

    with monkeypatch.context() as patch:
        patch.setattr(settlement, "export_run", exporting)
        with pytest.raises(RuntimeError, match="power cut"):
            settlement.settle(crashing_sessions, run_date=DAY1, settings=rules)
    assert _paid_cents(session) == 0
    [written] = folder.glob("*/virements-sepa.xml")
    first = written.read_bytes()
    first_ids = _ids(etree.fromstring(first))
    assert len(first_ids) == 4 and all(first_ids)
    result = _settle(engine, rules)
    assert result.status == "exported" and _paid_cents(session) == 1_250
    again = _sepa(folder)
    assert _ids(again) == first_ids
    assert (Path(result.output_dir or "") / "virements-sepa.xml").read_bytes() == first  # same day: byte for byte
    assert_ledger_invariants(session)


def test_the_execution_date_is_a_target2_business_day_never_in_the_past(session: Session, engine: Engine, rules: Settings,
                                                                        folder: Path) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000, time=int(datetime(2026, 4, 2, 9, tzinfo=UTC).timestamp()))  # Thursday before Easter
    market.pay(1, 700, time=int(datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()))
    # Settled on Good Friday at night: Friday and Easter Monday are TARGET2 holidays.
    with time_machine.travel(datetime(2026, 4, 3, 0, 30, tzinfo=UTC), tick=False):
        late = _settle(engine, rules, date(2026, 1, 5))  # settled months late: never dated in the past
        easter = _settle(engine, rules, date(2026, 4, 2))
    dates = {}
    for result in (late, easter):
        root = etree.parse(str(Path(result.output_dir or "") / "virements-sepa.xml")).getroot()
        dates[result.run_id] = _texts(root, ".//PmtInf/ReqdExctnDt")
    assert dates == {late.run_id: ["2026-04-07"], easter.run_id: ["2026-04-07"]}
    assert sepa.execution_date(date(2026, 12, 24), today=date(2026, 12, 24)) == date(2026, 12, 24)
    assert sepa.execution_date(date(2026, 12, 24), today=date(2026, 12, 25)) == date(2026, 12, 28)
    assert sepa.execution_date(date(2026, 12, 30), today=date(2026, 12, 31)) == date(2026, 12, 31)
    assert sepa.execution_date(date(2027, 1, 1), today=date(2026, 12, 31)) == date(2027, 1, 4)


@pytest.mark.parametrize(("name", "expected"), [
    ("Ferme & Fils", "Ferme et Fils"),
    ("« Le Marché » d'Agnès", "Le Marche d'Agnes"),
    ("🍎 Vergers du Lez 🍐", "Vergers du Lez"),
    ("Boulangerie_Œuf #1 @Arceaux", "Boulangerie OEuf 1 Arceaux"),
])
def test_a_name_is_transliterated_to_the_sepa_characters(name: str, expected: str) -> None:
    assert sepa_text(name) == expected
    assert SEPA_TEXT.match(expected)


def test_staff_see_the_name_the_bank_receives_and_an_untranslatable_name_is_refused(session: Session) -> None:
    vendor = vendor_service.create_vendor(session, name="Ferme & Fils « Bio »", kind="producer", zone="Nord", iban=IBANS[0], by="test")
    assert vendor_service.sepa_name_notice(vendor.name) == "Nom transmis à la banque (caractères SEPA) : « Ferme et Fils Bio »."
    assert vendor_service.sepa_name_notice("Ferme des Lilas") is None
    with pytest.raises(InvalidInput) as refused:
        vendor_service.create_vendor(session, name="🍎🍐", kind="producer", zone="Nord", by="test")
    assert refused.value.code == "name_not_sepa"


def test_a_legacy_name_or_iban_the_bank_refuses_holds_its_vendor_not_the_whole_run(session: Session, engine: Engine,
                                                                                   rules: Settings, folder: Path) -> None:
    market = Market(session, rules, vendors=3)
    for index in range(3):
        market.pay(index, 1_000 + index)
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[0]).values(name="🍎🍐 «»"))  # type: ignore[arg-type]
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[1]).values(name="Ferme & Fils « Bio »"))  # type: ignore[arg-type]
    session.execute(update(Vendor).where(Vendor.id == market.vendor_ids[2]).values(iban="SA0380000000608010167519"))  # type: ignore[arg-type]
    session.commit()
    result = _settle(engine, rules)
    assert result.status == "exported" and result.paid_cents == 1_001
    held = {vendor: reason for vendor, _, reason in result.held}
    assert held[market.vendor_ids[0]].startswith("nom du commerçant intransmissible")
    assert held[market.vendor_ids[2]].startswith("IBAN hors de la zone SEPA")
    root = _sepa(folder)
    names = _texts(root, ".//Cdtr/Nm") + _texts(root, ".//Dbtr/Nm") + _texts(root, ".//InitgPty/Nm")
    assert "Ferme et Fils Bio" in names and all(SEPA_TEXT.match(name) for name in names)
    assert all(SEPA_TEXT.match(text) for text in _texts(root, ".//RmtInf/Ustrd"))


def test_a_non_sepa_iban_is_refused_at_entry_in_french(session: Session) -> None:
    from caisse.errors import french

    for iban in ("SA0380000000608010167519", "BR1800360305000010009795493C1"):
        with pytest.raises(InvalidInput) as refused:
            vendor_service.create_vendor(session, name="Ferme", kind="producer", zone="Nord", iban=iban, by="test")
        assert refused.value.code == "iban_outside_sepa" and "zone SEPA" in french(refused.value)
    assert vendor_service.create_vendor(session, name="Ferme", kind="producer", zone="Nord", iban="GB82WEST12345698765432", by="test").id


def test_the_debtor_name_setting_is_refused_with_its_sepa_form() -> None:
    from pydantic import ValidationError

    from tests.fixtures.database import make_settings

    with pytest.raises(ValidationError) as refused:
        make_settings(debtor_name="Caisse & Cie « Écusson »")
    assert "Caisse et Cie Ecusson" in str(refused.value)
    assert make_settings(debtor_name="Caisse alimentaire de Montpellier").debtor_name

