"""Settlement and sortition in real Chromium (fixtures: tests/console/conftest.py): a settlement
prepared by the coordinator, approved by the treasurer and its SEPA file downloaded, then the
committee's flows drawn from the same payments; a sortition
run twice with the same seed gives the same result."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from caisse.db import session_factory
from caisse.models import Role
from tests.backend.settlement.test_settlement import Market
from tests.console.conftest import screenshot
from tests.fixtures.database import make_settings

PAY_DAY = "2026-03-14"  # a day no other browser test settles
VOLUNTEERS = "\n".join(["nom,contact,quartile_revenu,tranche_age"] + [f"Volontaire {n},,1,{1 + n % 3}" for n in range(1, 10)]
                       + ["Awa Diop,,4,3"])


def test_a_settlement_prepared_then_approved_by_the_treasurer_gives_a_sepa_file(page_as: Any, console_db: Engine) -> None:
    at = int(datetime.fromisoformat(f"{PAY_DAY}T10:00").replace(tzinfo=UTC).timestamp())
    with session_factory(console_db)() as session:
        market = Market(session, make_settings(str(console_db.url)))
        market.pay(0, 2_340, time=at)
        market.pay(1, 1_000, time=at + 60)

    coordinator = page_as(Role.COORDINATOR)
    coordinator.goto("/console/settlements")
    coordinator.get_by_label("Journée").fill(PAY_DAY)
    coordinator.get_by_role("button", name="Préparer").click()
    coordinator.wait_for_url(re.compile(r"/console/settlements/\d+$"))
    assert "à approuver" in coordinator.locator(".stats").inner_text()
    assert coordinator.get_by_role("button", name="Approuver le règlement").count() == 0
    run_url = coordinator.url

    treasurer = page_as(Role.TREASURER)
    treasurer.goto(run_url)
    treasurer.get_by_role("button", name="Approuver le règlement").click()
    treasurer.wait_for_load_state()
    assert "Règlement approuvé" in treasurer.get_by_role("status").inner_text()
    with treasurer.expect_download() as download:
        treasurer.get_by_role("link", name=re.compile("Fichier de virements SEPA")).click()
    sepa = ET.parse(Path(download.value.path())).getroot()
    amounts = sorted(element.text for element in sepa.iter() if element.tag.endswith("InstdAmt"))
    assert "23.40" in amounts and "10.00" in amounts
    screenshot(treasurer, "settlement-approved")

    committee = page_as(Role.COMMITTEE)  # the same payments, as the committee's aggregates
    committee.goto("/console/flows?du=2026-02&au=2026-03")
    assert committee.locator("svg[role=img]").count() == 5
    committee.get_by_text("Voir les chiffres en tableau").first.click()
    assert "2026-03\t33,40" in committee.locator("section.chart").first.locator("table").inner_text()  # both farms are producers
    screenshot(committee, "flows")


def _draw(page: Any, *, title: str, phrase: str) -> list[tuple[str, str]]:
    """Creates a draw, registers the list, publishes the seed, runs it; returns (number, result)."""
    page.goto("/console/sortition")
    page.get_by_label("Titre").fill(title)
    page.get_by_label("Places, quartile 1, tranche 1").fill("1")
    page.get_by_role("button", name="Créer le tirage").click()
    page.wait_for_url(re.compile(r"/console/sortition/\d+$"))
    page.locator("textarea[name=content]").fill(VOLUNTEERS)
    page.get_by_role("button", name="Inscrire la liste").click()
    assert "10 volontaire(s) inscrit(s)" in page.get_by_role("status").inner_text()
    page.get_by_label("Phrase publique").fill(phrase)
    page.get_by_role("button", name="Publier la graine").click()
    assert page.locator("code.seed-hex").inner_text() and page.get_by_role("button", name="Lancer le tirage").is_visible()
    page.get_by_role("button", name="Lancer le tirage").click()
    assert "donne exactement le résultat enregistré" in page.locator("section[aria-labelledby=seed-title]").inner_text()
    rows = page.locator("table.volunteers tbody tr")
    # the result, before the invitation
    return [(rows.nth(i).locator("td").first.inner_text(), rows.nth(i).locator("td").nth(6).inner_text()) for i in range(rows.count())]


def test_a_sortition_run_twice_with_the_same_seed_gives_the_same_result(page_as: Any) -> None:
    page = page_as(Role.COORDINATOR)
    phrase = "Loto du samedi 5 décembre 2026 : 4 11 23 37 45"
    first = _draw(page, title="Tirage navigateur A", phrase=phrase)
    screenshot(page, "sortition-drawn")
    second = _draw(page, title="Tirage navigateur B", phrase=phrase)
    assert first == second
    results = [result for _, result in first]
    # Quartile 1: 3 volunteers in each age band, for 1 seat (18-34) and 2 seats (the others).
    assert len(results) == 10 and results.count("liste d'attente") == 2 + 1 + 1
