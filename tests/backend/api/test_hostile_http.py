"""Hostile HTTP: bodies built to break a parser, and anonymous callers who send a body anyway."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from caisse.models import RejectedUpload, TransactionRecord, Vendor
from tests.backend.factories import make_world

# Well under the 64 KiB upload limit, far deeper than Python's recursion limit.
DEEP_ARRAY = b"[" * 30_000 + b"]" * 30_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT, b'{"records": ' + DEEP_ARRAY + b"}"],
                         ids=["deep-array", "deep-object", "deep-inside-records"])
def test_deeply_nested_json_to_the_upload_is_a_400_not_a_500(client: TestClient, session: Session, body: bytes) -> None:
    world = make_world(session)
    answer = client.post(f"/v1/terminals/{world.terminal_id}/batches", content=body,
                         headers={"content-type": "application/json"})
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"] in ("invalid_json", "invalid_batch")
    stored = [session.execute(select(func.count()).select_from(t)).scalar_one() for t in (TransactionRecord, RejectedUpload)]
    assert stored == [0, 0]


@pytest.mark.parametrize("path", ["/v1/admin/vendors", "/v1/admin/households", "/v1/admin/cards", "/v1/admin/terminals",
                                  "/v1/admin/households/1/credits"])
def test_deeply_nested_json_to_the_admin_api_is_a_4xx(client: TestClient, admin_headers: dict[str, str], path: str) -> None:
    for body in (DEEP_ARRAY, DEEP_OBJECT):
        answer = client.post(path, content=body, headers=admin_headers | {"content-type": "application/json"})
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_json"), answer.text


@pytest.mark.parametrize("body", [b"{", DEEP_ARRAY, b'{"name": "X", "kind": "shop", "zone": "Nord"}'],
                         ids=["bad-json", "deep", "valid"])
def test_the_admin_api_checks_the_token_before_it_reads_the_body(client: TestClient, session: Session, body: bytes) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token"}):
        answer = client.post("/v1/admin/vendors", content=body, headers=headers | {"content-type": "application/json"})
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized"), answer.text
    assert session.execute(select(func.count()).select_from(Vendor)).scalar_one() == 0


def test_the_admin_api_does_not_read_an_anonymous_body(client: TestClient) -> None:
    """A body that would take the server time to receive is refused before a byte of it is read."""
    read = []

    def endless():  # noqa: ANN202 (a generator body for the test client)
        for _ in range(1_000):
            read.append(1)
            yield b"x" * 1024

    answer = client.post("/v1/admin/vendors", content=endless(), headers={"content-type": "application/json"})
    assert answer.status_code == 401
    assert len(read) < 1_000
