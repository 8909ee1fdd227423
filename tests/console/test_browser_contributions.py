"""Contributions and the year's budget in real Chromium at 768 px (fixtures: tests/console/conftest.py):
the treasurer reads who is behind beside the scale and downloads the State's matching claim; the
committee reads the year's budget; neither page is wider than the tablet."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from caisse.db import session_factory
from caisse.fund import service as fund
from caisse.members import households as household_service
from caisse.members import means
from caisse.models import Household, Role
from tests.console.conftest import EMAILS, screenshot
from tests.fixtures.database import make_settings

MONTH = "2026-07"  # a month no other browser test records contributions for
TABLET = {"width": 768, "height": 1024}


def _no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]


def test_the_treasurer_sees_who_is_behind_and_downloads_the_claim_and_the_committee_the_year(
    page_as: Any, console_db: Engine,
) -> None:
    settings = make_settings(str(console_db.url))
    with session_factory(console_db)() as session:
        ids = []
        for name in ("Foyer Coquelicot", "Foyer Bleuet"):
            household = household_service.create_household(session, name=name, members=2, zone="Sud")
            assert household.id is not None
            ids.append(household.id)
        session.execute(update(Household).where(Household.id.in_(ids)).values(  # type: ignore[union-attr]
            created_at=datetime(2026, 6, 30, 22, 0, tzinfo=UTC)))  # July 1 at midnight in Paris
        for household_id, quartile, chosen in zip(ids, (1, 3), (1_500, 5_000), strict=True):
            means.record_means(session, household_id=household_id, effective_month=MONTH, size=2, income_quartile=quartile,
                               chosen_contribution_cents=chosen, by=EMAILS[Role.TREASURER], settings=settings)
        fund.record_contribution(session, household_id=ids[1], month=MONTH, amount_cents=5_000, settings=settings,
                                 reference="JUIL-BLEUET")
        session.commit()

    treasurer = page_as(Role.TREASURER)
    treasurer.set_viewport_size(TABLET)
    treasurer.goto("/console")
    treasurer.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name="Cotisations").click()
    treasurer.get_by_label("Jusqu'au mois").fill(MONTH)
    treasurer.get_by_label("Seulement les foyers en retard").check()
    treasurer.get_by_role("button", name="Afficher").click()
    treasurer.wait_for_url(re.compile(r"retard=1"))
    row = treasurer.locator("#cotisations tbody tr", has_text="Foyer Coquelicot")
    assert re.search(r"10,00 €\s+15,00 €\s+15,00 €\s+0,00 €\s+15,00 €\s+1 \(depuis 2026-07\)", row.inner_text())
    assert treasurer.locator("#cotisations tbody tr", has_text="Foyer Bleuet").count() == 0
    assert "ne suspend ni ne réduit jamais une allocation" in treasurer.locator("#politique").inner_text()
    _no_sideways_scroll(treasurer)
    with treasurer.expect_download() as download:
        treasurer.get_by_role("link", name="Télécharger le CSV").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8-sig")), delimiter=";"))
    assert ["JUIL-BLEUET", "50,00"] == [rows[2][1], rows[2][3]] and rows[-2][-1] == "25,00"
    with treasurer.expect_download() as download:
        treasurer.get_by_role("link", name="Télécharger le PDF").click()
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
    screenshot(treasurer, "contributions-768")
    # Bleuet chooses less from August: recorded through the form, audited under the treasurer's name.
    treasurer.get_by_label("Numéro du foyer").fill(str(ids[1]))
    treasurer.get_by_label("À partir du mois").fill("2026-08")
    treasurer.get_by_label("Nombre de personnes").fill("3")
    treasurer.get_by_label("Quartile de revenu").select_option("2")
    treasurer.get_by_label("Cotisation choisie (€ par mois)").fill("20,00")
    treasurer.get_by_role("button", name="Enregistrer les moyens").click()
    assert f"Moyens du foyer {ids[1]} enregistrés à partir de 2026-08." in treasurer.get_by_role("status").inner_text()
    _no_sideways_scroll(treasurer)

    committee = page_as(Role.COMMITTEE)
    committee.set_viewport_size(TABLET)
    committee.goto("/console/budget?annee=2026")
    year = committee.locator("#budget-annee")
    assert "Abondement de l'État" in year.inner_text() and "Reste" in year.inner_text()
    # The year's table fits the tablet without scrolling; the month-by-month one scrolls in its own frame.
    assert year.evaluate("table => table.scrollWidth <= table.parentElement.clientWidth")
    _no_sideways_scroll(committee)
    assert committee.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name="Cotisations").count() == 0
    screenshot(committee, "budget-year-768")
