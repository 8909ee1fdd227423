"""The rejection log cannot be used to fill the disk: it keeps a bounded summary of each rejected
upload, and a source can make it write only so much per minute. Every upload is still answered."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from contextlib import closing
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlmodel import Session

from caisse.ingest import upload as ingest
from caisse.models import RejectedUpload, utcnow
from caisse_common import protocol
from tests.backend.factories import make_world, new_key

GARBAGE_BATCHES = 30  # benchmarks/garbage.py sends 100


def _garbage_bodies() -> list[dict[str, list[str]]]:
    """Bodies just under the 64 KiB limit: one big record, or 256 small ones."""
    big = {"records": [base64.b64encode(os.urandom(47_000)).decode()]}
    many = {"records": [base64.b64encode(os.urandom(180)).decode() for _ in range(ingest.MAX_RECORDS_PER_BATCH)]}
    return [big, many]


def _database_bytes(engine: Engine) -> int:
    """The SQLite file (its write-ahead log folded in), or the rejection log's table on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(engine.url.database or "")) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return connection.execute("PRAGMA page_count").fetchone()[0] * connection.execute("PRAGMA page_size").fetchone()[0]
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_total_relation_size('rejected_upload')")).scalar_one()


def test_garbage_batches_are_answered_but_grow_the_database_by_a_bounded_amount(
    client: TestClient, session: Session, engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world(session)
    now = utcnow()
    monkeypatch.setattr(ingest, "utcnow", lambda: now)  # all within one minute
    before = _database_bytes(engine)
    bodies = _garbage_bodies()
    for index in range(GARBAGE_BATCHES):
        body = bodies[index % len(bodies)]
        answer = client.post(f"/v1/terminals/{world.terminal_id}/batches", json=body)
        assert answer.status_code == 200
        assert {r["reason"] for r in answer.json()["results"]} == {"malformed"}
        assert len(answer.json()["results"]) == len(body["records"])
    growth = _database_bytes(engine) - before
    logged = session.execute(select(func.count()).select_from(RejectedUpload)).scalar_one()
    assert logged == ingest.REJECTIONS_PER_SOURCE_PER_MINUTE
    assert growth <= 64 * 1024, f"{GARBAGE_BATCHES} garbage batches grew the database by {growth} bytes"


def test_a_rejection_is_logged_as_a_digest_its_size_and_why(session: Session, settings: object) -> None:
    world = make_world(session)
    garbage = os.urandom(5_000)
    result = ingest.ingest_batch(session, terminal_id=world.terminal_id, raw_records=[garbage], settings=settings)  # type: ignore[arg-type]
    session.commit()
    row = session.execute(select(RejectedUpload)).scalar_one()
    assert result.results[0].reason == ingest.Reason.MALFORMED
    assert (row.raw_sha256, row.raw_size, row.reason) == (hashlib.sha256(garbage).digest(), 5_000, "malformed")
    assert row.raw is None  # bytes nobody signed are not kept


def test_a_signed_record_refused_for_its_seq_is_kept_whole_as_evidence(session: Session, settings: object) -> None:
    world = make_world(session)
    genuine = world.chain.pay(world.uid, 100)
    ingest.ingest_batch(session, terminal_id=world.terminal_id, raw_records=[genuine], settings=settings)  # type: ignore[arg-type]
    other = protocol.signed(protocol.decode(genuine).__class__(**{**_fields(protocol.decode(genuine)), "amount_cents": 999}),
                            world.chain.key).encode()
    result = ingest.ingest_batch(session, terminal_id=world.terminal_id, raw_records=[other], settings=settings)  # type: ignore[arg-type]
    session.commit()
    assert result.results[0].reason == ingest.Reason.SEQ_CONFLICT
    row = session.execute(select(RejectedUpload)).scalar_one()
    assert row.raw == other and row.raw_size == protocol.RECORD_SIZE  # 154 bytes the terminal's key signed


def _fields(record: protocol.Record) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}  # type: ignore[attr-defined]


def test_one_source_flooding_does_not_use_up_another_s_budget_and_a_new_minute_renews_it(
    session: Session, settings: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    flooder, other = make_world(session), make_world(session)
    now = utcnow()
    monkeypatch.setattr(ingest, "utcnow", lambda: now)
    garbage = [os.urandom(200) for _ in range(ingest.MAX_RECORDS_PER_BATCH)]
    for _ in range(3):
        ingest.ingest_batch(session, terminal_id=flooder.terminal_id, raw_records=garbage, settings=settings)  # type: ignore[arg-type]
    forged = protocol.signed(protocol.decode(other.chain.pay(other.uid, 100)), new_key()).encode()
    result = ingest.ingest_batch(session, terminal_id=other.terminal_id, raw_records=[forged], settings=settings)  # type: ignore[arg-type]
    assert result.results[0].reason == ingest.Reason.BAD_SIGNATURE
    session.commit()

    def logged(terminal_id: int) -> int:
        return session.execute(select(func.count()).select_from(RejectedUpload)
                               .where(RejectedUpload.terminal_id == terminal_id)).scalar_one()  # type: ignore[arg-type]

    assert (logged(flooder.terminal_id), logged(other.terminal_id)) == (ingest.REJECTIONS_PER_SOURCE_PER_MINUTE, 1)
    monkeypatch.setattr(ingest, "utcnow", lambda: now + timedelta(seconds=60))
    ingest.ingest_batch(session, terminal_id=flooder.terminal_id, raw_records=garbage[:3], settings=settings)  # type: ignore[arg-type]
    session.commit()
    assert logged(flooder.terminal_id) == ingest.REJECTIONS_PER_SOURCE_PER_MINUTE + 3
    assert ingest.dropped_rejections(session, terminal_id=flooder.terminal_id) == 3 * len(garbage) - ingest.REJECTIONS_PER_SOURCE_PER_MINUTE
