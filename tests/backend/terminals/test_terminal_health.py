"""Health reports on the sync request (docs/protocol.md#health-report): stored when signed by the
terminal, ignored otherwise, never failing the sync, never replaced by an older report."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from caisse.terminals import health as terminal_health
from caisse_common import protocol
from tests.backend.factories import World, make_world, new_key

REPORT = {
    "firmware": "0.2.0", "uptime_s": 3600, "boots": 4, "watchdog_resets": 1, "crash_resets": 2, "task_restarts": 7,
    "safe_mode_boots": 0, "errors": {"i2c": 3, "nfc": 1, "secure_element": 0, "flash": 0, "sync": 2, "other": 0},
    "last_error": "OSError: 19", "battery_mv": 3480, "battery_low": True, "unsent_records": 12,
    "unsigned_records": 0, "log_free_bytes": 480000,
}


def _header(report: object) -> str:
    return base64.b64encode(json.dumps(report).encode()).decode()


def _sync(client: TestClient, world: World, *, header: str | None, time_s: int | None = None, key=None,  # type: ignore[no-untyped-def]
          signature: str | None = None):
    time_s = int(time.time()) if time_s is None else time_s
    headers = {"X-Caisse-Time": str(time_s),
               "X-Caisse-Signature": protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, time_s, 0)).hex()}
    if header is not None:
        try:
            body = base64.b64decode(header, validate=True)
        except ValueError:
            body = header.encode()  # not base64: sign what was sent
        digest = protocol.health_digest(world.terminal_id, time_s, body)
        headers["X-Caisse-Health"] = header
        headers["X-Caisse-Health-Signature"] = signature if signature is not None else \
            protocol.sign_digest(key or world.chain.key, digest).hex()
    return client.get(f"/v1/terminals/{world.terminal_id}/sync", params={"since": 0}, headers=headers)


def _stored(session: Session, world: World):  # type: ignore[no-untyped-def]
    session.expire_all()
    row = terminal_health.latest(session, terminal_id=world.terminal_id)
    if row is not None:
        session.expunge(row)
    session.rollback()  # end the read: the next sync writes
    return row


def test_a_signed_report_is_stored_with_every_field(client: TestClient, session: Session) -> None:
    world = make_world(session)
    assert _stored(session, world) is None
    assert _sync(client, world, header=_header(REPORT)).status_code == 200
    row = _stored(session, world)
    assert row is not None
    assert (row.firmware_version, row.boots, row.watchdog_resets, row.crash_resets, row.task_restarts) == ("0.2.0", 4, 1, 2, 7)
    assert row.errors == REPORT["errors"] and row.last_error == "OSError: 19"
    assert (row.battery_mv, row.battery_low, row.unsent_records, row.log_free_bytes) == (3480, True, 12, 480000)


@pytest.mark.parametrize("case", ["other-key", "garbled-signature", "no-signature", "not-base64", "not-json",
                                  "negative", "bool-as-int", "unknown-part", "too-long", "non-ascii",
                                  "lost-first-only", "lost-reversed", "lost-from-zero"])
def test_a_bad_report_is_dropped_and_the_sync_answers_as_usual(client: TestClient, session: Session, case: str) -> None:
    world = make_world(session)
    header, key, signature = _header(REPORT), None, None
    if case == "other-key":
        key = new_key()
    elif case == "garbled-signature":
        signature = "zz" * 64
    elif case == "no-signature":
        signature = ""
    elif case == "not-base64":
        header = "not base64!"
    elif case == "not-json":
        header = base64.b64encode(b"{report").decode()
    elif case == "negative":
        header = _header(REPORT | {"boots": -1})
    elif case == "bool-as-int":
        header = _header(REPORT | {"boots": True})
    elif case == "unknown-part":
        header = _header(REPORT | {"errors": {"toaster": 1}})
    elif case == "too-long":
        header = _header(REPORT | {"padding": "x" * 2000})
    elif case == "non-ascii":
        header = _header(REPORT | {"last_error": "écran"})
    elif case == "lost-first-only":
        header = _header(REPORT | {"acked_seq": 9, "lost_first": 3})
    elif case == "lost-reversed":
        header = _header(REPORT | {"acked_seq": 9, "lost_first": 5, "lost_last": 4})
    elif case == "lost-from-zero":
        header = _header(REPORT | {"acked_seq": 9, "lost_first": 0, "lost_last": 4})
    response = _sync(client, world, header=header, key=key, signature=signature)
    assert response.status_code == 200 and response.json()["full"] is True
    assert _stored(session, world) is None


def test_an_older_report_never_replaces_a_newer_one(client: TestClient, session: Session) -> None:
    world = make_world(session)
    now = int(time.time())
    assert _sync(client, world, header=_header(REPORT | {"boots": 9}), time_s=now).status_code == 200
    assert _sync(client, world, header=_header(REPORT | {"boots": 8}), time_s=now - 60).status_code == 200
    row = _stored(session, world)
    assert row is not None and row.boots == 9 and row.terminal_time == now
    assert _sync(client, world, header=_header(REPORT | {"boots": 10}), time_s=now + 1).status_code == 200
    row = _stored(session, world)
    assert row is not None and row.boots == 10


def test_unknown_keys_from_a_newer_firmware_are_ignored(client: TestClient, session: Session) -> None:
    world = make_world(session)
    assert _sync(client, world, header=_header(REPORT | {"temperature_c": 31})).status_code == 200
    row = _stored(session, world)
    assert row is not None and row.boots == 4


def test_a_report_on_a_refused_sync_is_not_stored(client: TestClient, session: Session) -> None:
    world = make_world(session)
    response = _sync(client, world, header=_header(REPORT), time_s=int(time.time()) - 3600)
    assert response.status_code == 401 and response.json()["error"] == "clock_skew"
    assert _stored(session, world) is None


def test_a_terminal_acknowledged_further_than_the_database_is_recorded_and_kept(client: TestClient,
                                                                                 session: Session) -> None:
    """After a restore the backend's acked_seq (here 0) is behind the terminal's (7): the report
    says so, with the records the terminal no longer holds; a later report that is not ahead any
    more keeps the record of it, for the console to say whether the gap was filled."""
    world = make_world(session)
    older = _header(REPORT)  # a firmware that does not tell its acked_seq: nothing to compare
    now = int(time.time())
    assert _sync(client, world, header=older, time_s=now - 2).status_code == 200
    row = _stored(session, world)
    assert row is not None and (row.terminal_acked_seq, row.rewound_from_seq) == (None, None)
    ahead = _header(REPORT | {"acked_seq": 7, "lost_first": 1, "lost_last": 2})
    assert _sync(client, world, header=ahead, time_s=now - 1).status_code == 200
    row = _stored(session, world)
    assert row is not None
    assert (row.terminal_acked_seq, row.lost_first_seq, row.lost_last_seq) == (7, 1, 2)
    assert (row.rewound_from_seq, row.rewound_to_seq) == (7, 0)
    assert _sync(client, world, header=_header(REPORT | {"acked_seq": 0}), time_s=now).status_code == 200
    row = _stored(session, world)
    assert row is not None and (row.terminal_acked_seq, row.lost_first_seq) == (0, None)
    assert (row.rewound_from_seq, row.rewound_to_seq) == (7, 0)
