"""Membership in real Chromium (fixtures: tests/console/conftest.py), one sequence of page loads:
a coordinator creates a questionnaire draw from the population's shares, uploads the spreadsheet,
publishes the seed and draws; a volunteer declines (confirmed) and the next of the reserve is
invited; another accepts and their household page shows the card step; the household leaves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from caisse.models import Role
from tests.console.conftest import screenshot

QUESTIONNAIRE = ("Nom;Contact;Quartile de revenu;Date de naissance;Taille du foyer;Commerces\n"
                 + "".join(f"Navigatrice {n};n{n}@exemple.fr;2;1{n}/06/2000;{n};épicerie\n" for n in range(1, 5)))


def test_a_questionnaire_draw_to_a_household_that_leaves(page_as: Any, tmp_path: Path) -> None:
    page = page_as(Role.COORDINATOR)
    page.goto("/console/sortition")
    page.get_by_label("Titre").fill("Entrée navigateur")
    page.get_by_label("Date de clôture du questionnaire").fill("2026-03-15")
    page.get_by_label("Nombre total de places").fill("2")
    page.get_by_label("Part de la population, quartile 2, moins de 30 ans").fill("12,5")
    page.get_by_role("button", name="Créer le tirage").click()
    page.wait_for_url(re.compile(r"/console/sortition/\d+$"))
    assert "au 15/03/2026" in page.locator(".stats").inner_text()

    spreadsheet = tmp_path / "questionnaire.csv"
    spreadsheet.write_bytes(QUESTIONNAIRE.encode("cp1252"))  # as Excel saves it in France
    page.get_by_label("Fichier").set_input_files(str(spreadsheet))
    page.get_by_role("button", name="Inscrire la liste").click()
    assert "4 volontaire(s) inscrit(s)" in page.get_by_role("status").inner_text()
    page.get_by_label("Phrase publique").fill("Loto navigateur")
    page.get_by_role("button", name="Publier la graine").click()
    page.get_by_role("button", name="Lancer le tirage").click()
    invitations = page.locator("table.invitations tbody tr")
    assert invitations.count() == 2  # 2 seats, both in quartile 2 under 30

    declining = invitations.first.locator("td").first.inner_text()
    page.get_by_role("button", name=f"Le volontaire {declining} décline").click()  # not confirmed: the browser asks
    assert page.locator("table.invitations tbody tr").count() == 2
    page.get_by_label(f"Je confirme le refus du volontaire {declining}").check()
    page.get_by_role("button", name=f"Le volontaire {declining} décline").click()
    assert "est invité à sa place" in page.get_by_role("status").first.inner_text()
    assert page.locator("table.invitations tbody tr").count() == 3
    screenshot(page, "membership-invitations")

    accepting = page.locator("table.invitations tbody tr", has_text="invité").first.locator("td").first.inner_text()
    page.get_by_label(f"Quartier du foyer du volontaire {accepting}").fill("Celleneuve")
    page.get_by_role("button", name=f"Accepter l'invitation du volontaire {accepting}").click()
    page.wait_for_url(re.compile(r"/console/households/\d+$"))
    assert "Étape suivante : remettre la carte" in page.locator("section.next-step").inner_text()

    page.get_by_label("Date de départ").fill("2026-12-31")
    page.get_by_label("Je confirme le départ de ce foyer").check()
    page.get_by_role("button", name="Enregistrer le départ").click()
    assert "Départ enregistré au 31/12/2026" in page.get_by_role("status").first.inner_text()
    screenshot(page, "membership-household-left")
