"""caisse.reports.directory: the console's searches of households and vendors."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from caisse.members import households as household_service
from caisse.reports import directory
from caisse.vendors import service as vendor_service


@pytest.mark.parametrize("query", ["\u00b2", "99999999999999999999", "0"])
def test_a_number_no_id_can_hold_finds_nothing_instead_of_failing(session: Session, query: str) -> None:
    """'²' passes str.isdigit() but int() refuses it; past 2**31 the drivers raise."""
    household_service.create_household(session, name="Famille Diallo", members=4, zone="Nord")
    vendor_service.create_vendor(session, name="Ferme des Lilas", kind="producer", zone="Nord")
    assert directory.search_households(session, query=query) == []
    assert directory.search_vendors(session, query=query) == []


def test_a_number_finds_the_household_and_the_vendor_with_that_id(session: Session) -> None:
    household = household_service.create_household(session, name="Famille Diallo", members=4, zone="Nord")
    vendor = vendor_service.create_vendor(session, name="Ferme des Lilas", kind="producer", zone="Nord")
    assert [row.household.id for row in directory.search_households(session, query=str(household.id))] == [household.id]
    assert [row.vendor.id for row in directory.search_vendors(session, query=f" {vendor.id} ")] == [vendor.id]
