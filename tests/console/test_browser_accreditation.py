"""The accreditation pages in real Chromium: a coordinator renews an ending accreditation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from caisse.db import session_factory
from caisse.models import Role
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service
from tests.console.conftest import EMAILS, screenshot


def test_a_coordinator_sees_the_warning_then_renews_after_reading_the_changes(page_as: Any, console_db: Engine) -> None:
    today = datetime.now(ZoneInfo("Europe/Paris")).date()
    with session_factory(console_db)() as session:
        vendor = vendor_service.create_vendor(session, name="Verger Navigateur", kind="producer", zone="Nord",
                                     convention_end=today + timedelta(days=10))
        criterion = accreditation.add_criterion(session, label="Vente en circuit court (navigateur)",
                                                by=EMAILS[Role.COORDINATOR])
        session.commit()
        vendor_id, criterion_label = vendor.id, criterion.label
    page = page_as(Role.COORDINATOR)
    page.goto("/console")
    page.get_by_role("link", name="Verger Navigateur").click()
    page.wait_for_url(re.compile(rf"/console/vendors/{vendor_id}/accreditation$"))
    assert "dans 10 jours" in page.get_by_role("status").inner_text()
    renewed = today + timedelta(days=375)
    page.get_by_label("Fin").fill(renewed.isoformat())
    page.get_by_label("Visite le").fill(today.isoformat())
    page.get_by_label("Visite faite par").fill("Awa Diallo")
    page.get_by_label("Formation le").fill(today.isoformat())
    page.get_by_label(criterion_label).check()
    page.get_by_role("button", name="Voir les changements").click()
    assert page.get_by_role("row", name=re.compile("Fin")).get_by_text(f"{renewed:%d/%m/%Y}").is_visible()
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    screenshot(page, "accreditation-confirm")
    page.get_by_role("button", name="Confirmer ces changements").click()
    assert page.get_by_role("status").first.inner_text().startswith("Conventionnement enregistré")
    assert page.get_by_role("row").filter(has_text=f"{renewed:%d/%m/%Y}").count() == 1  # the new state
    screenshot(page, "accreditation")
