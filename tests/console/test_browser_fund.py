"""The Fonds page in real Chromium (fixtures: tests/console/conftest.py): the treasurer sets a rule,
allocates a month, imports a file with a bad line, records a grant and a manual credit, reverses
the credit and closes the month; each step shown before it is done, a second click doing nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from caisse import audit
from caisse.db import session_factory
from caisse.members import households as household_service
from caisse.models import Household, LedgerTransfer, Role
from tests.console.conftest import EMAILS, screenshot

MONTH = "2031-05"  # a month no other browser test allocates


def _confirm(page: Any, button: str) -> str:
    """Clicks the confirmation button of a preview; returns the message of the page it leads to."""
    page.get_by_role("button", name=button).click()
    page.wait_for_url(re.compile(r"/console/fund$"))
    return page.get_by_role("status").inner_text()


def test_the_treasurer_takes_each_money_step_after_seeing_what_it_does(page_as: Any, console_db: Engine, tmp_path: Path) -> None:
    with session_factory(console_db)() as session:
        household = household_service.create_household(session, name="Famille Fonds", members=2, zone="Nord")
        session.commit()
        households = session.execute(select(func.count()).select_from(Household)).scalar_one()
    page = page_as(Role.TREASURER)
    page.goto("/console/fund")

    page.get_by_label("À partir du mois").fill(MONTH)
    page.get_by_label("Règle", exact=True).select_option("flat")
    page.get_by_label("Forfait par foyer (€)").fill("80")
    page.get_by_role("button", name="Voir la règle…").click()
    assert "forfait de 80,00 EUR par foyer" in page.locator("ul.preview").inner_text()
    assert "Règle d'allocation enregistrée" in _confirm(page, "Enregistrer la règle")

    page.get_by_label("Mois à créditer").fill(MONTH)
    page.get_by_role("button", name="Voir les allocations…").click()
    preview = page.locator("ul.preview").inner_text()
    assert f"{households} foyer(s) crédité(s) pour {households * 80},00 €" in preview
    screenshot(page, "fund-allocate-preview")
    page.go_back()  # the preview posted nothing: nothing credited yet
    with session_factory(console_db)() as session:
        assert not audit.events(session, action_prefix="allowance.allocate")
    page.get_by_role("button", name="Voir les allocations…").click()
    page.get_by_role("button", name="Attribuer les allocations").dblclick()  # a staff member clicking twice
    page.wait_for_url(re.compile(r"/console/fund$"))

    bad = tmp_path / "cotisations.csv"
    bad.write_text(f"household_id;month;amount_eur;reference\n{household.id};{MONTH};20,00;nav-a\n{household.id};{MONTH};x;nav-b\n",
                   encoding="utf-8")
    page.get_by_label("Fichier").set_input_files(bad)
    page.get_by_role("button", name="Vérifier le fichier…").click()
    assert "Ligne 3 : Montant invalide" in page.locator("ul.preview").inner_text()
    page.get_by_label("importer les lignes valides").check()
    assert "1 cotisation(s) importée(s) (20,00 €)" in _confirm(page, "Importer")

    grant = page.locator("form[aria-label=Subvention]")
    grant.get_by_label("Mois").fill(MONTH)
    grant.get_by_label("Montant (€)").fill("250")
    grant.get_by_label("Qui la verse").fill("Département")
    grant.get_by_role("button", name="Voir la subvention…").click()
    assert "Subvention de 250,00 € de Département" in page.locator("ul.preview").inner_text()
    page.get_by_role("button", name="Enregistrer la subvention").dblclick()  # which message shows depends on the race
    page.wait_for_url(re.compile(r"/console/fund$"))

    credit = page.locator("form[aria-label=Crédit]")
    credit.get_by_label("Foyer n°").fill(str(household.id))
    credit.get_by_label("Montant (€)").fill("15")
    credit.get_by_label("Référence").fill("nav-credit")
    credit.get_by_role("button", name="Voir le crédit…").click()
    assert "(Famille Fonds)" in page.locator("ul.preview").inner_text()
    assert "crédité de 15,00 €" in _confirm(page, "Créditer le foyer")

    page.get_by_label("Référence", exact=True).last.fill("credit:nav-credit")
    page.get_by_label("Pourquoi").fill("saisi par erreur")
    page.get_by_role("button", name="Voir la contre-passation…").click()
    assert "définitive" in page.locator("main").inner_text()
    assert "contre-passée (15,00 €)" in _confirm(page, "Contre-passer")

    page.get_by_label("Mois à clôturer").fill(MONTH)
    page.get_by_role("button", name="Clôturer…").click()
    assert "La clôture est définitive" in page.locator("main").inner_text()
    assert f"Allocations de {MONTH} déjà attribuées : {households} foyer(s)" in page.locator("ul.preview").inner_text()
    assert f"Mois {MONTH} clôturé" in _confirm(page, "Clôturer le mois")
    assert "clos le" in page.locator("section[aria-labelledby=allocate-title]").inner_text()
    screenshot(page, "fund")
    with session_factory(console_db)() as session:
        actions = {event.action for event in audit.events(session, actor=EMAILS[Role.TREASURER], limit=50)}
        credited = session.execute(select(func.count()).select_from(LedgerTransfer).where(
            LedgerTransfer.reference.like(f"allowance:%:{MONTH}"))).scalar_one()  # type: ignore[attr-defined]
        grants = session.execute(select(func.count()).select_from(LedgerTransfer).where(
            LedgerTransfer.kind == "grant", LedgerTransfer.memo == "Département")).scalar_one()  # type: ignore[arg-type]
    assert (credited, grants) == (households, 1)  # double clicks posted once
    assert {"allowance.rule", "allowance.allocate", "contribution.import", "fund.grant", "household.credit", "ledger.reverse",
            "allowance.close_month"} <= actions
