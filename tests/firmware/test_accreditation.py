"""A vendor whose accreditation is not active takes no payment on its terminal (sync v3): the
backend's real answers, replayed to the firmware under MicroPython."""

import json
import sys
from datetime import date

import time_machine
from cryptography.hazmat.primitives.asymmetric import ec

from caisse.db import session_factory
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.firmware.mpy_runtime import ROOT, run
from tests.firmware.test_end_to_end import SCENARIOS, backend_app, register

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import p256  # noqa: E402

ENDED_THEN_LAST_DAY = """
import sys, json, binascii
sys.path.insert(0, '/scenarios')
import rig
answers = [binascii.unhexlify(h) for h in ANSWERS]
paths = []
def backend(method, path, headers, body):
    paths.append(path)
    return 200, answers[0]
out = []
def pay(terminal):
    out.append(terminal.pay('5', rig.ALICE))
    terminal.keys('V')
r = rig.Rig(transport=backend)
out.append(r.terminal.sync_now().error)
pay(r)                               # ended: refused
answers.pop(0)
out.append(r.terminal.sync_now().error)
pay(r)                               # active, its last day: paid
r.wait(15 * 3600 - 1)                # 23:59:59 in Paris
pay(r)
r.wait(1)                            # midnight: refused by the terminal's own clock, offline
pay(r)
r.keys('M2')                         # a void gives money back: still allowed
r.tap(rig.ALICE)
out.append(r.display.lines[0])
r.keys('V')
again = rig.Rig(files=r.files, now=rig.T0 + 16 * 3600)  # a reboot: untrusted clock, remembered end
pay(again)
print(json.dumps([out, paths]))
"""


def test_an_ended_vendors_terminal_syncs_v3_and_refuses_payments_under_micropython(tmp_path):
    key = ec.derive_private_key(int.from_bytes(rig.SECRET, "big"), ec.SECP256R1())
    with backend_app(tmp_path, [(rig.ALICE, "basic")]) as (client, engine, _, vendor_id), \
            time_machine.travel(rig.T0, tick=False):  # 2026-01-01, 09:00 in Paris
        tid = register(client, vendor_id, p256.public_key(rig.SECRET))
        answers = []
        for status, end in (("ended", date(2025, 12, 31)), ("active", date(2026, 1, 1))):
            with session_factory(engine)() as session:  # the state staff reach through caisse.vendors.accreditation.update
                vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
                vendor.convention_status, vendor.convention_end = status, end
                session.add(vendor)
                accreditation.note_state(session, vendor=vendor)
                session.commit()
            signature = protocol.sign_digest(key, protocol.sync_digest(tid, rig.T0, 0))
            answer = client.get(f"/v1/terminals/{tid}/sync", params={"since": 0, "v": 3},
                                headers={"X-Caisse-Time": str(rig.T0), "X-Caisse-Signature": signature.hex()})
            assert answer.status_code == 200, answer.text
            answers.append(answer.content.hex())
    script = ENDED_THEN_LAST_DAY.replace("ANSWERS", repr(answers))
    screens, paths = json.loads(run(script, mounts=SCENARIOS).strip().splitlines()[-1])
    assert screens == [
        None, "Commerce non | conventionné",
        None, "Paiement accepté | 5,00 EUR | Reste | 145,00 EUR",
        "Paiement accepté | 5,00 EUR | Reste | 140,00 EUR",
        "Commerce non | conventionné",
        "Paiement annulé",
        "Commerce non | conventionné",
    ]
    assert paths and all(p.endswith("&v=3") for p in paths)


def garbled(accreditation):
    def backend(method, path, headers, body):
        return 200, json.dumps({"v": 3, "server_time": rig.T0, "acked_seq": 0, "cards_version": 1, "full": False,
                                "more": False, "cards": "", "limits": {}, "accreditation": accreditation}).encode()
    return backend


def test_a_garbled_accreditation_fails_the_sync_and_a_missing_active_refuses():
    for bad in ("yes", ["active"], {"active": True, "ends_at": "2026-01-01"}, {"active": True, "ends_at": 1.5}):
        r = rig.Rig(transport=garbled(bad))
        report = r.terminal.sync_now()
        assert report.error is not None and report.error.startswith("ValueError"), (bad, report.error)
        assert r.terminal.policy.cards_version == 0 and r.terminal.policy.may_take_payments()  # nothing applied
    r = rig.Rig(transport=garbled({"ends_at": None}))
    assert r.terminal.sync_now().error is None
    assert r.pay("5", rig.ALICE) == "Commerce non | conventionné"
