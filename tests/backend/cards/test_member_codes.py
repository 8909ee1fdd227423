"""Member codes (docs/cards.md, "Member code"): the verifier terminals get at sync, and the wrong
tries they report back (docs/protocol.md, "Member code failures")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cards import member_codes
from caisse.cards import service as card_service
from caisse.cli.main import app
from caisse.config import Settings
from caisse.errors import InvalidInput
from caisse.ingest import terminal_decisions
from caisse.members import households as household_service
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.terminals.sync import unpack_cards
from caisse_common import protocol
from tests.backend.factories import Chain, World, make_world, new_key, new_uid


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
    card_service.issue_card(session, household_id=world.household_id, uid_hex=second.hex())
    session.commit()
    assert _sync_entries(client, world)[world.uid] == (bytes(8), bytes(8))  # no code yet
    version = card_service.get_card(session, uid_hex=world.uid.hex()).sync_version
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
        salts.add(household_service.get_household(session, household_id=world.household_id).code_salt)
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
    card = card_service.get_card(session, uid_hex=world.uid.hex())
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
    card = card_service.get_card(session, uid_hex=world.uid.hex())
    assert card.id is not None and member_codes.card_failures(session, card_id=card.id) == []


def test_staff_set_a_code_at_the_prompt_and_see_a_card(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None, code: int = 0) -> str:
        result = runner.invoke(app, list(args), input=stdin)
        assert result.exit_code == code, result.output
        return result.output

    household = invoke("member", "add", "--name", "Famille Diallo", "--members", "3", "--zone", "Nord").splitlines()[0]
    invoke("member", "set-code", household, stdin="0427\n0427\n")
    invoke("member", "set-code", household, stdin="12\n12\n", code=1)
    invoke("user", "add", "accueil@caisse.test", "--password", "mot-de-passe-long")
    staff = ("--by", "accueil@caisse.test")
    invoke("card", "issue", "--household", household, "--uid", "04a1b2c3d4e5f6", "--type", "secure", *staff)
    invoke("card", "replace", "04a1b2c3d4e5f6", "--new-uid", "04a1b2c3d4e5f7", *staff)
    shown = invoke("card", "show", "04a1b2c3d4e5f6")
    assert "Carte 04a1b2c3d4e5f6 (sécurisée)" in shown and "bloquée" in shown and "(remplacée)" in shown
    invoke("card", "return", "04a1b2c3d4e5f7", *staff)
    assert "rendue" in invoke("card", "show", "04a1b2c3d4e5f7")
    invoke("member", "clear-code", household)


# Verifiers per terminal (docs/protocol.md, "Member-code verifiers") ------------------------------

def _terminal(session: Session, world: World, *, secure_element: bool | None) -> World:
    """Another terminal of the same vendor, registered with or without a secure element."""
    key = new_key()
    terminal = terminal_registry.register_terminal(session, vendor_id=world.vendor_id, public_key_hex=protocol.public_key_bytes(key).hex(),
                                       secure_element=secure_element)
    session.commit()
    assert terminal.id is not None
    return World(world.vendor_id, world.household_id, world.uid, Chain(terminal.id, key))


def _code_key(master_hex: str, terminal_id: int) -> bytes:
    """The derivation written again from docs/protocol.md, to cross-check the backend's."""
    return hmac.new(bytes.fromhex(master_hex), b"caisse-member-code-v1" + terminal_id.to_bytes(4, "big"), hashlib.sha256).digest()


def _search(salt: bytes, verifier: bytes) -> list[str]:
    """What a thief does with a terminal's flash: try the 10 000 codes against the v1 rule."""
    return [code for code in (f"{n:04d}" for n in range(10_000))
            if hashlib.sha256(salt + code.encode()).digest()[:8] == verifier]


def test_a_terminal_without_a_chip_gets_no_verifier_only_the_salt_that_says_a_code_is_needed(
        client: TestClient, session: Session) -> None:
    world = _terminal(session, make_world(session), secure_element=False)
    member_codes.set_code(session, household_id=world.household_id, code="0427")
    session.commit()
    salt, verifier = _sync_entries(client, world)[world.uid]
    assert salt != bytes(8) and verifier == bytes(8)
    assert _search(salt, verifier) == []


def test_a_chip_terminal_gets_verifiers_keyed_to_it_that_a_search_without_its_key_cannot_use(
        client: TestClient, session: Session, settings: Settings) -> None:
    world = make_world(session)
    first, second = (_terminal(session, world, secure_element=True) for _ in range(2))
    member_codes.set_code(session, household_id=world.household_id, code="0427")
    session.commit()
    salt, verifier = _sync_entries(client, first)[world.uid]
    plain = hashlib.sha256(salt + b"0427").digest()[:8]
    assert verifier == hmac.new(_code_key(settings.member_code_master_key_hex, first.terminal_id), plain,
                                hashlib.sha256).digest()[:8]
    assert _sync_entries(client, second)[world.uid][1] not in (verifier, bytes(8))
    assert _search(salt, verifier) == []
    assert _sync_entries(client, world)[world.uid] == (salt, plain)  # registered before: v1 as it was


def test_the_member_code_key_goes_only_to_an_active_terminal_registered_with_a_chip(
        client: TestClient, session: Session, settings: Settings, admin_headers: dict[str, str]) -> None:
    world = make_world(session)
    chip, chipless = _terminal(session, world, secure_element=True), _terminal(session, world, secure_element=False)
    answer = client.post(f"/v1/admin/terminals/{chip.terminal_id}/member-code-key", headers=admin_headers)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert answer.json() == {"terminal_id": chip.terminal_id,
                             "key": _code_key(settings.member_code_master_key_hex, chip.terminal_id).hex()}
    for terminal_id in (chipless.terminal_id, world.terminal_id):
        refused = client.post(f"/v1/admin/terminals/{terminal_id}/member-code-key", headers=admin_headers)
        assert (refused.status_code, refused.json()["error"]) == (409, "no_secure_element")
    terminal_decisions.revoke_terminal(session, terminal_id=chip.terminal_id, by=accounts.SYSTEM)
    session.commit()
    refused = client.post(f"/v1/admin/terminals/{chip.terminal_id}/member-code-key", headers=admin_headers)
    assert (refused.status_code, refused.json()["error"]) == (409, "terminal_revoked")
    assert client.post("/v1/admin/terminals/999/member-code-key", headers=admin_headers).status_code == 404
    assert client.post(f"/v1/admin/terminals/{chip.terminal_id}/member-code-key").status_code == 401


def test_registration_tells_whether_the_terminal_has_a_chip(client: TestClient, session: Session,
                                                            admin_headers: dict[str, str]) -> None:
    world = make_world(session)
    body = {"vendor_id": world.vendor_id, "public_key": protocol.public_key_bytes(new_key()).hex(), "secure_element": True}
    created = client.post("/v1/admin/terminals", json=body, headers=admin_headers)
    assert created.status_code == 201 and created.json()["secure_element"] is True
    body |= {"public_key": protocol.public_key_bytes(new_key()).hex(), "secure_element": "yes"}
    assert client.post("/v1/admin/terminals", json=body, headers=admin_headers).status_code == 422


def test_production_refuses_the_public_development_member_code_master() -> None:
    keys = {"card_master_key_hex": "11" * 16, "card_meta_key_hex": "22" * 16, "debtor_iban": "FR1420041010050500013M02606",
            "database_url": "postgresql+psycopg://caisse@localhost/caisse"}
    with pytest.raises(ValidationError, match="CAISSE_MEMBER_CODE_MASTER_KEY_HEX"):
        Settings(environment="production", admin_token="a-real-secret-token", **keys)  # type: ignore[arg-type]
    Settings(environment="production", admin_token="a-real-secret-token", member_code_master_key_hex="33" * 32, **keys)  # type: ignore[arg-type]
