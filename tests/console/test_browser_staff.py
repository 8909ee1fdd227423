"""The staff pages in real Chromium (fixtures: tests/console/conftest.py): a card blocked then
unblocked, a terminal revoked, a vendor's IBAN requested then approved by a second person, an
account created and its password reset; each through its confirmation page, the final buttons
double-clicked (one action, one audit entry)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine

from caisse import audit
from caisse.cards import service as card_service
from caisse.db import session_factory
from caisse.members import households as household_service
from caisse.models import Role
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.factories import new_key
from tests.console.conftest import screenshot

IBAN = "FR7630006000011234567890189"
NEW_IBAN = "DE89370400440532013000"


def _seed(db: Engine, n: int) -> dict[str, Any]:
    """A vendor with a terminal, a household with a card; `n` tells the tests' apart."""
    with session_factory(db)() as session:
        vendor = vendor_service.create_vendor(session, name=f"Fromagerie Écureuil {n}", kind="shop", zone="Centre", iban=IBAN)
        household = household_service.create_household(session, name=f"Famille Hélène Staff {n}", members=2, zone="Centre")
        assert vendor.id and household.id
        card = card_service.issue_card(session, household_id=household.id, uid_hex=f"04badc0ffee0{n:02x}").uid.hex()
        terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id,
                                           public_key_hex=protocol.public_key_bytes(new_key()).hex())
        session.commit()
        return {"vendor": vendor.id, "card": card, "terminal": terminal.id}


def _actions(db: Engine, subject: str) -> list[str]:
    with session_factory(db)() as session:
        return [e.action for e in audit.events(session, subjects=[subject]) if e.actor != accounts.SYSTEM]


def test_cards_and_terminals_act_after_a_confirmation_and_once_for_a_double_click(page_as: Any, console_db: Engine) -> None:
    ids = _seed(console_db, 1)
    page = page_as(Role.COORDINATOR)
    page.goto("/console/cards?q=helene+staff+1")  # accents and case ignored
    page.get_by_role("link", name=ids["card"]).click()
    page.get_by_role("link", name="Bloquer (perdue)…").click()
    assert page.get_by_role("heading", name="Ce qui va se passer").is_visible()
    assert _actions(console_db, f"card:{ids['card']}") == []  # shown, not done
    page.get_by_role("button", name="Bloquer la carte (perdue)").dblclick()
    page.wait_for_url(re.compile(rf"/console/cards/{ids['card']}$"))
    assert page.get_by_role("status").inner_text().startswith(f"Carte {ids['card']} bloquée")
    page.get_by_role("link", name="Débloquer (carte retrouvée)…").click()
    page.get_by_role("button", name="Débloquer la carte").click()
    assert "débloquée" in page.get_by_role("status").inner_text()
    assert _actions(console_db, f"card:{ids['card']}") == ["card.unblock", "card.block"]
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    screenshot(page, "card-unblocked")

    page.goto(f"/console/terminals?q={ids['terminal']}")
    page.get_by_role("link", name=f"Révoquer le terminal {ids['terminal']}").click()
    assert page.get_by_role("note").inner_text().startswith("Action définitive")
    screenshot(page, "terminal-revoke-confirm")
    page.get_by_role("button", name=f"Révoquer le terminal {ids['terminal']}").dblclick()
    page.wait_for_url(re.compile(r"/console/terminals$"))
    assert f"Terminal {ids['terminal']} révoqué" in page.get_by_role("status").inner_text()
    assert _actions(console_db, f"terminal:{ids['terminal']}") == ["terminal.revoke"]


def test_an_iban_is_requested_by_one_person_and_approved_by_another(page_as: Any, console_db: Engine) -> None:
    vendor = _seed(console_db, 2)["vendor"]
    treasurer = page_as(Role.TREASURER)
    treasurer.goto(f"/console/vendors/{vendor}")
    treasurer.get_by_role("link", name="Demander un changement d'IBAN…").click()
    treasurer.get_by_label("Nouvel IBAN").fill("de89 3704 0044 0532 0130 00")
    treasurer.get_by_role("button", name="Vérifier").click()
    assert f"Nouvel IBAN demandé : {NEW_IBAN}." in treasurer.locator("section.confirm").inner_text()
    treasurer.get_by_role("button", name="Demander ce changement").dblclick()
    treasurer.wait_for_url(re.compile(rf"/console/vendors/{vendor}$"))
    assert treasurer.get_by_role("link", name="Approuver le nouvel IBAN…").count() == 0  # not by the one who asked

    administrator = page_as(Role.ADMIN)
    administrator.goto(f"/console/vendors/{vendor}")
    administrator.get_by_role("link", name="Approuver le nouvel IBAN…").click()
    assert IBAN in administrator.locator("section.confirm").inner_text()
    administrator.get_by_role("button", name="Approuver le nouvel IBAN").click()
    assert "approuvé" in administrator.get_by_role("status").inner_text()
    assert _actions(console_db, f"vendor:{vendor}") == ["vendor.iban_approve", "vendor.iban_request"]


def test_an_administrator_creates_an_account_then_resets_its_password(page_as: Any, console_db: Engine) -> None:
    page = page_as(Role.ADMIN)
    page.goto("/console/users")
    page.get_by_label("Adresse e-mail").fill("benevole.navigateur@caisse.test")
    page.locator("form[method=post][action='/console/users'] select[name=role]").select_option("coordinator")
    page.get_by_role("button", name="Continuer").click()
    page.get_by_role("button", name="Créer le compte").dblclick()
    page.wait_for_load_state()
    first = page.get_by_label("Mot de passe provisoire").inner_text()  # the password page, not "already exists"
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", first)
    screenshot(page, "account-created")
    page.get_by_role("link", name="Page du compte").click()
    page.get_by_role("link", name="Réinitialiser le mot de passe…").click()
    page.get_by_role("button", name="Réinitialiser le mot de passe").dblclick()
    page.wait_for_load_state()
    second = page.get_by_label("Mot de passe provisoire").inner_text()
    assert second != first
    assert _actions(console_db, "user:benevole.navigateur@caisse.test") == ["user.reset_password", "user.create"]
    with session_factory(console_db)() as session:
        assert accounts.get_user(session, email="benevole.navigateur@caisse.test").role == "coordinator"
    page.goto("/console/password")
    page.get_by_label("Mot de passe actuel").fill("pas le bon mot de passe")
    page.get_by_label("Nouveau mot de passe (10 caractères au moins)").fill("un-nouveau-mot-de-passe")
    page.get_by_label("Nouveau mot de passe, encore").fill("un-nouveau-mot-de-passe")
    page.get_by_role("button", name="Changer mon mot de passe").click()
    assert page.get_by_role("alert").inner_text() == "Le mot de passe actuel n'est pas le bon."
