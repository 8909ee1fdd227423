"""ATECC608 driver against the simulated chip, in MicroPython, from the factory-fresh state.

Signatures are checked with `cryptography` (caisse_common.protocol), HMACs with Python's hmac: never
with the firmware's own P-256 or the simulator's HMAC.
"""

import hashlib
import hmac

from caisse_common.protocol import load_public_key, verify_digest
from caisse_provisioning import atecc
from tests.firmware.drivers.mp import mp, raises

CODE_KEY = bytes(range(32))

SETUP = f"""
from i2c_bus import FakeI2C
from atecc608_sim import ATECC608Sim, packet
from drivers.atecc608 import ATECC608, ATECCError, ATECCCommError, crc16, KEY_SLOT, CODE_KEY_SLOT
clock = [0]
def ticks():
    clock[0] += 1
    return clock[0]
def make(**kw):
    sim = ATECC608Sim(**kw)
    bus = FakeI2C((0x60, sim))
    return sim, bus, ATECC608(bus, sleep_ms=lambda ms: None, ticks_ms=ticks)
IMAGE = bytes.fromhex({atecc.config_image().hex()!r})
WORDS = {list(atecc.WRITABLE_WORDS)!r}
def wanted(se):
    current = se.read_config()
    out = bytearray(IMAGE)
    out[0:16] = current[0:16]
    out[84:88] = current[84:88]
    return current, bytes(out)
def configure(se):
    current, want = wanted(se)
    for w in WORDS:
        if current[4 * w:4 * w + 4] != want[4 * w:4 * w + 4]:
            se.write_config_word(w, want[4 * w:4 * w + 4])
    se.lock_config(crc16(want))
def provisioned(**kw):
    sim, bus, se = make(**kw)
    configure(se)
    pub = se.genkey()
    se.write_slot(CODE_KEY_SLOT, bytes(range(32)))
    se.lock_data()
    return sim, bus, se, pub
"""


def test_crc16_matches_the_wake_answer_and_a_command_packet():
    out = mp(SETUP + "print(hex(crc16(b'\\x04\\x11')), hex(crc16(b'\\x07\\x30\\x00\\x00\\x00')))")
    wake_crc, info_crc = out.split()
    assert wake_crc == "0x4333"  # the wake answer 04 11 33 43 carries its CRC LSB first
    assert info_crc == hex(_crc16(b"\x07\x30\x00\x00\x00"))


def _crc16(data: bytes) -> int:
    """The datasheet's CRC-16 written again on the host, bit by bit, to cross-check."""
    crc = 0
    for byte in data:
        for bit in range(8):
            feedback = ((byte >> bit) & 1) ^ (crc >> 15)
            crc = (crc << 1) & 0xFFFF
            if feedback:
                crc ^= 0x8005
    return crc


def test_the_driver_slots_are_those_of_the_provisioning_layout():
    out = mp(SETUP + "print(KEY_SLOT, CODE_KEY_SLOT)")
    assert out.split() == [str(atecc.KEY_SLOT), str(atecc.CODE_KEY_SLOT)]


def test_init_wakes_the_chip_reads_info_and_leaves_it_idle():
    out = mp(SETUP + "sim, bus, se = make()\nprint(se.revision.hex(), sim.wakes, sim.asleep, sim.commands)")
    assert out.split() == ["00006003", "1", "True", "[48]"]


def test_a_factory_chip_is_unlocked_and_refuses_a_key_before_its_config_is_locked():
    out = mp(
        SETUP
        + "sim, bus, se = make()\nprint(se.locks(), se.random().hex()[:8])\n"
        + raises("se.genkey()", "ATECCError")
        + "print(caught.status, sim.keys)"
    )
    lines = out.splitlines()
    assert lines[0] == "(False, False) ffff0000"  # the datasheet's fixed pattern before the lock
    assert lines[-1] == "15 {}"


def test_provisioning_a_factory_chip_gives_a_key_that_verifies_and_an_hmac_key():
    digest = hashlib.sha256(b"caisse record body").digest()
    out = mp(
        SETUP
        + f"""
sim, bus, se, pub = provisioned()
assert se.public_key() == pub
sig = se.sign_digest(bytes.fromhex("{digest.hex()}"))
print(pub.hex(), sig.hex(), se.code_mac(b"verifier").hex(), se.locks(), se.read_config().hex())
"""
    )
    pub, sig, mac, locks_config, locks_data, config = out.split()
    key = load_public_key(bytes.fromhex(pub))
    assert verify_digest(key, digest, bytes.fromhex(sig))
    assert not verify_digest(key, hashlib.sha256(b"another body").digest(), bytes.fromhex(sig))
    assert mac == hmac.new(CODE_KEY, b"verifier", hashlib.sha256).hexdigest()
    assert (locks_config, locks_data) == ("(True,", "True)")
    assert atecc.is_caisse_layout(bytes.fromhex(config))


def test_the_config_lock_refuses_a_crc_that_is_not_the_zones():
    out = mp(
        SETUP
        + """
sim, bus, se = make()
current, want = wanted(se)
se.write_config_word(5, want[20:24])
"""
        + raises("se.lock_config(crc16(want))", "ATECCError")  # words 6.. not written yet
        + "print(se.locks())"
    )
    assert out.splitlines()[-1] == "(False, False)"


def test_the_chip_refuses_what_its_zones_forbid():
    out = mp(
        SETUP
        + "sim, bus, se = make()\n"
        + raises("se.write_slot(CODE_KEY_SLOT, bytes(32))", "ATECCError")  # config not locked
        + raises("se.write_config_word(2, bytes(4))", "ATECCError")  # serial number
        + raises("se.write_config_word(21, bytes(4))", "ATECCError")  # lock bytes
        + "configure(se)\n"
        + raises("se.sign_digest(bytes(32))", "ATECCError")  # data zone unlocked
        + raises("se.code_mac(b'x')", "ATECCError")
        + raises("se.write_slot(KEY_SLOT, bytes(32))", "ATECCError")  # a private key slot
        + "se.genkey()\nse.write_slot(CODE_KEY_SLOT, bytes(32))\nse.lock_data()\n"
        + raises("se.write_config_word(5, bytes(4))", "ATECCError")  # config locked
        + raises("se.lock_data()", "ATECCError")  # once
        + raises("se.write_slot(2, bytes(32))", "ATECCError")  # an unused slot: never written
        + "print('ok')\n"
    )
    assert out.count("raised") == 9 and out.splitlines()[-1] == "ok"


def test_after_the_locks_the_signing_key_can_be_replaced_and_the_code_key_rewritten():
    out = mp(
        SETUP
        + """
sim, bus, se, first = provisioned()
second = se.genkey()
se.write_slot(CODE_KEY_SLOT, bytes([7]) * 32)
print(first != second, second == se.public_key(), se.code_mac(b"v").hex())
"""
    )
    changed, same, mac = out.split()
    assert (changed, same) == ("True", "True")
    assert mac == hmac.new(bytes([7]) * 32, b"v", hashlib.sha256).hexdigest()


def test_tempkey_survives_idle_but_not_sleep():
    out = mp(
        SETUP
        + """
sim, bus, se, pub = provisioned()
se.wake(); se.execute(0x16, 0x03, 0, bytes(32)); se.idle()
se.wake(); print(len(se.execute(0x41, 0x80, 0, b"", 64))); se.idle()
se.wake(); se.execute(0x16, 0x03, 0, bytes(32)); se.sleep()
se.wake()
"""
        + raises("se.execute(0x41, 0x80, 0, b'', 64)", "ATECCError")
    )
    assert out.splitlines()[0] == "64"
    assert "0x0f" in out


def test_the_chip_answers_a_command_with_a_bad_crc_with_status_ff():
    out = mp(
        SETUP
        + """
sim, bus, se = make()
se.wake()
bus.writeto(0x60, b"\\x03\\x07\\x30\\x00\\x00\\x00\\x00\\x00")
sim.busy = 0
print(bus.readfrom(0x60, 4).hex())
"""
    )
    assert out.strip() == "04ff" + format(_crc16(b"\x04\xff") & 0xFF, "02x") + format(_crc16(b"\x04\xff") >> 8, "02x")


def test_an_answer_with_a_bad_crc_raises_a_comm_error():
    out = mp(SETUP + "sim, bus, se = make()\nsim.faults.append('bad_crc')\n" + raises("se.random()", "ATECCCommError"))
    assert "bad CRC" in out


def test_an_error_status_raises_with_its_code():
    out = mp(SETUP + "sim, bus, se = make()\nsim.faults.append(0x03)\n" + raises("se.public_key()", "ATECCError"))
    assert "0x03" in out


def test_a_chip_that_stays_busy_times_out():
    out = mp(
        SETUP
        + "sim, bus, se = make()\nsim.faults.append('busy')\n"
        + raises("se.random()", "ATECCCommError")
        + "print(sim.asleep)"
    )
    assert "no response to opcode 0x1b" in out
    assert out.split()[-1] == "True"  # idled even after the failure


def test_init_raises_with_the_bus_address_when_the_chip_does_not_wake():
    out = mp(
        SETUP
        + "sim = ATECC608Sim()\nsim.faults.append('no_wake')\n"
        + raises("ATECC608(FakeI2C((0x60, sim)), sleep_ms=lambda ms: None, ticks_ms=ticks)", "OSError")
    )
    assert "0x60" in out


def test_the_driver_is_a_signer():
    out = mp("from drivers.atecc608 import ATECC608\nfrom caisse_terminal.signer import Signer\nprint(issubclass(ATECC608, Signer))")
    assert out.strip() == "True"
