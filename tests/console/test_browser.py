"""The console in real Chromium against a running server (fixtures: tests/console/conftest.py)."""

from __future__ import annotations

import re
from typing import Any

from caisse.models import Role
from tests.console.conftest import BROWSER_TIMEOUT_MS, EMAILS, PASSWORD, screenshot, watch_errors


def test_sign_in_with_the_form_lands_on_the_households_page(browser: Any, console_url: str) -> None:
    context = browser.new_context(base_url=console_url, viewport={"width": 1024, "height": 768})
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    watch_errors(page, errors)
    page.goto("/console/households")
    page.wait_for_url(re.compile(r"/console/login"))
    page.get_by_label("Adresse e-mail").fill(EMAILS[Role.COORDINATOR])
    page.get_by_label("Mot de passe").fill("pas le bon mot de passe")
    page.get_by_role("button", name="Se connecter").click()
    assert page.get_by_role("alert").inner_text() == "Adresse e-mail ou mot de passe incorrect."
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/console/households$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Foyers"
    screenshot(page, "sign-in")
    context.close()
    assert errors == []


def test_a_coordinator_enrols_a_household_then_issues_and_blocks_its_card(page_as: Any) -> None:
    page = page_as(Role.COORDINATOR)
    page.goto("/console/households")
    page.get_by_role("link", name="Inscrire un foyer").click()
    page.get_by_label("Nom du foyer").fill("Famille Navigateur")
    page.get_by_label("Nombre de personnes").fill("3")
    page.get_by_label("Quartier").fill("Mosson")
    page.get_by_role("button", name="Inscrire").click()
    assert page.get_by_role("status").inner_text() == "Foyer « Famille Navigateur » inscrit."
    assert page.get_by_role("heading", level=1).inner_text() == "Famille Navigateur"

    page.get_by_label("Remettre une carte").fill("04 c0 ff ee 00 11 22")
    page.get_by_role("button", name="Remettre la carte").click()
    assert page.get_by_role("status").inner_text() == "Carte 04c0ffee001122 remise au foyer."
    screenshot(page, "household-card-issued")

    page.get_by_role("link", name="Bloquer la carte 04c0ffee001122 (perdue)").click()  # what it does, then do it
    page.get_by_role("button", name="Bloquer la carte (perdue)").click()
    assert page.get_by_role("status").inner_text().startswith("Carte 04c0ffee001122 bloquée")
    page.get_by_role("link", name="Famille Navigateur").click()
    assert page.get_by_text(re.compile(r"bloquée \(perdue\) le \d\d/")).is_visible()
    assert page.get_by_role("link", name="Bloquer la carte 04c0ffee001122 (perdue)").count() == 0

    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet held upright: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    screenshot(page, "household-card-blocked-portrait")

    page.goto("/console/households?q=navigateur")
    assert page.get_by_role("link", name="Famille Navigateur").is_visible()
    assert page.get_by_role("row", name=re.compile("Famille Navigateur")).get_by_text("0 / 1").is_visible()
    screenshot(page, "household-search")


def test_the_home_page_lists_what_needs_attention_and_the_pages_of_the_role(page_as: Any) -> None:
    page = page_as(Role.COORDINATOR)
    page.goto("/console")
    assert page.get_by_role("heading", level=1).inner_text() == "Accueil"
    assert page.get_by_role("heading", name="Foyers à découvert").is_visible()
    page.get_by_role("navigation", name="Pages de votre rôle").get_by_role("link", name="Terminaux").click()
    page.wait_for_url(re.compile(r"/console/terminals$"))
    page.goto("/console")
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    screenshot(page, "home")
