"""Transactions, budget and flows pages, in process on both databases: held records decided
and audited, filters, role limits, and charts with their table view."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text
from sqlmodel import Session

from caisse import audit
from caisse.config import Settings
from caisse.ingest import review
from caisse.ingest.upload import Outcome, ingest_batch
from caisse.models import Role, TransactionRecord
from tests.backend.factories import new_uid
from tests.backend.reports.test_flows import Town, _at
from tests.console.conftest import TestClient, post_form, sign_in

# Page logic only: the services under them are tested on both databases (tests/backend).
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def town(session: Session, settings: Settings) -> Town:
    town = Town(session, settings)
    town.pay("Ferme des Lilas", "Diallo", 1_250, "2026-01-05T09:00")
    town.pay("Épicerie Bio", "Martin", 3_000, "2026-01-10T10:00")
    town.pay("Stand Primeurs", "Diallo", 700, "2026-02-15T08:00")
    held_ids[id(town)] = town.record_id("Stand Primeurs", 1)
    review.hold(session, record_ids=[held_ids[id(town)]], reason="compteur SUN déjà vu")
    session.commit()  # on SQLite an open transaction holds the write lock: the server could not write
    return town


held_ids: dict[int, int] = {}


def _held_id(town: Town) -> int:
    return held_ids[id(town)]


def _read_done(session: Session) -> None:
    session.commit()  # end the test's read before the server writes (SQLite: BEGIN IMMEDIATE)


def test_a_held_payment_is_listed_with_its_reason_and_released_with_an_audit_event(
    console_client: TestClient, users: object, session: Session, town: Town,
) -> None:
    sign_in(console_client, Role.COORDINATOR)
    page = console_client.get("/console/transactions")
    assert page.status_code == 200 and "compteur SUN déjà vu" in page.text and "7,00 €" in page.text
    answer = post_form(console_client, "/console/transactions", f"/console/transactions/{_held_id(town)}/release", {})
    assert answer.status_code == 303
    session.expire_all()
    record = session.get(TransactionRecord, _held_id(town))
    assert record is not None and (record.review, record.reviewed_by) == ("released", "coordinator@caisse.test")
    [event] = audit.events(session, action_prefix="record.")
    assert (event.actor, event.action, event.subject) == ("coordinator@caisse.test", "record.release", f"record:{_held_id(town)}")
    _read_done(session)
    assert "Aucun paiement n'attend de décision" in console_client.get("/console/transactions").text


@SQLITE_ONLY
def test_a_rejected_payment_is_voided_and_a_second_decision_is_refused(
    console_client: TestClient, users: object, session: Session, town: Town,
) -> None:
    sign_in(console_client, Role.TREASURER)
    assert post_form(console_client, "/console/transactions", f"/console/transactions/{_held_id(town)}/reject", {}).status_code == 303
    again = post_form(console_client, "/console/transactions", f"/console/transactions/{_held_id(town)}/release", {})
    assert again.status_code == 303
    flash = console_client.get(again.headers["location"]).text
    assert "attend plus de décision" in flash
    session.expire_all()
    record = session.get(TransactionRecord, _held_id(town))
    assert record is not None and record.review == "rejected" and record.voided
    assert [(e.action, e.subject) for e in audit.events(session, action_prefix="record.")] == [("record.reject", f"record:{_held_id(town)}")]


@SQLITE_ONLY
def test_refusal_reasons_and_audit_actions_are_shown_in_french(
    console_client: TestClient, users: object, session: Session, settings: Settings, town: Town,
) -> None:
    chain = town.chains["Ferme des Lilas"]
    tap = chain.pay(new_uid(), 900, time=_at("2026-01-06T09:00"))
    result = ingest_batch(session, terminal_id=chain.terminal_id, raw_records=[tap], settings=settings)
    assert [r.status for r in result.results] == [Outcome.REJECTED]
    session.commit()
    sign_in(console_client, Role.ADMIN)
    refused = console_client.get("/console/transactions?status=refused").text
    assert "refusé : carte inconnue" in refused and "unknown_card" not in refused
    assert post_form(console_client, "/console/transactions", f"/console/transactions/{_held_id(town)}/release", {}).status_code == 303
    journal = console_client.get("/console/audit").text
    assert "paiement libéré" in journal and "record.release" not in journal.split("<tbody>")[1]
    filtered = console_client.get("/console/audit?action=record.release").text
    assert '<option value="record.release" selected>paiement libéré</option>' in filtered
    assert filtered.split("<tbody>")[1].count("<tr>") == 1


def test_filters_by_card_status_vendor_and_days(console_client: TestClient, users: object, session: Session, town: Town) -> None:
    sign_in(console_client, Role.ADMIN)

    def amounts(query: str) -> list[str]:
        page = console_client.get(f"/console/transactions?{query}")
        assert page.status_code == 200
        section = page.text.split('id="search-title"')[1]
        return re.findall(r'<td class="num">([0-9 ,\u202f]+) €</td>', section)

    assert amounts("") == ["7,00", "30,00", "12,50"]  # newest first
    assert amounts(f"card={town.uids['Diallo'].hex()}") == ["7,00", "12,50"]
    assert amounts("status=held") == ["7,00"]
    assert amounts(f"vendor={town.vendor_ids['Épicerie Bio']}") == ["30,00"]
    assert amounts("du=2026-01-06&au=2026-02-14") == ["30,00"]
    bad = console_client.get("/console/transactions?card=zz")
    assert bad.status_code == 200 and 'role="alert"' in bad.text
    for vendor in ("²", "99999999999999999999"):  # not a 500: '²' passes isdigit(), 20 digits overflow
        bad = console_client.get(f"/console/transactions?vendor={vendor}")
        assert bad.status_code == 200 and 'role="alert"' in bad.text


@SQLITE_ONLY
def test_the_committee_cannot_open_transactions_but_sees_budget_and_flows_without_names(
    console_client: TestClient, users: object, town: Town,
) -> None:
    sign_in(console_client, Role.COMMITTEE)
    assert console_client.get("/console/transactions").status_code == 403
    assert post_form(console_client, "/console/flows", f"/console/transactions/{_held_id(town)}/release", {}).status_code == 403
    flows = console_client.get("/console/flows?du=2026-01&au=2026-02")
    assert flows.status_code == 200
    assert "Diallo" not in flows.text and "Martin" not in flows.text and town.uids["Diallo"].hex() not in flows.text
    assert "Ferme des Lilas" in flows.text and "<svg" in flows.text
    assert console_client.get("/console/budget?du=2026-01&au=2026-02").status_code == 200


@SQLITE_ONLY
def test_flows_page_draws_each_chart_with_a_table_of_the_same_numbers(console_client: TestClient, users: object, town: Town) -> None:
    sign_in(console_client, Role.COMMITTEE)
    page = console_client.get("/console/flows?du=2026-01&au=2026-02").text
    assert page.count('role="img"') == 5 and page.count("Voir les chiffres en tableau") == 5
    assert "<title>Producteurs, 2026-01 : 12,50</title>" in page
    kinds = '<th scope="col" class="num">Épiceries</th><th scope="col" class="num">Étals de marché</th><th scope="col" class="num">Producteurs</th>'
    assert kinds in page
    assert '<th scope="row">2026-01</th><td class="num">30,00</td><td class="num">0,00</td><td class="num">12,50</td>' in page
    assert "29,4 %" in page  # 1 250 of 4 250 reached producers in January


@SQLITE_ONLY
def test_a_bad_period_is_a_french_message_not_an_error(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.COMMITTEE)
    for path in ("/console/flows?du=2026-05&au=2026-01", "/console/budget?du=2026-13&au=2026-12"):
        page = console_client.get(path)
        assert page.status_code == 200 and 'role="alert"' in page.text


@SQLITE_ONLY
def test_the_budget_page_lists_every_difference_with_the_ledger(
    console_client: TestClient, users: object, session: Session, town: Town,
) -> None:
    sign_in(console_client, Role.COMMITTEE)
    assert "Conforme au grand livre : aucun écart." in console_client.get("/console/budget?du=2026-01&au=2026-02").text
    session.execute(text("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 100"
                         " WHERE code = (SELECT MIN(code) FROM ledger_account WHERE kind = 'member')"))
    session.commit()
    page = console_client.get("/console/budget?du=2026-01&au=2026-02").text
    assert "Le budget ne concorde pas avec le grand livre (1 écart(s))" in page
    assert "(écart 1,00 €)</li>" in page and "soldes des foyers" in page
