"""ATECC608 driver against the simulated chip, in MicroPython; signatures checked by the backend."""

import hashlib

from caisse.protocol import load_public_key, verify_digest
from tests.firmware.drivers.mp import mp, raises

SETUP = """
from i2c_bus import FakeI2C
from atecc608_sim import ATECC608Sim, packet
from drivers.atecc608 import ATECC608, ATECCError, ATECCCommError, crc16
clock = [0]
def ticks():
    clock[0] += 1
    return clock[0]
def make(**kw):
    sim = ATECC608Sim(**kw)
    bus = FakeI2C((0x60, sim))
    return sim, bus, ATECC608(bus, sleep_ms=lambda ms: None, ticks_ms=ticks)
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


def test_init_wakes_the_chip_reads_info_and_leaves_it_idle():
    out = mp(SETUP + "sim, bus, se = make()\nprint(se.revision.hex(), sim.wakes, sim.asleep, sim.commands)")
    assert out.split() == ["00006003", "1", "True", "[48]"]


def test_a_signature_from_the_chip_verifies_on_the_backend():
    digest = hashlib.sha256(b"caisse record body").digest()
    out = mp(
        SETUP
        + f"""
sim, bus, se = make()
pub = se.genkey()
assert se.public_key() == pub
sig = se.sign_digest(bytes.fromhex("{digest.hex()}"))
print(pub.hex(), sig.hex(), sim.commands[-2:], sim.asleep)
"""
    )
    pub, sig, *rest = out.split()
    assert " ".join(rest) == "[22, 65] True"  # Nonce then Sign, and the chip back to idle
    key = load_public_key(bytes.fromhex(pub))
    assert verify_digest(key, digest, bytes.fromhex(sig))
    assert not verify_digest(key, hashlib.sha256(b"another body").digest(), bytes.fromhex(sig))


def test_lock_state_and_random_follow_the_config_zone():
    out = mp(
        SETUP
        + """
sim, bus, se = make()
print(se.locks(), se.is_locked(), se.random() != b"\\xff\\xff\\x00\\x00" * 8)
sim, bus, se = make(config_locked=False, data_locked=False)
print(se.locks(), se.is_locked(), se.random().hex()[:8])
"""
    )
    assert out.splitlines() == ["(True, True) True True", "(False, False) False ffff0000"]


def test_an_unlocked_chip_refuses_to_sign():
    out = mp(
        SETUP
        + "sim, bus, se = make(data_locked=False)\nse.genkey()\n"
        + raises("se.sign_digest(bytes(32))", "ATECCError")
        + "print(caught.status)"
    )
    assert out.split()[-1] == "15"  # 0x0F execution error


def test_tempkey_survives_idle_but_not_sleep():
    out = mp(
        SETUP
        + """
sim, bus, se = make()
se.genkey()
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
