"""Member codes (docs/cards.md, "Member code"): the verifier terminals get at sync, and the wrong
tries they report back (docs/protocol.md, "Member code failures")."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner

from caisse import admin, member_codes, protocol
from caisse.cli import app
from caisse.errors import InvalidInput
from caisse.sync import unpack_cards
from tests.backend.factories import World, make_world, new_uid


def _sync_entries(client: TestClient, world: World, since: int = 0) -> dict[bytes, tuple[bytes, bytes]]:
    now = int(time.time())
    signature = protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, now, since))
    body = client.get(f"/v1/terminals/{world.terminal_id}/sync", params={"since": since},
                      headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()}).json()
    return {e.uid: (e.code_salt, e.code_verifier) for e in unpack_cards(base64.b64decode(body["cards"]))}


def _report(client: TestClient, world: World, body: bytes, *, time_s: int | None = None, key=None):  # type: ignore[no-untyped-def]
    time_s = int(time.time()) if time_s is None else time_s
    signature = protocol.sign_digest(key or world.chain.key, protocol.code_failures_digest(world.terminal_id, time_s, body))
    return client.post(f"/v1/terminals/{world.terminal_id}/code-failures", content=body,
                       headers={"X-Caisse-Time": str(time_s), "X-Caisse-Signature": signature.hex(),
                                "Content-Type": "application/octet-stream"})


def _entry(uid: bytes, failures: int, locked: bool = False) -> bytes:
    return member_codes.FAILURE_ENTRY.pack(len(uid), uid, failures, int(locked), 0)


def test_a_household_code_reaches_every_card_as_salt_and_verifier(client: TestClient, session: Session) -> None:
    world = make_world(session)
    second = new_uid()
    admin.issue_card(session, household_id=world.household_id, uid_hex=second.hex())
    session.commit()
    assert _sync_entries(client, world)[world.uid] == (bytes(8), bytes(8))  # no code yet
    version = admin.get_card(session, uid_hex=world.uid.hex()).sync_version
    member_codes.set_code(session, household_id=world.household_id, code="0427")
    session.commit()
    delta = _sync_entries(client, world, since=version)
    assert set(delta) == {world.uid, second}  # a new version for every card of the household
    salt, verifier = delta[world.uid]
    assert salt != bytes(8) and delta[second] == (salt, verifier)
    assert verifier == hashlib.sha256(salt + b"0427").digest()[:8]
    member_codes.clear_code(session, household_id=world.household_id)
    session.commit()
    assert _sync_entries(client, world)[world.uid] == (bytes(8), bytes(8))


def test_setting_the_same_code_again_gives_a_new_salt(session: Session) -> None:
    world = make_world(session)
    salts = set()
    for _ in range(2):
        member_codes.set_code(session, household_id=world.household_id, code="1111")
        session.flush()
        salts.add(admin.get_household(session, household_id=world.household_id).code_salt)
        session.expire_all()
    assert len(salts) == 2


@pytest.mark.parametrize("code", ["123", "12345", "12a4", "١٢٣٤", ""])
def test_a_member_code_is_exactly_four_ascii_digits(session: Session, code: str) -> None:
    world = make_world(session)
    with pytest.raises(InvalidInput):
        member_codes.set_code(session, household_id=world.household_id, code=code)


def test_the_sync_limits_carry_the_code_tries_and_the_basic_card_ceiling(client: TestClient, session: Session) -> None:
    world = make_world(session)
    now = int(time.time())
    signature = protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, now, 0))
    limits = client.get(f"/v1/terminals/{world.terminal_id}/sync",
                        headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()}).json()["limits"]
    assert (limits["code_max_tries"], limits["basic_card_max_payment_cents"]) == (3, 5_000)


def test_reported_wrong_codes_add_up_per_terminal_and_card(client: TestClient, session: Session) -> None:
    world = make_world(session)
    stranger = new_uid()  # not one of ours: ignored
    first = _report(client, world, _entry(world.uid, 2) + _entry(stranger, 9))
    assert (first.status_code, first.json()) == (200, {"recorded": 1})
    assert _report(client, world, _entry(world.uid, 1, locked=True)).json() == {"recorded": 1}
    assert _report(client, world, b"").json() == {"recorded": 0}
    card = admin.get_card(session, uid_hex=world.uid.hex())
    assert card.id is not None
    [failures] = member_codes.card_failures(session, card_id=card.id)
    assert (failures.terminal_id, failures.failures, failures.locked) == (world.terminal_id, 3, True)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"\x04" * 14, 422, "invalid_code_failures"),  # not a whole entry
        (member_codes.FAILURE_ENTRY.pack(5, bytes(10), 1, 0, 0), 422, "invalid_code_failures"),  # UID length
        (member_codes.FAILURE_ENTRY.pack(4, b"\x01" * 10, 1, 0, 0), 422, "invalid_code_failures"),  # padding
        (member_codes.FAILURE_ENTRY.pack(4, b"\x01" * 4 + bytes(6), 1, 2, 0), 422, "invalid_code_failures"),  # locked
        (bytes(15) * 513, 413, "body_too_large"),
    ],
)
def test_a_malformed_report_changes_nothing(client: TestClient, session: Session, body: bytes, status: int, error: str) -> None:
    world = make_world(session)
    response = _report(client, world, body)
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_a_report_is_signed_like_a_sync(client: TestClient, session: Session) -> None:
    world, other = make_world(session), make_world(session)
    body = _entry(world.uid, 1)
    forged = _report(client, world, body, key=other.chain.key)
    assert (forged.status_code, forged.json()["error"]) == (401, "bad_signature")
    late = _report(client, world, body, time_s=int(time.time()) - 3_600)
    assert (late.status_code, late.json()["error"]) == (401, "clock_skew")
    missing = client.post(f"/v1/terminals/{world.terminal_id}/code-failures", content=body)
    assert missing.status_code == 401
    card = admin.get_card(session, uid_hex=world.uid.hex())
    assert card.id is not None and member_codes.card_failures(session, card_id=card.id) == []


def test_staff_set_a_code_at_the_prompt_and_see_a_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None, code: int = 0) -> str:
        result = runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == code, result.output
        return result.output

    household = invoke("member", "add", "--name", "Famille Diallo", "--members", "3", "--zone", "Nord").splitlines()[0]
    invoke("member", "set-code", household, stdin="0427\n0427\n")
    invoke("member", "set-code", household, stdin="12\n12\n", code=1)
    invoke("card", "issue", "--household", household, "--uid", "04a1b2c3d4e5f6", "--type", "secure")
    invoke("card", "replace", "04a1b2c3d4e5f6", "--new-uid", "04a1b2c3d4e5f7")
    shown = invoke("card", "show", "04a1b2c3d4e5f6")
    assert "Carte 04a1b2c3d4e5f6 (sécurisée)" in shown and "bloquée" in shown and "(remplacée)" in shown
    invoke("card", "return", "04a1b2c3d4e5f7")
    assert "rendue" in invoke("card", "show", "04a1b2c3d4e5f7")
    invoke("member", "clear-code", household)
