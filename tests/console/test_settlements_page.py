"""Settlement pages in process: prepared by a coordinator, approved by the treasurer (a second
person), the SEPA file and statements downloaded; every step audited. SQLite only:
caisse.settlement.runs itself is tested on both databases (tests/backend/settlement/test_settlement.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from caisse import audit
from caisse.config import Settings
from caisse.models import Role, SettlementRun
from tests.backend.settlement.test_settlement import Market
from tests.console.conftest import TestClient, post_form, sign_in
from tests.fixtures.database import make_settings

# Page logic only: the services under them are tested on both databases (tests/backend).
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return make_settings(str(engine.url), settlement_dir=str(tmp_path / "reglements"), settlement_requires_approval=True)


@pytest.fixture
def market(session: Session, settings: Settings) -> Market:
    market = Market(session, settings)
    market.pay(0, 1_250)
    market.pay(1, 800)
    market.pay(0, 400)
    return market


def _prepare(client: TestClient, day: str = "2026-01-01") -> str:
    answer = post_form(client, "/console/settlements", "/console/settlements", {"run_date": day})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


@SQLITE_ONLY
def test_prepared_by_a_coordinator_approved_by_the_treasurer_then_the_sepa_file_downloads(
    console_client: TestClient, users: object, session: Session, market: Market,
) -> None:
    sign_in(console_client, Role.COORDINATOR)
    run_url = _prepare(console_client)
    page = console_client.get(run_url).text
    assert "à approuver" in page and "16,50 €" in page and "Approuver le règlement" not in page
    assert post_form(console_client, run_url, f"{run_url}/approve", {}).status_code == 403  # not a treasurer

    console_client.cookies.clear()  # another person signs in
    sign_in(console_client, Role.TREASURER)
    approved = post_form(console_client, run_url, f"{run_url}/approve", {})
    assert approved.status_code == 303
    page = console_client.get(run_url).text
    assert "exporté" in page and "Fichier de virements SEPA" in page
    sepa = console_client.get(f"{run_url}/files/virements-sepa.xml")
    assert sepa.status_code == 200 and sepa.headers["content-type"].startswith("application/xml")
    assert "attachment" in sepa.headers["content-disposition"]
    assert b'<InstdAmt Ccy="EUR">16.50</InstdAmt>' in sepa.content and b'<InstdAmt Ccy="EUR">8.00</InstdAmt>' in sepa.content
    statement = next(name for name in _links(page, run_url) if name.startswith("releve-commercant-") and name.endswith(".csv"))
    assert console_client.get(f"{run_url}/files/{statement}").status_code == 200
    assert console_client.get(f"{run_url}/files/..%2Fcaisse.db").status_code == 404
    assert console_client.get(f"{run_url}/files/absent.xml").status_code == 404

    actions = [(e.action, e.actor) for e in audit.events(session, action_prefix="settlement.")]
    assert actions == [("settlement.export", "treasurer@caisse.test"), ("settlement.approve", "treasurer@caisse.test"),
                       ("settlement.prepare", "coordinator@caisse.test")]
    session.commit()


@SQLITE_ONLY
def test_whoever_prepared_a_run_cannot_approve_it(console_client: TestClient, users: object, session: Session, market: Market) -> None:
    sign_in(console_client, Role.TREASURER)
    run_url = _prepare(console_client)
    assert "Approuver le règlement" not in console_client.get(run_url).text
    refused = post_form(console_client, run_url, f"{run_url}/approve", {})
    assert refused.status_code == 409 and "Une autre personne" in refused.text
    run = session.get(SettlementRun, int(run_url.rsplit("/", 1)[1]))
    assert run is not None and run.status == "prepared" and run.approved_by is None
    session.commit()


@SQLITE_ONLY
def test_a_day_not_over_is_refused_in_french(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.TREASURER)
    answer = post_form(console_client, "/console/settlements", "/console/settlements", {"run_date": "2999-01-01"})
    assert answer.status_code == 422 and "pas terminée" in answer.text
    answer = post_form(console_client, "/console/settlements", "/console/settlements", {"run_date": "hier"})
    assert answer.status_code == 422 and "Date de règlement invalide" in answer.text


@SQLITE_ONLY
def test_the_committee_has_no_settlement_page(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.COMMITTEE)
    assert console_client.get("/console/settlements").status_code == 403


def _links(page: str, run_url: str) -> list[str]:
    prefix = f'href="{run_url}/files/'
    return [chunk.split('"', 1)[0] for chunk in page.split(prefix)[1:]]


@SQLITE_ONLY
def test_a_new_iban_typed_by_one_person_waits_for_another_and_the_run_page_shows_the_frozen_payee(
    console_client: TestClient, users: object, session: Session, market: Market,
) -> None:
    from caisse.vendors import service as vendor_service

    vendor_id = market.vendor_ids[0]
    sign_in(console_client, Role.COORDINATOR)
    run_url = _prepare(console_client)
    vendor_url = f"/console/vendors/{vendor_id}"
    form = {"name": "Ferme & Fils", "kind": "producer", "zone": "Nord", "market": "", "iban": "DE02120300000000202051",
            "convention_status": "active", "convention_start": "2026-01-01", "convention_end": ""}
    edited = post_form(console_client, vendor_url, vendor_url, form)
    assert edited.status_code == 303
    page = console_client.get(vendor_url).text
    assert "en attente" in page and "Ferme et Fils" in page and "Approuver le nouvel IBAN" not in page
    session.expire_all()
    assert vendor_service.get_vendor(session, vendor_id=vendor_id).iban == "FR1420041010050500013M02606"
    session.commit()

    console_client.cookies.clear()
    sign_in(console_client, Role.TREASURER)
    change = vendor_service.pending_iban_change(session, vendor_id=vendor_id)
    assert change is not None
    session.commit()
    approved = post_form(console_client, vendor_url, f"{vendor_url}/iban/{change.id}/approve", {})
    assert approved.status_code == 303
    page = console_client.get(run_url).text  # prepared before the change: pays the IBAN it froze
    assert "FR1420041010050500013M02606" in page and "DE02120300000000202051" not in page and "Ferme 0" in page
    actions = [e.action for e in audit.events(session, subjects=[f"vendor:{vendor_id}"])]
    assert actions[:3] == ["vendor.iban_approve", "vendor.iban_request", "vendor.edit"]
    session.commit()


@SQLITE_ONLY
def test_the_run_page_shows_the_transfers_the_bank_returned(
    console_client: TestClient, users: object, session: Session, engine: Engine, market: Market,
) -> None:
    from datetime import date

    from caisse.db import session_factory
    from caisse.settlement import bank_returns as bank
    from caisse.settlement import runs as settlement
    from tests.backend.settlement.test_bank import sample
    from tests.console.conftest import EMAILS

    sessions = session_factory(engine)
    prepared = settlement.settle(sessions, run_date=date(2026, 1, 1), settings=market.settings,
                                 by=EMAILS[Role.COORDINATOR])
    with sessions() as other:
        settlement.approve_run(other, run_id=prepared.run_id, by=EMAILS[Role.TREASURER], settings=market.settings)
        settlement.export_run(other, run_id=prepared.run_id, settings=market.settings)
        [first, _] = settlement.run_payouts(other, run_id=prepared.run_id)
        bank.import_file(other, by=EMAILS[Role.TREASURER], content=sample(
            "camt.054-retour.xml", returned=first.payment_id, amount=f"{first.amount_cents / 100:.2f}", reason="AC04"))
        other.commit()
    sign_in(console_client, Role.TREASURER)
    page = console_client.get(f"/console/settlements/{prepared.run_id}").text
    assert "Virements retournés par la banque" in page and first.payment_id in page
    assert "compte clôturé (AC04)" in page and "en attente" in page
