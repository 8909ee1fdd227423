"""The team's home page lists what waits for a person longer than CAISSE_OVERDUE_AFTER_DAYS
(caisse.overdue); the committee's home stays the budget, since those lines name households."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, Engine, bindparam, text
from sqlmodel import Session

from caisse import review
from caisse.config import Settings
from caisse.models import Role
from tests.backend.test_flows import Town
from tests.console.conftest import TestClient, csrf_token, sign_in

SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_the_team_home_lists_an_old_held_payment_and_the_committee_never_sees_it(
    console_client: TestClient, users: object, session: Session, settings: Settings, engine: Engine,
) -> None:
    town = Town(session, settings)
    town.pay("Stand Primeurs", "Diallo", 700, "2026-02-15T08:00")
    record_id = town.record_id("Stand Primeurs", 1)
    review.hold(session, record_ids=[record_id], reason="compteur SUN déjà vu")
    session.commit()
    sign_in(console_client, Role.TREASURER)
    assert console_client.get("/console").headers["location"] == "/console/accueil"
    fresh = console_client.get("/console/accueil")
    assert fresh.status_code == 200 and "Rien n'attend une décision depuis plus de 7 jour(s)." in fresh.text
    session.execute(text("UPDATE transaction_record SET received_at = :at WHERE id = :r").bindparams(
        bindparam("at", type_=DateTime(timezone=True))), {"at": datetime.now(UTC) - timedelta(days=8), "r": record_id})
    session.commit()
    page = console_client.get("/console/accueil").text
    assert '<a href="/console/transactions?status=held">Paiement retenu pour vérification</a>' in page
    assert "<td class=\"num\">7,00 €</td>" in page and "compteur SUN déjà vu" in page
    console_client.post("/console/logout", data={"csrf_token": csrf_token(page)})
    sign_in(console_client, Role.COMMITTEE)
    assert console_client.get("/console").headers["location"] == "/console/budget"
    assert console_client.get("/console/accueil").status_code == 403

