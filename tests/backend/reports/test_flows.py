"""Flows (caisse.reports.flows): spending by vendor kind and neighbourhood, month by month, producers'
share and active members, from real ingested records on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.errors import InvalidInput
from caisse.ingest import review
from caisse.ingest.upload import Outcome, ingest_batch
from caisse.members import households as household_service
from caisse.models import TransactionRecord
from caisse.reports import flows
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.factories import Chain, new_key, new_uid

PARIS = "Europe/Paris"


def _at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


class Town:
    """Three vendors in two neighbourhoods, two households living in two others."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session, self.settings = session, settings
        self.chains: dict[str, Chain] = {}
        self.vendor_ids: dict[str, int] = {}
        for name, kind, zone in (("Ferme des Lilas", "producer", "Nord"), ("Épicerie Bio", "epicerie", "Centre"),
                                 ("Stand Primeurs", "market_stall", "Centre")):
            vendor = vendor_service.create_vendor(session, name=name, kind=kind, zone=zone)
            key = new_key()
            terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id, public_key_hex=protocol.public_key_bytes(key).hex())  # type: ignore[arg-type]
            assert vendor.id is not None and terminal.id is not None
            self.chains[name], self.vendor_ids[name] = Chain(terminal.id, key), vendor.id
        self.uids: dict[str, bytes] = {}
        for name, zone in (("Diallo", "Mosson"), ("Martin", "Ecusson")):
            household = household_service.create_household(session, name=name, members=2, zone=zone)
            assert household.id is not None
            self.uids[name] = new_uid()
            card_service.issue_card(session, household_id=household.id, uid_hex=self.uids[name].hex())
            household_service.credit_household(session, household_id=household.id, amount_cents=100_000)
        session.commit()

    def pay(self, vendor: str, household: str, amount_cents: int, when: str) -> int:
        chain = self.chains[vendor]
        self._upload(chain, chain.pay(self.uids[household], amount_cents, time=_at(when)))
        return len(chain.records)

    def void(self, vendor: str, seq: int, when: str) -> None:
        chain = self.chains[vendor]
        self._upload(chain, chain.void(seq, time=_at(when)))

    def record_id(self, vendor: str, seq: int) -> int:
        terminal_id = self.chains[vendor].terminal_id
        query = select(TransactionRecord.id).where(TransactionRecord.terminal_id == terminal_id, TransactionRecord.seq == seq)  # type: ignore[call-overload]
        return int(self.session.execute(query).scalar_one())

    def _upload(self, chain: Chain, raw: bytes) -> None:
        result = ingest_batch(self.session, terminal_id=chain.terminal_id, raw_records=[raw], settings=self.settings)
        self.session.commit()
        assert [r.status for r in result.results] == [Outcome.ACCEPTED], result  # a refused tap would fake the sums


@pytest.fixture
def town(session: Session, settings: Settings, deciders: dict[str, str]) -> Town:
    town = Town(session, settings)
    # January in Paris time. 2026-01-31 23:30 in Paris is 22:30 UTC: still January.
    town.pay("Ferme des Lilas", "Diallo", 1_000, "2026-01-05T09:00")
    town.pay("Ferme des Lilas", "Martin", 2_000, "2026-01-31T22:30")
    town.pay("Épicerie Bio", "Diallo", 3_000, "2026-01-10T10:00")
    voided = town.pay("Épicerie Bio", "Martin", 4_900, "2026-01-10T10:01")
    town.void("Épicerie Bio", voided, "2026-01-10T10:02")  # keyed wrong, voided: not spending
    # February in Paris time: 2026-02-01 00:30 in Paris is 2026-01-31 23:30 UTC.
    town.pay("Stand Primeurs", "Martin", 500, "2026-01-31T23:30")
    town.pay("Ferme des Lilas", "Diallo", 4_000, "2026-02-14T08:00")
    held = town.pay("Stand Primeurs", "Diallo", 700, "2026-02-15T08:00")
    rejected = town.pay("Stand Primeurs", "Diallo", 4_800, "2026-02-15T08:05")
    review.hold(session, record_ids=[town.record_id("Stand Primeurs", held), town.record_id("Stand Primeurs", rejected)],
                reason="carte signalée")
    review.reject(session, record_id=town.record_id("Stand Primeurs", rejected), by=deciders["coordinatrice"])
    town.pay("Ferme des Lilas", "Diallo", 2_600, "2026-03-01T09:00")  # after the period
    session.commit()
    return town


def test_spending_by_vendor_kind_and_neighbourhood_month_by_month(session: Session, town: Town) -> None:
    result = flows.flows(session, first="2026-01", last="2026-02", timezone=PARIS)
    assert result.months == ("2026-01", "2026-02")
    assert result.by_vendor_kind == {"epicerie": (3_000, 0), "market_stall": (0, 1_200), "producer": (3_000, 4_000)}
    assert result.total_cents == (6_000, 5_200)
    assert result.by_vendor_zone == {"Centre": (3_000, 1_200), "Nord": (3_000, 4_000)}
    assert result.by_household_zone == {"Ecusson": (2_000, 500), "Mosson": (4_000, 4_700)}
    for breakdown in (result.by_vendor_kind, result.by_vendor_zone, result.by_household_zone):
        assert tuple(map(sum, zip(*breakdown.values(), strict=True))) == result.total_cents


def test_the_share_reaching_producers_and_active_members(session: Session, town: Town) -> None:
    result = flows.flows(session, first="2026-01", last="2026-03", timezone=PARIS)
    assert result.producer_cents == (3_000, 4_000, 2_600)
    assert result.producer_share_bp == (5_000, 7_692, 10_000)  # 4000 / 5200 = 76.92 %
    assert result.active_members == (2, 2, 1)
    by_name = {vendor.name: vendor for vendor in result.vendors}
    assert by_name["Ferme des Lilas"].members == (2, 1, 1)
    assert by_name["Ferme des Lilas"].spent_cents == (3_000, 4_000, 2_600)
    assert by_name["Épicerie Bio"].members == (1, 0, 0)  # the voided payment's household is not active there
    assert by_name["Stand Primeurs"].members == (0, 2, 0)
    assert [vendor.name for vendor in result.vendors] == sorted(by_name)


def test_a_period_without_spending_is_all_zero_and_has_no_share(session: Session, town: Town) -> None:
    result = flows.flows(session, first="2025-11", last="2025-12", timezone=PARIS)
    assert result.total_cents == (0, 0) and result.by_vendor_kind == {} and result.producer_share_bp == (None, None)
    assert all(vendor.members == (0, 0) for vendor in result.vendors)


def test_month_span_crosses_years_and_refuses_bad_periods() -> None:
    assert [str(m) for m in flows.month_span(first="2025-11", last="2026-02")] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    for first, last in (("2026-03", "2026-02"), ("2020-01", "2026-01"), ("2026-13", "2026-12")):
        with pytest.raises(InvalidInput):
            flows.month_span(first=first, last=last)


def test_share_is_exact_integer_basis_points() -> None:
    assert flows.share_bp(1, 3) == 3_333 and flows.share_bp(2, 3) == 6_667 and flows.share_bp(0, 0) is None
