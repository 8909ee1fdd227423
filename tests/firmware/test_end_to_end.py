"""End to end: records made by the firmware under MicroPython, ingested by the real backend.

The backend app (caisse.main.create_app on SQLite, migrated) is driven through FastAPI's test
client; the firmware's own SyncClient talks to it through a transport wrapping that client.
"""

import base64
import json
import sys
import warnings
from contextlib import contextmanager

import pytest

from caisse.config import Settings
from caisse.db import make_engine, upgrade
from caisse.main import create_app
from tests.firmware.mpy_runtime import ROOT, run

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

import caisse_terminal  # noqa: E402
from caisse_terminal import p256  # noqa: E402
from caisse_terminal.soft_signer import SoftwareSigner  # noqa: E402

ADMIN = {"Authorization": "Bearer e2e-admin-token"}
SCENARIOS = {ROOT / "tests/firmware/scenarios": "/scenarios"}


@contextmanager
def backend_app(tmp_path, cards, vendor_iban=None, **settings):
    """The real backend app on SQLite: a vendor (with `vendor_iban`, to be paid), and a credited
    household holding `cards` ((uid, card type) pairs), with `settings` beside the defaults.
    Yields (client, engine, settings, vendor id)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'caisse.db'}")
    upgrade(engine)
    settings = Settings(environment="test", admin_token="e2e-admin-token",  # type: ignore[call-arg]
                        database_url=str(engine.url), **settings)
    with TestClient(create_app(settings, engine=engine)) as client:
        vendor = client.post("/v1/admin/vendors", headers=ADMIN,
                             json={"name": "Ferme du Coin", "kind": "producer", "zone": "Nord",
                                   "iban": vendor_iban}).json()
        household = client.post("/v1/admin/households", headers=ADMIN,
                                json={"name": "Famille Martin", "members": 3, "zone": "Nord"}).json()
        credit = client.post(f"/v1/admin/households/{household['id']}/credits", headers=ADMIN,
                             json={"amount_cents": 15000, "reference": "janvier"})
        assert credit.status_code == 201, credit.text
        for uid, card_type in cards:
            card = client.post("/v1/admin/cards", headers=ADMIN,
                               json={"household_id": household["id"], "uid": uid.hex(), "card_type": card_type})
            assert card.status_code == 201, card.text
        yield client, engine, settings, vendor["id"]
    engine.dispose()


@pytest.fixture
def backend(tmp_path):
    with backend_app(tmp_path, [(rig.ALICE, "basic"), (rig.BOB, "basic")]) as (client, _, _, vendor_id):
        yield client, vendor_id


def register(client, vendor_id, public_key: bytes) -> int:
    answer = client.post("/v1/admin/terminals", headers=ADMIN,
                         json={"vendor_id": vendor_id, "public_key": public_key.hex()})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def upload(client, terminal_id, raws):
    answer = client.post(f"/v1/terminals/{terminal_id}/batches",
                         json={"records": [base64.b64encode(r).decode() for r in raws]})
    assert answer.status_code == 200, answer.text
    return answer.json()


MICROPYTHON_TERMINAL = """
import sys, binascii, struct
sys.path.insert(0, '/scenarios')
import rig
from caisse_terminal import record, p256
rig.TERMINAL_ID = TID
r = rig.Rig()
for amount, uid in (('12,50', rig.ALICE), ('2,80', rig.BOB)):
    assert 'Paiement accepté' in r.pay(amount, uid), r.display.text()
    r.keys('V')
r.keys('M2')
r.tap(rig.BOB)
assert r.display.lines[0] == 'Paiement annulé', r.display.text()
r.keys('V')
r.pay('20', rig.ALICE)
while r.log.unsigned:
    r.terminal.background_sign()
good = r.log.pending(100)
# Forgeries made with the real key, to check the backend's reasons:
body = bytearray(record.BODY_SIZE)
second = record.decode(good[1])
record.pack_body(body, 1, 0, second.card_uid, TID, 2, second.time, 999, 0, None, second.prev_hash)
conflict = bytes(body) + p256.sign_digest(rig.SECRET, record.digest(body))
record.pack_body(body, 1, 0, rig.ALICE, TID, 5, second.time, 100, 0, None, bytes(32))
bad_chain = bytes(body) + p256.sign_digest(rig.SECRET, record.digest(body))
for raw in good + [conflict, bad_chain]:
    print(binascii.hexlify(raw).decode())
"""


def test_records_made_under_micropython_are_accepted_and_forgeries_rejected_with_the_right_reason(backend):
    client, vendor_id = backend
    tid = register(client, vendor_id, p256.public_key(rig.SECRET))
    lines = run(MICROPYTHON_TERMINAL.replace("TID", str(tid)), mounts=SCENARIOS).split()
    raws = [bytes.fromhex(line) for line in lines]
    good, conflict, bad_chain = raws[:4], raws[4], raws[5]

    answer = upload(client, tid, good)
    assert [r["status"] for r in answer["results"]] == ["accepted"] * 4
    assert [r["seq"] for r in answer["results"]] == [1, 2, 3, 4]
    assert answer["acked_seq"] == 4
    assert [r["status"] for r in upload(client, tid, good)["results"]] == ["duplicate"] * 4

    tampered = bytearray(good[3])
    tampered[19] ^= 1  # the amount, after signing
    other = register(client, vendor_id, SoftwareSigner(bytes(31) + b"\x09").public_key())
    cases = [
        (bytes(tampered), tid, "bad_signature"),
        (good[0][:100], tid, "malformed"),
        (good[0], other, "wrong_terminal"),
        (conflict, tid, "seq_conflict"),
        (bad_chain, tid, "bad_chain"),
    ]
    for raw, url_terminal, reason in cases:
        [result] = upload(client, url_terminal, [raw])["results"]
        assert (result["status"], result.get("reason")) == ("rejected", reason)


class AppTransport:
    """The SyncClient transport over FastAPI's test client (the demo uses HttpTransport)."""

    def __init__(self, client):
        self.client = client

    def __call__(self, method, path, headers, body):
        answer = self.client.request(method, path, headers=headers, content=body)
        return answer.status_code, answer.content


def test_the_firmware_sync_client_syncs_with_the_real_backend(backend):
    client, vendor_id = backend
    signer = SoftwareSigner(bytes(31) + b"\x2a")
    tid = register(client, vendor_id, signer.public_key())
    r = rig.Rig(provisioned=False, transport=AppTransport(client), signer=signer)
    r.terminal.policy.terminal_id = tid
    assert r.pay("1", rig.ALICE) == "Synchronisation | requise"  # never synced
    r.keys("V")
    report = r.terminal.sync_now()  # the simulated clock is months off: clock_skew, then OK
    assert report.error is None, report
    assert report.cards == 2 and r.terminal.policy.cards_version > 0
    r.tap(rig.ALICE)
    assert r.display.lines[:2] == ["Solde disponible", "150,00 EUR"]
    r.keys("V")
    assert "Paiement accepté" in r.pay("12,50", rig.ALICE)
    r.keys("V")
    report = r.terminal.sync_now()
    assert (report.accepted, report.acked_seq, report.rejected) == (1, 1, [])
    assert r.log.acked_seq == 1
    r.tap(rig.BOB)  # same household: the backend's balance now counts the payment
    assert r.display.lines[:2] == ["Solde disponible", "137,50 EUR"]
    client.post(f"/v1/admin/cards/{rig.BOB.hex()}/block", headers=ADMIN)
    r.keys("V")
    assert r.terminal.sync_now().error is None
    assert r.pay("1", rig.BOB) == "Carte bloquée"
    json.dumps(r.log.stats())  # plain data, for the demo's status page


def test_the_health_report_the_firmware_signs_is_stored_by_the_real_backend(tmp_path):
    from caisse.db import session_factory
    from caisse.terminals import health as terminal_health

    with backend_app(tmp_path, [(rig.ALICE, "basic")]) as (client, engine, _, vendor_id):
        signer = SoftwareSigner(bytes(31) + b"\x2b")
        tid = register(client, vendor_id, signer.public_key())
        r = rig.Rig(provisioned=False, transport=AppTransport(client), signer=signer)
        r.terminal.policy.terminal_id = tid
        r.terminal.health.errors["nfc"] = 2
        r.terminal.health.watchdog_resets = 1
        assert r.terminal.sync_now().error is None  # the clock_skew retry signs the report again
        with session_factory(engine)() as session:
            row = terminal_health.latest(session, terminal_id=tid)
        assert row is not None and row.errors["nfc"] == 2 and row.watchdog_resets == 1
        assert row.firmware_version == caisse_terminal.VERSION and row.unsent_records == 0
