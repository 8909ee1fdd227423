"""Member codes a stolen terminal does not give away (docs/protocol.md, "Member-code verifiers").

A terminal with a chip gets verifiers keyed with its member-code key, which only its ATECC608
holds (`code_mac`); a terminal without gets the salt alone and refuses what needs a code.
"""

import hashlib
import hmac
import sys

from tests.firmware.mpy_runtime import ROOT

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import record  # noqa: E402
from tests.firmware.test_flow import records  # noqa: E402

CODE_KEY = bytes(range(32))
LIMITS = {"pin_threshold_cents": 5000}


def chip_mac(message: bytes) -> bytes:
    """What the ATECC608 answers (drivers.atecc608.code_mac), here with Python's hmac."""
    return hmac.new(CODE_KEY, message, hashlib.sha256).digest()


def cards(**code) -> bytes:
    return rig.entry(rig.ALICE, 0, 5000) + rig.entry(rig.CAROL, 0, 100000, rig.CODE, **code)


def test_a_terminal_without_a_chip_refuses_a_payment_that_needs_the_code_and_takes_the_others():
    r = rig.Rig(cards=cards(verifier=False), limits=LIMITS)
    assert r.pay("60", rig.CAROL) == "Code requis : | ce terminal ne | peut pas le | vérifier"
    assert r.beeper.events == ["decline"]
    assert r.pay("40", rig.CAROL).startswith("Paiement accepté")  # below the code threshold
    assert r.pay("20", rig.ALICE).startswith("Paiement accepté")  # a household without a code
    assert [rec.amount_cents for rec in records(r)] == [4000, 2000]


def test_a_chip_terminal_checks_the_code_through_its_member_code_key():
    r = rig.Rig(cards=cards(code_mac=chip_mac), limits=LIMITS, code_mac=chip_mac)
    r.keys("60V")
    r.tap(rig.CAROL)
    r.keys("1357V")
    assert r.display.lines[0] == "Code erroné"
    r.keys(rig.CODE + "V")
    assert r.display.lines[0] == "Paiement accepté"
    [rec] = records(r)
    assert rec.flags == record.FLAG_PIN and rec.amount_cents == 6000


def test_a_verifier_keyed_for_another_terminal_does_not_open_this_one():
    other = hmac.new(b"another terminal", b"", hashlib.sha256).digest()
    r = rig.Rig(cards=cards(code_mac=lambda m: hmac.new(other, m, hashlib.sha256).digest()), limits=LIMITS,
                code_mac=chip_mac)
    r.keys("60V")
    r.tap(rig.CAROL)
    r.keys(rig.CODE + "V")
    assert r.display.lines[0] == "Code erroné"
    assert records(r) == []

