"""The shortcuts of ingestion's hot path give the answers of the long way round."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from caisse.api.routes.terminals import batch_response_json
from caisse.ingest import upload
from caisse.ingest.upload import BatchResult, Outcome, Reason, RecordResult
from caisse.vendors import accreditation

HOUR_S = 3600


def at(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


ZONES = ["Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12", "America/St_Johns"]
MOMENTS = range(at(2025, 12, 28), at(2026, 2, 5), HOUR_S // 4)  # every quarter hour, across every bound
HISTORIES = {
    "one state, no dates": [accreditation.State("active", None, None, at(2026, 1, 3))],
    "one state, both dates": [accreditation.State("active", date(2026, 1, 5), date(2026, 1, 31), at(2026, 1, 3))],
    "pending then active": [accreditation.State("pending", None, None, at(2026, 1, 1)),
                            accreditation.State("active", date(2026, 1, 5), date(2026, 1, 31), at(2026, 1, 3, 7))],
    "active then suspended": [accreditation.State("active", None, None, at(2026, 1, 1)),
                              accreditation.State("suspended", None, None, at(2026, 1, 20))],
    "no history": [],
}


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("name", HISTORIES)
def test_a_moment_inside_the_surely_accredited_window_is_accredited(name: str, zone: str) -> None:
    history, tz = HISTORIES[name], ZoneInfo(zone)
    open_from_s, open_until_s = upload._surely_accredited(history)
    inside = [m for m in MOMENTS if open_from_s <= m < open_until_s]
    assert all(accreditation.unaccredited_reason(history, m, tz) is None for m in inside)


@pytest.mark.parametrize("name", ["one state, no dates", "one state, both dates", "pending then active"])
def test_the_window_leaves_out_at_most_a_day_around_each_bound_of_the_last_state(name: str) -> None:
    history, paris = HISTORIES[name], ZoneInfo("Europe/Paris")
    open_from_s, open_until_s = upload._surely_accredited(history)
    left_out = [m for m in MOMENTS if accreditation.unaccredited_reason(history, m, paris) is None
                and not open_from_s <= m < open_until_s]
    assert len(left_out) <= 2 * 24 * 4


def test_the_hand_written_response_is_what_json_dumps_writes() -> None:
    results = [
        RecordResult(0, 1, Outcome.ACCEPTED),
        RecordResult(1, 2**32 - 1, Outcome.DUPLICATE),
        RecordResult(2, None, Outcome.REJECTED, Reason.MALFORMED, 'a v1 record is 154 bytes, got 3 "quoted" \\ é'),
        RecordResult(3, 7, Outcome.REJECTED, Reason.UNKNOWN_CARD),
        RecordResult(4, 8, Outcome.REJECTED, Reason.BAD_CHAIN, "the stored record 9 does not point to this one"),
    ]
    expected = json.dumps(
        {"results": [{"index": r.index, "seq": r.seq, "status": r.status.value}
                     | ({"reason": r.reason.value} if r.reason is not None else {})
                     | ({"detail": r.detail} if r.detail is not None else {}) for r in results],
         "acked_seq": 5},
        separators=(",", ":"),
    ).encode()
    assert batch_response_json(BatchResult(results=results, acked_seq=5)) == expected
    assert batch_response_json(BatchResult(results=[], acked_seq=0)) == b'{"results":[],"acked_seq":0}'
