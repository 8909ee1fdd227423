"""Membership pages in process: a questionnaire draw with quotas from population shares, the
invitations (decline asks to confirm and invites the next of the reserve, accept creates the
household), the household's next step, its departure (confirmed) and its personal data export.
SQLite only: the services are tested on both databases in tests/backend."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session

from caisse.members import sortition
from caisse.models import Household, Role
from tests.console.conftest import TestClient, csrf_token, post_form, sign_in

SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
QUESTIONNAIRE = ("Nom;Contact;Quartile de revenu;Date de naissance;Taille du foyer;Commerces\n"
                 + "".join(f"Volontaire {n};v{n}@exemple.fr;1;0{n}/05/1990;{n};marché\n" for n in range(1, 5))
                 + "Bob;;9;01/01/1980;2;\n")


def _shares_form(title: str) -> dict[str, str]:
    shares = {f"part_{q}_{a}": "0" for q, a in sortition.STRATA}
    return {"title": title, "closing_date": "2026-03-15", "total_places": "3", **shares, "part_1_2": "60", "part_4_3": "40",
            **{f"places_{q}_{a}": "0" for q, a in sortition.STRATA}}


@SQLITE_ONLY
def test_a_questionnaire_draw_from_shares_to_households_and_a_departure(console_client: TestClient, users: object,
                                                                         session: Session) -> None:
    sign_in(console_client, Role.COORDINATOR)
    created = post_form(console_client, "/console/sortition", "/console/sortition", _shares_form("Entrée 2026"))
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    page = console_client.get(url).text
    assert "au 15/03/2026" in page and ">60<" in page  # the band scheme's date and the stratum's share
    refused = post_form(console_client, url, f"{url}/import", {"content": QUESTIONNAIRE})
    assert refused.status_code == 422 and "ligne 6 :" in refused.text and "refusée(s), rien" in refused.text
    token_page = console_client.get(url).text
    skipped = console_client.post(f"{url}/import", data={"ignorer_erreurs": "oui", "csrf_token": csrf_token(token_page)},
                                  files={"fichier": ("questionnaire.csv", QUESTIONNAIRE.encode("cp1252"), "text/csv")})
    assert skipped.status_code == 200 and "Lignes ignorées" in skipped.text and "ligne 6 :" in skipped.text
    assert post_form(console_client, url, f"{url}/seed", {"phrase": "Loto"}).status_code == 303
    assert post_form(console_client, url, f"{url}/draw", {}).status_code == 303
    draw_id = int(url.rsplit("/", 1)[1])
    ranked = sorted(sortition.volunteers_of(session, draw_id=draw_id), key=lambda v: v.rank or 0)
    first, second, third = ranked[0], ranked[1], ranked[2]  # 60 % of 3 seats: 2 for quartile 1, 30 to 60
    assert [v.invitation for v in ranked[:3]] == ["invited", "invited", None]
    session.commit()  # ends this read, so the console can write (SQLite)
    volunteer_data = console_client.get(f"{url}/volunteers/{third.id}/personal-data.csv")
    assert volunteer_data.status_code == 200 and f"volontaire[1];nom;{third.name}" in volunteer_data.text
    assert console_client.get(f"/console/sortition/{draw_id + 1}/volunteers/{third.id}/personal-data.csv").status_code == 404

    unconfirmed = post_form(console_client, url, f"{url}/volunteers/{first.id}/decline", {})
    assert unconfirmed.status_code == 422 and "confirmation" in unconfirmed.text
    declined = post_form(console_client, url, f"{url}/volunteers/{first.id}/decline", {"confirm": "oui"})
    assert declined.status_code == 303 and f"n° {third.number}" in console_client.get(url).text
    accepted = post_form(console_client, url, f"{url}/volunteers/{second.id}/accept", {"zone": "Celleneuve", "members": ""})
    household_url = accepted.headers["location"]
    household_page = console_client.get(household_url).text
    assert "Étape suivante : remettre la carte" in household_page and second.name in household_page

    not_confirmed = post_form(console_client, household_url, f"{household_url}/leave", {"end_date": "2026-12-31"})
    assert not_confirmed.status_code == 422
    left = post_form(console_client, household_url, f"{household_url}/leave", {"end_date": "2026-12-31", "confirm": "oui"})
    assert left.status_code == 303
    assert "Départ prévu le 31/12/2026" in console_client.get(household_url).text
    exported = console_client.get(f"{household_url}/personal-data.json")
    data = json.loads(exported.text)
    assert data["volontaire"][0]["nom"] == second.name and data["foyer"]["depart"] == "2026-12-31"
    session.expire_all()
    household = session.get(Household, int(household_url.rsplit("/", 1)[1]))
    assert household is not None and household.members == second.household_size


@SQLITE_ONLY
def test_the_committee_cannot_answer_invitations(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.COMMITTEE)
    page = console_client.get("/console/sortition")
    refused = console_client.post("/console/sortition/1/volunteers/1/decline",
                                  data={"confirm": "oui", "csrf_token": csrf_token(page.text)})
    assert refused.status_code == 403
