"""A terminal on simulated peripherals, for tests under CPython and MicroPython alike."""

import binascii
import hashlib
import struct

from caisse_terminal import policy as policy_module
from caisse_terminal import sim
from caisse_terminal.soft_signer import SoftwareSigner
from caisse_terminal.terminal import Terminal

T0 = 1767254400  # 2026-01-01 08:00 Paris
TERMINAL_ID = 7
SECRET = binascii.unhexlify("1ec56da2f93248522cfbf40226ae6d43598dab2d9a66fcff250c16b3c7bc644a")
ALICE = b"\x04\xa1\xb2\xc3\xd4\xe5\xf6"
BOB = b"\xde\xad\xbe\xef"
CAROL = b"\x04\xde\x5f\x1e\xac\xc0\x40"
MALLORY = b"\x01\x02\x03\x04"  # blocked


def entry(uid: bytes, status: int, balance_cents: int, code: str = "", salt: bytes = b"salt4242",
          code_mac=None, verifier=True, household: "int | None" = None) -> bytes:
    """A 36-byte sync v2 entry; with a member code, its salt and verifier (docs/protocol.md): keyed
    with `code_mac` (the terminal's chip), or none at all (`verifier=False`: a terminal without).
    Each card has a household of its own unless `household` is given."""
    plain = hashlib.sha256(salt + code.encode()).digest()[:8]
    keyed = plain if code_mac is None else code_mac(plain)[:8]
    sent = keyed if code and verifier else bytes(8)
    if household is None:
        household = int.from_bytes(uid[-3:], "big")
    return struct.pack(">B10sBi8s8sI", len(uid), uid, status, balance_cents, salt if code else bytes(8), sent, household)


CODE = "2468"  # CAROL's household member code
CARDS = entry(ALICE, 0, 5000) + entry(BOB, 0, 300) + entry(CAROL, 0, 100000, CODE) + entry(MALLORY, 1, 9999)


def provision(storage, now=T0, cards=CARDS, limits=None) -> None:
    """What provisioning and a first sync leave on the flash."""
    pol = policy_module.Policy(storage, None, sim.ManualClock(now))
    pol.terminal_id = TERMINAL_ID
    pol.last_sync = now
    if limits:
        pol.limits.update(limits)
    pol.apply_cards(cards, True)
    pol.save()


EPOCH_2000 = 946684800  # where the ESP32's clock restarts after a power cut (no RTC battery)


class Rig:
    """A terminal booting on `files` (new ones: provisioned and synced at `now`).

    A reboot is `Rig(files=r.files, now=...)`: `now` is what the RTC says at boot (EPOCH_2000
    after a power cut) and the ticks restart at `ticks_ms`. `synced` (default: a fresh terminal)
    means the clock was set by a sync since this boot.
    """

    def __init__(self, files=None, now=T0, transport=None, provisioned=True, limits=None,
                 segment_bytes=32768, segments=16, signer=None, cards=CARDS, reader=None,
                 ticks_ms=0, synced=None, code_mac=None):
        self.files = {} if files is None else files
        self.storage = sim.MemoryStorage(self.files)
        if provisioned and files is None:
            provision(self.storage, now, cards, limits)
        self.display = sim.ScreenLog()
        self.keypad = sim.QueueKeypad()
        self.reader = reader or sim.FieldReader()  # or a drivers.nfc_reader.NfcReader
        self.beeper = sim.Beeper()
        self.clock = sim.ManualClock(now, ticks_ms)
        self.signer = signer or SoftwareSigner(SECRET)
        self.terminal = Terminal(storage=self.storage, display=self.display, keypad=self.keypad,
                                 reader=self.reader, indicator=self.beeper, clock=self.clock,
                                 signer=self.signer, transport=transport, code_mac=code_mac,
                                 segment_bytes=segment_bytes, segments=segments)
        if (files is None) if synced is None else synced:
            self.terminal.clock.set(now)
        self.flow = self.terminal.flow
        self.log = self.terminal.log

    def keys(self, keys: str) -> None:
        self.keypad.press(keys)
        self.terminal.poll_keys()

    def tap(self, uid: bytes, auth=None) -> None:
        from caisse_terminal.hal import Card
        self.reader.card = Card(uid, auth)
        self.terminal.poll_card()
        self.reader.card = None
        self.terminal.poll_card()

    def pay(self, amount: str, uid: bytes) -> str:
        self.keys(amount + "V")
        self.tap(uid)
        self.terminal.background_sign()
        return self.display.text()

    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.flow.tick()
