"""Sortition pages in process: a coordinator runs a draw end to end, the committee sees the
public result without names, and every step is audited. SQLite only: tests/backend/members/test_sortition.py
runs the service on both databases."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlmodel import Session

from caisse import audit
from caisse.members import sortition
from caisse.models import Role
from tests.console.conftest import TestClient, post_form, sign_in

VOLUNTEERS = "\n".join(
    ["nom,contact,quartile_revenu,tranche_age"]
    + [f"Volontaire {n},v{n}@exemple.fr,1,1" for n in range(1, 7)]
    + ["Awa Diop,06 00 00 00 00,4,3", "Jean Martin,,2,2"]
)

# Page logic only: the services under them are tested on both databases (tests/backend).
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def _quota_form(title: str, seats: int = 2) -> dict[str, str]:
    return {"title": title, **{f"places_{q}_{a}": str(seats) for q, a in sortition.STRATA}}


def _run_draw(client: TestClient, *, title: str, phrase: str) -> str:
    created = post_form(client, "/console/sortition", "/console/sortition", _quota_form(title))
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    assert post_form(client, url, f"{url}/import", {"content": VOLUNTEERS}).status_code == 303
    assert post_form(client, url, f"{url}/volunteers", {"name": "Léa Petit", "contact": "", "quartile": "3", "age_band": "1"}).status_code == 303
    assert post_form(client, url, f"{url}/seed", {"phrase": phrase}).status_code == 303
    assert post_form(client, url, f"{url}/draw", {}).status_code == 303
    return url


def _public_result(client: TestClient, url: str) -> list[dict[str, str]]:
    answer = client.get(f"{url}/export.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


@SQLITE_ONLY
def test_a_draw_from_registration_to_export_is_reproducible_and_audited(
    console_client: TestClient, users: object, session: Session,
) -> None:
    sign_in(console_client, Role.COORDINATOR)
    first = _run_draw(console_client, title="Printemps", phrase="Loto du 5 décembre 2026 : 4 11 23 37 45")
    second = _run_draw(console_client, title="Printemps bis", phrase="Loto du 5 décembre 2026 : 4 11 23 37 45")
    result = _public_result(console_client, first)
    assert result == _public_result(console_client, second)
    assert [r["resultat"] for r in result if r["quartile_revenu"] == "1"].count("tiré au sort") == 2  # 6 volunteers, 2 seats
    assert all(r["resultat"] == "tiré au sort" for r in result if r["quartile_revenu"] != "1")
    page = console_client.get(first).text
    seed = sortition.seed_of("Loto du 5 décembre 2026 : 4 11 23 37 45")
    assert seed in page and "donne exactement le résultat enregistré" in page
    assert "il manque 1 volontaire(s)" in page and "Awa Diop" in page
    named = console_client.get(f"{first}/export.csv?noms=1").text
    assert "Awa Diop" in named and "06 00 00 00 00" in named
    actions = [e.action for e in audit.events(session, action_prefix="sortition.")][:6]
    assert actions == ["sortition.draw", "sortition.seed", "sortition.register", "sortition.import", "sortition.create",
                       "sortition.draw"]
    session.commit()


@SQLITE_ONLY
def test_the_committee_sees_the_public_result_but_no_names_and_cannot_organise(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.COORDINATOR)
    url = _run_draw(console_client, title="Automne", phrase="Titre du journal du 1er octobre")
    console_client.cookies.clear()
    sign_in(console_client, Role.COMMITTEE)
    page = console_client.get(url).text
    assert "Volontaire 1" not in page and "Awa Diop" not in page and "exemple.fr" not in page
    assert "Comment se déroule le tirage au sort" in page and "Titre du journal du 1er octobre" in page
    assert "Volontaire" not in console_client.get(f"{url}/export.csv?noms=1").text  # names asked for, not given
    refused = post_form(console_client, url, "/console/sortition", _quota_form("Pirate"))
    assert refused.status_code == 403


@SQLITE_ONLY
def test_the_list_is_frozen_once_the_seed_is_published(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.ADMIN)
    url = post_form(console_client, "/console/sortition", "/console/sortition", _quota_form("Hiver")).headers["location"]
    early = post_form(console_client, url, f"{url}/seed", {"phrase": "trop tôt"})
    assert early.status_code == 409 and "inscrivez des volontaires" in early.text
    assert post_form(console_client, url, f"{url}/import", {"content": VOLUNTEERS}).status_code == 303
    assert post_form(console_client, url, f"{url}/seed", {"phrase": "graine"}).status_code == 303
    late = post_form(console_client, url, f"{url}/volunteers", {"name": "En retard", "contact": "", "quartile": "1", "age_band": "1"})
    assert late.status_code == 409 and "scellé" in late.text
    assert "En retard" not in console_client.get(url).text


@SQLITE_ONLY
def test_bad_input_is_explained_and_changes_nothing(console_client: TestClient, users: object) -> None:
    sign_in(console_client, Role.COORDINATOR)
    bad_quota = post_form(console_client, "/console/sortition", "/console/sortition", {**_quota_form("X"), "places_2_3": "-1"})
    assert bad_quota.status_code == 422 and "nombre entier" in bad_quota.text
    url = post_form(console_client, "/console/sortition", "/console/sortition", _quota_form("Été")).headers["location"]
    bad_line = post_form(console_client, url, f"{url}/import", {"content": "nom,contact,quartile_revenu,tranche_age\nAwa,,1,1\nBob,,7,1"})
    assert bad_line.status_code == 422 and "ligne 3" in bad_line.text
    assert re.search(r"Volontaires <strong>0</strong>", console_client.get(url).text)
