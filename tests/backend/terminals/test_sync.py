"""Terminal sync (docs/protocol.md#sync): signed-time auth, deltas, paging, deny list."""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.cards.service import MAX_CARDS_PER_HOUSEHOLD
from caisse.cards.versions import bump_cards
from caisse.db import table_of
from caisse.errors import Conflict
from caisse.ingest import terminal_decisions
from caisse.members import households as household_service
from caisse.models import Card, Terminal, utcnow
from caisse.staff import accounts
from caisse.terminals.sync import MAX_CARDS_PER_SYNC, unpack_cards
from caisse_common import protocol
from tests.backend.factories import World, make_world, new_uid


def _sync(client: TestClient, world: World, *, since: int = 0, time_s: int | None = None, key=None,  # type: ignore[no-untyped-def]
          firmware: str | bytes | None = None):
    time_s = int(time.time()) if time_s is None else time_s
    signature = protocol.sign_digest(key or world.chain.key, protocol.sync_digest(world.terminal_id, time_s, since))
    headers: dict[str, str | bytes] = {"X-Caisse-Time": str(time_s), "X-Caisse-Signature": signature.hex()}
    return client.get(
        f"/v1/terminals/{world.terminal_id}/sync",
        params={"since": since},
        headers=headers | ({"X-Caisse-Firmware": firmware} if firmware is not None else {}),
    )


def _entries(body: dict) -> dict[bytes, tuple[int, int]]:
    return {e.uid: (e.status, e.balance_cents) for e in unpack_cards(base64.b64decode(body["cards"]))}


def test_a_signed_sync_returns_every_card_with_its_balance_and_the_limits(client: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=12_345)
    response = _sync(client, world)
    assert response.status_code == 200
    body = response.json()
    assert body["full"] is True and body["more"] is False
    assert _entries(body) == {world.uid: (0, 12_345)}
    assert body["limits"]["max_payment_cents"] == 15_000
    assert body["acked_seq"] == 0
    assert abs(body["server_time"] - time.time()) < 60


def test_a_time_outside_the_window_is_401_clock_skew_with_the_server_time(client: TestClient, session: Session) -> None:
    world = make_world(session)
    response = _sync(client, world, time_s=int(time.time()) - 301 - 5)
    assert response.status_code == 401
    assert response.json()["error"] == "clock_skew"
    assert abs(response.json()["server_time"] - time.time()) < 60


def test_a_signature_by_another_key_is_401_bad_signature(client: TestClient, session: Session) -> None:
    world = make_world(session)
    other = make_world(session)
    response = _sync(client, world, key=other.chain.key)
    assert (response.status_code, response.json()["error"]) == (401, "bad_signature")


def test_missing_or_garbled_auth_headers_are_401(client: TestClient, session: Session) -> None:
    world = make_world(session)
    url = f"/v1/terminals/{world.terminal_id}/sync"
    assert client.get(url).status_code == 401
    response = client.get(url, headers={"X-Caisse-Time": "soon", "X-Caisse-Signature": "zz"})
    assert (response.status_code, response.json()["error"]) == (401, "bad_signature")


def test_a_revoked_or_unknown_terminal_is_403(client: TestClient, session: Session) -> None:
    world = make_world(session)
    terminal_decisions.revoke_terminal(session, terminal_id=world.terminal_id, by=accounts.SYSTEM)
    session.commit()
    assert _sync(client, world).json()["error"] == "terminal_revoked"
    ghost = World(world.vendor_id, world.household_id, world.uid, world.chain)
    ghost.chain = type(world.chain)(world.terminal_id + 100, world.chain.key)
    response = _sync(client, ghost)
    assert (response.status_code, response.json()["error"]) == (403, "unknown_terminal")


def _firmware_version(session: Session, world: World) -> str | None:
    version = session.execute(select(Terminal.firmware_version).where(Terminal.id == world.terminal_id)).scalar_one()  # type: ignore[arg-type]
    session.rollback()  # end the read: the next sync writes
    return version


def test_the_reported_firmware_version_is_stored_and_kept_when_absent(client: TestClient, session: Session) -> None:
    world = make_world(session)
    assert _sync(client, world).status_code == 200
    assert _firmware_version(session, world) is None
    assert _sync(client, world, firmware="0.1.0").status_code == 200
    assert _firmware_version(session, world) == "0.1.0"
    assert _sync(client, world, firmware="v" * 32).status_code == 200
    assert _firmware_version(session, world) == "v" * 32
    assert _sync(client, world).status_code == 200  # an older firmware says nothing: keep what is known
    assert _firmware_version(session, world) == "v" * 32


@pytest.mark.parametrize("firmware", ["v" * 33, b"1.0\xe9", "1.0\t2", ""])
def test_a_malformed_firmware_version_is_ignored_and_the_sync_still_answers(
    client: TestClient, session: Session, firmware: str | bytes
) -> None:
    world = make_world(session)
    assert _sync(client, world, firmware="0.1.0").status_code == 200
    response = _sync(client, world, firmware=firmware)
    assert response.status_code == 200 and response.json()["full"] is True
    assert _firmware_version(session, world) == "0.1.0"


def test_since_returns_only_cards_changed_after_it_and_blocked_cards_appear(client: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=5_000)
    other_uid = new_uid()
    card_service.issue_card(session, household_id=world.household_id, uid_hex=other_uid.hex())
    session.commit()
    version = _sync(client, world).json()["cards_version"]
    assert _entries(_sync(client, world, since=version).json()) == {}

    card_service.block_card(session, uid_hex=other_uid.hex())
    session.commit()
    delta = _sync(client, world, since=version).json()
    assert delta["full"] is False
    assert _entries(delta) == {other_uid: (1, 5_000)}
    assert delta["cards_version"] > version


def test_a_payment_sends_the_new_balance_of_every_card_of_the_household(client: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=5_000)
    second = new_uid()
    card_service.issue_card(session, household_id=world.household_id, uid_hex=second.hex())
    session.commit()
    version = _sync(client, world).json()["cards_version"]
    record = base64.b64encode(world.chain.pay(world.uid, 1_500)).decode()
    assert client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": [record]}).status_code == 200
    delta = _sync(client, world, since=version).json()
    assert _entries(delta) == {world.uid: (0, 3_500), second: (0, 3_500)}
    assert delta["acked_seq"] == 1


def test_more_than_512_changed_cards_are_paged_without_splitting_a_version(client: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=0)
    households = [household_service.create_household(session, name=f"Foyer {n}", members=1, zone="Nord") for n in range(40)]
    session.flush()
    cards = [{"uid": new_uid(), "household_id": h.id, "status": "active", "sync_version": 0, "created_at": utcnow()}
             for h in households for _ in range(15)]
    session.execute(insert(table_of(Card)), cards)  # fast path for 600 cards)
    for household in households:  # a household's cards share the version of its last balance change
        household_service.credit_household(session, household_id=household.id or 0, amount_cents=100)
    session.commit()
    pages, since = [], 0
    while True:
        body = _sync(client, world, since=since).json()
        pages.append(_entries(body))
        assert len(pages[-1]) <= MAX_CARDS_PER_SYNC
        since = body["cards_version"]
        if not body["more"]:
            break
    assert len(pages) == 2
    seen = [uid for page in pages for uid in page]
    assert len(seen) == len(set(seen)) == 40 * 15 + 1  # every card exactly once, the world's own included
    assert all(balance == 100 for page in pages for uid, (_, balance) in page.items() if uid != world.uid)


def test_a_household_holds_at_most_sixteen_cards(session: Session) -> None:
    world = make_world(session)
    for _ in range(MAX_CARDS_PER_HOUSEHOLD - 1):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    with pytest.raises(Conflict):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())


def test_one_bump_gives_each_household_its_own_version_so_pages_can_end_between_them(session: Session) -> None:
    households = [household_service.create_household(session, name=f"Foyer {n}", members=2, zone="Sud") for n in range(3)]
    for household in households:
        for _ in range(2):
            card_service.issue_card(session, household_id=household.id or 0, uid_hex=new_uid().hex())
    last = bump_cards(session, household_ids=[h.id or 0 for h in households])
    session.commit()
    versions = {
        h.id: {c.sync_version for c in household_service.household_cards(session, household_id=h.id or 0)} for h in households
    }
    assert all(len(v) == 1 for v in versions.values())
    assert sorted(next(iter(v)) for v in versions.values()) == [last - 2, last - 1, last]
