"""caisse.reports.records: the console's record search."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from caisse.config import Settings
from caisse.ingest.upload import Outcome, ingest_batch
from caisse.reports import records
from tests.backend.factories import make_world


def test_the_widest_dates_a_form_can_send_bound_nothing_instead_of_overflowing(session: Session, settings: Settings) -> None:
    world = make_world(session)
    raw = world.chain.pay(world.uid, 500)
    result = ingest_batch(session, terminal_id=world.terminal_id, raw_records=[raw], settings=settings)
    assert result.results[0].status == Outcome.ACCEPTED
    found = records.search(session, where=records.RecordFilter(first_day=date.min, last_day=date.max), timezone="Europe/Paris")
    assert [row.seq for row in found] == [1]
