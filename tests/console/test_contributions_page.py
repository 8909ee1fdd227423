"""The contributions page and the year's budget, in process: the scale beside each choice, who is
behind, the written policy, the matching claim's files, the roles that see them, French errors."""

from __future__ import annotations

import csv
import html
import io
import urllib.parse
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlmodel import Session

from caisse import audit
from caisse.config import Settings
from caisse.fund import matching_claim
from caisse.fund import service as fund
from caisse.members import households as household_service
from caisse.members import means
from caisse.models import Household, Role
from tests.console.conftest import EMAILS, TestClient, post_form, sign_in

SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def households(session: Session, settings: Settings, users: object) -> dict[str, int]:
    ids = {}
    for name in ("Famille Diallo", "Famille Martin", "Famille Nguyen"):
        household = household_service.create_household(session, name=name, members=2, zone="Nord")
        assert household.id is not None
        ids[name] = household.id
    session.execute(update(Household).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    by = EMAILS[Role.TREASURER]
    means.record_means(session, household_id=ids["Famille Diallo"], effective_month="2026-01", size=3, income_quartile=1,
                       chosen_contribution_cents=1_200, by=by, settings=settings)
    means.record_means(session, household_id=ids["Famille Martin"], effective_month="2026-01", size=2, income_quartile=4,
                       chosen_contribution_cents=9_000, by=by, settings=settings)
    for month in ("2026-01", "2026-02"):
        fund.record_contribution(session, household_id=ids["Famille Martin"], month=month, amount_cents=9_000, settings=settings,
                                 reference=f"=M{month}")
    fund.record_contribution(session, household_id=ids["Famille Diallo"], month="2026-01", amount_cents=1_200, settings=settings,
                             reference="D1")
    session.commit()
    return ids


@SQLITE_ONLY
def test_the_page_shows_each_choice_beside_the_scale_and_who_is_behind_without_chasing(
    console_client: TestClient, households: dict[str, int], settings: Settings, session: Session,
) -> None:
    sign_in(console_client, Role.TREASURER)
    page = console_client.get("/console/contributions?mois=2026-02").text
    assert "ne suspend ni ne réduit jamais une allocation" in page and "ne relance personne" in page
    diallo = page[page.index("Famille Diallo"):page.index("</tr>", page.index("Famille Diallo"))]
    assert "10,00 €" in diallo and "12,00 €" in diallo and "1 (depuis 2026-02)" in diallo  # scale q1, chosen, behind
    assert "non renseignée" in page  # Nguyen has chosen nothing yet
    behind_only = console_client.get("/console/contributions?mois=2026-02&retard=1").text
    assert "Famille Diallo" in behind_only and "Famille Martin" not in behind_only
    assert "Abondement demandé (50 %)" in page and "/console/contributions/claim/2026-02.csv" in page
    download = console_client.get("/console/contributions/claim/2026-01.csv")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    expected = matching_claim.csv_bytes(matching_claim.claim(session, month="2026-01", settings=settings),
                                        caisse_name=settings.debtor_name)
    session.commit()  # end the test's read before the server writes (SQLite: BEGIN IMMEDIATE)
    assert download.content == expected
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[2][1] == "'=M2026-01" and rows[-2][-1] == "51,00"  # (90 + 12) x 50 %
    assert console_client.get("/console/contributions/claim/2026-01.pdf").content.startswith(b"%PDF")
    assert console_client.get("/console/contributions/claim/2026-01.exe").status_code == 404
    wrong = console_client.get("/console/contributions?mois=2026-13")
    assert wrong.status_code == 200 and 'role="alert"' in wrong.text
    wrong = console_client.get("/console/contributions/claim/2026-13.csv")
    assert wrong.status_code == 422 and "AAAA-MM" in wrong.text


@SQLITE_ONLY
def test_the_committee_sees_the_year_budget_but_not_the_households_contributions(
    console_client: TestClient, households: dict[str, int],
) -> None:
    sign_in(console_client, Role.COMMITTEE)
    assert console_client.get("/console/contributions").status_code == 403
    assert console_client.get("/console/contributions/claim/2026-01.csv").status_code == 403
    page = html.unescape(console_client.get("/console/budget?annee=2026").text)
    assert "Budget de l'année 2026" in page and "Abondement de l'État" in page and "Frais bancaires" in page
    assert "Famille" not in page and "Cotisations" not in page.split("<main>")[0]  # no menu entry for the committee
    bad = console_client.get("/console/budget?annee=deux")
    assert bad.status_code == 200 and "quatre chiffres" in bad.text


@SQLITE_ONLY
def test_staff_record_means_one_by_one_or_pasted_and_a_bad_entry_writes_nothing(
    console_client: TestClient, households: dict[str, int], session: Session,
) -> None:
    nguyen = households["Famille Nguyen"]
    sign_in(console_client, Role.COORDINATOR)
    form = {"foyer": str(nguyen), "mois": "2026-03", "taille": "4", "quartile": "2", "revenu": "", "cotisation": "0,50"}
    answer = post_form(console_client, "/console/contributions", "/console/contributions/means", form)
    assert answer.status_code == 303
    refused = post_form(console_client, "/console/contributions", "/console/contributions/means", {**form, "quartile": "9"})
    assert refused.status_code == 422 and "Le quartile de revenu est 1, 2, 3 ou 4." in refused.text
    refused = post_form(console_client, "/console/contributions", "/console/contributions/means", {**form, "taille": "deux"})
    assert refused.status_code == 422 and "de 1 à 30 personnes" in refused.text and 'value="deux"' in refused.text
    pasted = f"foyer;mois;taille;quartile de revenu;cotisation choisie\n{nguyen};2026-04;3;1;5\n{nguyen};2026-05;3;1;cinq\n"
    refused = post_form(console_client, "/console/contributions", "/console/contributions/means/import", {"content": pasted})
    assert refused.status_code == 422 and "ligne 3" in refused.text
    session.expire_all()
    assert means.means_at(session, household_id=nguyen, month="2026-12").effective_month == "2026-03"  # type: ignore[union-attr]
    [event] = audit.events(session, subjects=[f"household:{nguyen}"], action_prefix="household.means")
    assert event.actor == EMAILS[Role.COORDINATOR]
    session.commit()  # end the test's read before the server writes (SQLite: BEGIN IMMEDIATE)
    done = post_form(console_client, "/console/contributions", "/console/contributions/means/import",
                     {"content": pasted, "ignorer": "1"})
    assert done.status_code == 303
    assert "1 foyer(s) enregistré(s). 1 ligne(s) écartée(s)." in html.unescape(
        urllib.parse.unquote(done.cookies.get("caisse_flash") or ""))
    assert means.means_at(session, household_id=nguyen, month="2026-12").size == 3  # type: ignore[union-attr]
    assert session.get(Household, nguyen).members == 3  # type: ignore[union-attr]
    session.commit()
    console_client.cookies.clear()
    sign_in(console_client, Role.COMMITTEE)
    assert post_form(console_client, "/console/budget", "/console/contributions/means", form).status_code == 403
