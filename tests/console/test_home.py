"""The console's home: households below zero, by name for the staff, as a total for the others;
what waits for a person longer than CAISSE_OVERDUE_AFTER_DAYS (caisse.reports.overdue), line by line for
those who may see transactions, as a count for the committee."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import DateTime, Engine, bindparam, text
from sqlmodel import Session

from caisse.cards.versions import bump_cards
from caisse.config import Settings
from caisse.db import session_factory
from caisse.ingest import review
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import Role
from tests.backend.reports.test_flows import Town
from tests.console.conftest import TestClient, csrf_token, sign_in


def _overdrawn(engine: Engine) -> int:
    """A household that spent 42,50 € more than its balance (as offline terminals may let it)."""
    with session_factory(engine)() as session:
        household = household_service.create_household(session, name="Famille Overdraft", members=2, zone="Nord")
        assert household.id is not None
        household_service.create_household(session, name="Famille Sereine", members=1, zone="Sud")
        ids = ledger.account_ids(session, codes=[ledger.member_code(household.id), ledger.Account.ALLOWANCE_FUND])
        ledger.post_transfer(session, debit=ids[ledger.member_code(household.id)], credit=ids[ledger.Account.ALLOWANCE_FUND],
                             amount_cents=4_250, kind=ledger.TransferKind.PAYMENT, reference="test:overdraft")
        bump_cards(session, household_ids=[household.id])  # what every balance change does
        session.commit()
        return household.id


def test_the_staff_see_each_household_below_zero_with_its_amount_and_since_when(
    console_client: TestClient, users: Any, engine: Engine
) -> None:
    household_id = _overdrawn(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = console_client.get("/console")
    assert page.status_code == 200
    assert f'href="/console/households/{household_id}">Famille Overdraft</a>' in page.text
    assert "-42,50 €" in page.text and "Famille Sereine" not in page.text
    assert "prochaines allocations couvrent d'abord ce découvert" in page.text


def test_the_committee_sees_only_how_many_households_are_below_zero_and_the_total(
    console_client: TestClient, users: Any, engine: Engine
) -> None:
    _overdrawn(engine)
    sign_in(console_client, Role.COMMITTEE)
    page = console_client.get("/console")
    assert page.status_code == 200
    assert "42,50 €" in page.text and "Famille Overdraft" not in page.text


def test_without_any_overdraft_the_home_says_so(console_client: TestClient, users: Any) -> None:
    sign_in(console_client, Role.TREASURER)
    page = console_client.get("/console")
    assert "Aucun foyer n'a un solde négatif." in page.text
    assert 'href="/console/settlements"' in page.text


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_old_held_payment_is_listed_for_the_team_and_counted_for_the_committee(
    console_client: TestClient, users: Any, session: Session, settings: Settings,
) -> None:
    town = Town(session, settings)
    town.pay("Stand Primeurs", "Diallo", 700, "2026-02-15T08:00")
    record_id = town.record_id("Stand Primeurs", 1)
    review.hold(session, record_ids=[record_id], reason="compteur SUN déjà vu")
    session.commit()
    sign_in(console_client, Role.TREASURER)
    fresh = console_client.get("/console")
    assert fresh.status_code == 200 and "Rien n'attend une décision depuis plus de 7 jour(s)." in fresh.text
    session.execute(text("UPDATE transaction_record SET received_at = :at WHERE id = :r").bindparams(
        bindparam("at", type_=DateTime(timezone=True))), {"at": datetime.now(UTC) - timedelta(days=8), "r": record_id})
    session.commit()
    page = console_client.get("/console").text
    assert '<a href="/console/transactions?status=held">Paiement retenu pour vérification</a>' in page
    assert '<td class="num">7,00 €</td>' in page and "compteur SUN déjà vu" in page
    console_client.post("/console/logout", data={"csrf_token": csrf_token(page)})
    sign_in(console_client, Role.COMMITTEE)
    committee = console_client.get("/console").text
    assert "1 élément(s) attendent une décision de l'équipe." in committee and "compteur SUN déjà vu" not in committee
