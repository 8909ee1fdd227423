"""The terminal endpoints over HTTP: bad input is a 4xx JSON error and writes nothing."""

from __future__ import annotations

import asyncio
import base64

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse.config import Settings
from caisse.ingest import terminal_decisions
from caisse.ingest import upload as ingest
from caisse.main import create_app
from caisse.models import LedgerTransfer, RejectedUpload, TransactionRecord
from caisse.staff import accounts
from tests.backend.factories import make_world


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _nothing_written(session: Session) -> bool:
    counts = [
        session.execute(select(func.count()).select_from(table)).scalar_one()
        for table in (TransactionRecord, RejectedUpload)
    ]
    return counts == [0, 0]


def test_an_upload_returns_one_result_per_record_and_the_acked_seq(client: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=10_000)
    records = [world.chain.pay(world.uid, 300), b"\x01" * 100]
    response = client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": [_b64(r) for r in records]})
    assert response.status_code == 200
    body = response.json()
    assert body["acked_seq"] == 1
    assert body["results"][0] == {"index": 0, "seq": 1, "status": "accepted"}
    assert body["results"][1]["reason"] == "malformed" and body["results"][1]["seq"] is None
    assert "154 bytes" in body["results"][1]["detail"]


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b'["records"]', 422, "invalid_batch"),
        (b'{"records": "AAAA"}', 422, "invalid_batch"),
        (b'{"records": [12]}', 422, "invalid_batch"),
        (b'{"records": ["not base64!"]}', 422, "invalid_batch"),
        (b'{"records": [' + b",".join([b'"AAAA"'] * 257) + b"]}", 422, "invalid_batch"),
        (b'{"records": ["' + b"A" * 70_000 + b'"]}', 413, "batch_too_large"),
    ],
    ids=["not-json", "not-utf8", "a-list", "records-not-a-list", "not-strings", "bad-base64", "257-records", "over-64k"],
)
def test_bad_bodies_are_4xx_json_errors_and_write_nothing(
    client: TestClient, session: Session, content: bytes, status: int, error: str
) -> None:
    world = make_world(session)
    response = client.post(
        f"/v1/terminals/{world.terminal_id}/batches", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"] == error and response.json()["detail"]
    assert _nothing_written(session)


def test_an_unknown_terminal_is_403_and_writes_nothing(client: TestClient, session: Session) -> None:
    world = make_world(session)
    raw = world.chain.pay(world.uid, 100)
    for terminal_id in (world.terminal_id + 1, 0, 2**40):
        response = client.post(f"/v1/terminals/{terminal_id}/batches", json={"records": [_b64(raw)]})
        assert response.status_code == 403
        assert response.json()["error"] == "unknown_terminal"
    assert _nothing_written(session)


def test_a_revoked_terminal_is_403_terminal_revoked(client: TestClient, session: Session) -> None:
    world = make_world(session)
    terminal_decisions.revoke_terminal(session, terminal_id=world.terminal_id, by=accounts.SYSTEM)
    session.commit()
    raw = world.chain.pay(world.uid, 100)
    response = client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": [_b64(raw)]})
    assert (response.status_code, response.json()["error"]) == (403, "terminal_revoked")
    assert _nothing_written(session)


def test_a_non_numeric_terminal_id_is_a_4xx_json_error(client: TestClient) -> None:
    response = client.post("/v1/terminals/abc/batches", json={"records": []})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_batch"


def test_an_empty_batch_is_answered_with_the_current_acked_seq(client: TestClient, session: Session) -> None:
    world = make_world(session)
    response = client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": []})
    assert response.json() == {"results": [], "acked_seq": 0}
    assert session.execute(select(func.count()).select_from(LedgerTransfer)).scalar_one() == 1  # the allowance only


def test_an_unexpected_failure_mid_batch_is_a_json_500_and_rolls_back_everything(
    engine: Engine, settings: Settings, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session, balance_cents=10_000)

    def broken_bump(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")  # after records and transfers were written

    monkeypatch.setattr(ingest, "bump_cards", broken_bump)
    records = [_b64(world.chain.pay(world.uid, 100)), _b64(b"\x00" * 10)]
    with TestClient(create_app(settings, engine=engine), raise_server_exceptions=False) as client:
        response = client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": records})
    assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert _nothing_written(session)
    assert session.execute(select(func.count()).select_from(LedgerTransfer)).scalar_one() == 1  # the allowance only


@pytest.mark.parametrize("path", ["sync", "code-failures"])
def test_a_latin1_digit_in_the_time_header_is_401_not_500(client: TestClient, session: Session, path: str) -> None:
    """Headers are decoded as latin-1: b'\\xb2' is '²', which passes str.isdigit() but not int().
    Sent as raw ASGI, since the test client does not pass such a byte through."""
    world = make_world(session)
    session.commit()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http", "query_string": b"",
             "method": "GET" if path == "sync" else "POST", "path": f"/v1/terminals/{world.terminal_id}/{path}",
             "headers": [(b"host", b"test"), (b"x-caisse-time", b"\xb2"), (b"x-caisse-signature", b"00" * 64)]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 401 and b'"bad_signature"' in sent[1]["body"]
