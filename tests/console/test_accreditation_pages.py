"""Accreditation pages: typed, shown as what will change, confirmed; only the coordination and the
administration change it; the home page and the vendor page warn a month before the end."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine
from sqlalchemy import Engine

from caisse import audit
from caisse.db import session_factory
from caisse.models import Role
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service
from tests.console.conftest import EMAILS, TestClient, csrf_token, post_form, sign_in

SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)  # no SQL of their own
TODAY = datetime(2026, 3, 2, 10, tzinfo=UTC)  # 11:00 in Paris


def _vendor(engine: Engine, name: str = "Ferme des Lilas", end: date | None = None) -> int:
    with session_factory(engine)() as session:
        vendor = vendor_service.create_vendor(session, name=name, kind="producer", zone="Nord", convention_end=end)
        session.commit()
        assert vendor.id is not None
        return vendor.id


def _state(engine: Engine, vendor_id: int) -> tuple[accreditation.Accreditation, int]:
    with session_factory(engine)() as session:
        return (accreditation.current(session, vendor_id=vendor_id),
                len(audit.events(session, subjects=[f"vendor:{vendor_id}"])))


FORM = {"status": "suspended", "starts_on": "", "ends_on": "2026-06-30", "visited_on": "2026-02-01",
        "visited_by": "Awa Diallo", "trained_on": ""}


@SQLITE_ONLY
def test_an_outsider_or_the_treasury_cannot_change_an_accreditation(console_client: TestClient, users: Any,
                                                                     engine: Engine) -> None:
    vendor_id = _vendor(engine)
    before = _state(engine, vendor_id)
    url = f"/console/vendors/{vendor_id}/accreditation"
    login = console_client.get("/console/login")  # a real CSRF token, of no session
    for path in (url, url + "/preview", "/console/accreditation/criteria"):
        answer = console_client.post(path, data={**FORM, "label": "x", "csrf_token": csrf_token(login.text)})
        assert answer.status_code in (303, 403), path
        assert answer.status_code == 403 or answer.headers["location"].startswith("/console/login")
    assert console_client.get(url).headers["location"].startswith("/console/login")
    sign_in(console_client, Role.TREASURER)
    page = console_client.get(url)
    assert page.status_code == 200 and "Seules la coordination et l'administration" in page.text
    answer = console_client.post(url, data={**FORM, "csrf_token": csrf_token(page.text)})
    assert answer.status_code == 403
    assert _state(engine, vendor_id) == before


def _seen(html: str) -> str:
    match = re.search(r'name="seen" value="([0-9a-f]+)"', html)
    assert match, "the confirmation carries what it showed"
    return match.group(1)


def _confirmed(client: TestClient, url: str, form: dict[str, str]) -> Any:
    """Preview then confirm, as a person clicks through."""
    preview = post_form(client, url, url + "/preview", form)
    assert preview.status_code == 200, preview.text
    return client.post(url, data={**form, "seen": _seen(preview.text), "csrf_token": csrf_token(preview.text)})


@SQLITE_ONLY
def test_a_change_is_shown_then_confirmed_once(console_client: TestClient, users: Any, engine: Engine) -> None:
    vendor_id = _vendor(engine)
    url = f"/console/vendors/{vendor_id}/accreditation"
    sign_in(console_client, Role.COORDINATOR)
    preview = post_form(console_client, url, url + "/preview", FORM)
    assert preview.status_code == 200
    for shown in ("conventionné", "suspendu", "30/06/2026", "Awa Diallo", "ne pourra plus encaisser"):
        assert shown in preview.text, shown
    assert _state(engine, vendor_id)[0].status == "active"  # nothing changes before the confirmation
    confirmation = {**FORM, "seen": _seen(preview.text), "csrf_token": csrf_token(preview.text)}
    assert console_client.post(url, data=confirmation).status_code == 303
    after, events = _state(engine, vendor_id)
    assert (after.status, after.ends_on, after.visited_by) == ("suspended", date(2026, 6, 30), "Awa Diallo")
    again = console_client.post(url, data=confirmation)  # a second click: what it showed is no longer so
    assert again.status_code == 409 and "a été modifié par quelqu" in again.text
    assert _state(engine, vendor_id)[1] == events
    assert "Rien ne change" in post_form(console_client, url, url + "/preview", FORM).text
    refused = post_form(console_client, url, url + "/preview", {**FORM, "status": "active"})  # no training, no criteria
    assert refused.status_code == 422 and "il faut que tous les critères" in refused.text
    assert _state(engine, vendor_id)[0].status == "suspended"


@SQLITE_ONLY
def test_a_confirmation_shown_before_someone_elses_change_applies_nothing(console_client: TestClient, users: Any,
                                                                           engine: Engine) -> None:
    vendor_id = _vendor(engine)
    url = f"/console/vendors/{vendor_id}/accreditation"
    sign_in(console_client, Role.COORDINATOR)
    preview = post_form(console_client, url, url + "/preview", {**FORM, "ends_on": "2027-01-31"})
    with session_factory(engine)() as session:  # meanwhile, an administrator suspends the vendor
        accreditation.update(session, vendor_id=vendor_id, by=EMAILS[Role.ADMIN], wanted=accreditation.Accreditation(
            "suspended", None, None, None, None, None, frozenset()))
        session.commit()
    stale = console_client.post(url, data={**FORM, "ends_on": "2027-01-31", "seen": _seen(preview.text),
                                           "csrf_token": csrf_token(preview.text)})
    assert stale.status_code == 409
    now, _ = _state(engine, vendor_id)
    assert (now.ends_on, now.visited_by) == (None, None)


@SQLITE_ONLY
def test_criteria_are_added_ticked_and_retired(console_client: TestClient, users: Any, engine: Engine) -> None:
    vendor_id = _vendor(engine)
    sign_in(console_client, Role.ADMIN)
    page = "/console/accreditation/criteria"
    assert post_form(console_client, page, page, {"label": "  Produits   locaux "}).status_code == 303
    twice = post_form(console_client, page, page, {"label": "Produits locaux"})
    assert twice.status_code == 409 and "existe déjà" in twice.text
    with session_factory(engine)() as session:
        [criterion] = accreditation.criteria(session)
    url = f"/console/vendors/{vendor_id}/accreditation"
    form = {**FORM, "status": "active", "trained_on": "2026-02-02", "criteria": str(criterion.id)}
    assert _confirmed(console_client, url, form).status_code == 303
    assert post_form(console_client, page, f"{page}/{criterion.id}/retire", {}).status_code == 303
    with session_factory(engine)() as session:
        assert accreditation.criteria(session) == []
        assert accreditation.checked_criteria(session, vendor_id=vendor_id) == {criterion.id}
    assert "Produits locaux" in console_client.get(url).text  # still shown where it is ticked
    assert EMAILS[Role.ADMIN] in console_client.get(url).text  # the history says who


@SQLITE_ONLY
def test_the_home_and_vendor_pages_warn_thirty_days_before_the_end(console_client: TestClient, users: Any,
                                                                   engine: Engine) -> None:
    soon = _vendor(engine, "Ferme des Lilas", date(2026, 4, 1))  # 30 days after 2 March
    later = _vendor(engine, "Boulangerie du Coin", date(2026, 4, 2))
    with time_machine.travel(TODAY, tick=False):
        sign_in(console_client, Role.COORDINATOR)
        home = console_client.get("/console").text
        assert f'href="/console/vendors/{soon}/accreditation">Ferme des Lilas' in home
        assert "Boulangerie du Coin" not in home
        assert "se termine le 01/04/2026 (dans 30 jours)" in console_client.get(f"/console/vendors/{soon}").text
        assert "À renouveler" not in console_client.get(f"/console/vendors/{later}").text
        console_client.cookies.clear()
        sign_in(console_client, Role.COMMITTEE)
        assert "1 conventionnement(s) se terminent" in console_client.get("/console").text  # no vendor names
