"""The faults a run injects, and the network between a stall and the backend.

Every fault is a `Fault` the auditor keeps; its `outcome` is set when the run ends:
- detected: the backend refused or flagged what the fault produced;
- survived: nothing was lost or doubled although the fault happened;
- residual: the fault cannot be detected by design (a UID-only copy of a basic card), said so;
- not_triggered: the fault was armed but the run gave it nothing to act on;
- failed: the fault broke an invariant (the run exits non-zero).
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field


class FaultKind(enum.StrEnum):
    POWER_CUT = "power_cut"  # the flash loses power in the middle of a write
    OFFLINE = "offline"  # the stall's network is down for hours
    CUT_BEFORE = "upload_cut_before"  # an upload is cut before the backend got it
    CUT_AFTER = "upload_cut_after"  # an upload is cut after the backend committed it (answer lost)
    DOUBLE = "batch_sent_twice"  # a proxy sends a batch twice
    CORRUPTED = "upload_corrupted"  # one bit of an upload flips on the way (a plain-http proxy, RAM)
    LOST_CARD = "lost_card"  # a member's card is blocked mid-day; the finder keeps tapping it
    CLONE_BASIC = "clone_basic"  # a UID-only copy of a basic card
    CLONE_SECURE = "clone_secure"  # a sniffed SUN message of a secure card, replayed
    TAMPER = "tamper"  # a terminal's records are altered (resigned with its key, and not)
    # Hostile and mistaken actors (caisse.simulation.adversaries), one of each per run.
    SPREE = "offline_spree"  # a household taps at five offline stalls with two cards
    LYING_CLOCK = "lying_clock"  # a stall's clock runs more than a day ahead
    FALSE_OVER_LIMIT = "false_over_limit"  # a compromised stall reports over-limit payments for others' secure cards
    GARBAGE_FLOOD = "garbage_flood"  # a minute of junk sent to an upload endpoint
    WRONG_REJECT = "reject_in_flight"  # a reviewer rejects a held payment while its void is on the way
    WRONG_REVOKE = "revoke_in_flight"  # a stall revoked with records unsettled and unsent
    IBAN_MID_SETTLEMENT = "iban_mid_settlement"  # a vendor's IBAN changes between preparation and export
    CREDIT_TWICE = "credit_twice"  # a manual credit entered twice, then reversed


class Outcome(enum.StrEnum):
    DETECTED = "detected"
    SURVIVED = "survived"
    RESIDUAL = "residual"
    NOT_TRIGGERED = "not_triggered"
    FAILED = "failed"


PASSING = frozenset({Outcome.DETECTED, Outcome.SURVIVED, Outcome.RESIDUAL, Outcome.NOT_TRIGGERED})
ADVERSARIES = frozenset({FaultKind.SPREE, FaultKind.LYING_CLOCK, FaultKind.FALSE_OVER_LIMIT, FaultKind.GARBAGE_FLOOD,
                         FaultKind.WRONG_REJECT, FaultKind.WRONG_REVOKE, FaultKind.IBAN_MID_SETTLEMENT,
                         FaultKind.CREDIT_TWICE})
NETWORK_FAULTS = (FaultKind.OFFLINE, FaultKind.CUT_BEFORE, FaultKind.CUT_AFTER, FaultKind.DOUBLE, FaultKind.CORRUPTED)


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    day: int
    time_s: int
    terminal_id: int | None = None
    card_uid: bytes | None = None
    detail: str = ""
    triggered: bool = False
    declined: int = 0  # taps of the fault that a terminal refused on the spot
    records: list[tuple[int, int]] = field(default_factory=list)  # (terminal_id, seq) it produced
    outcome: Outcome | None = None
    why: str = ""

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "day": self.day, "time": self.time_s, "terminal": self.terminal_id,
                "card": self.card_uid.hex() if self.card_uid else None, "detail": self.detail,
                "outcome": self.outcome.value if self.outcome else None, "why": self.why}


def flip_a_signature_bit(body: bytes) -> bytes:
    """The upload body with the last bit of its first record's signature flipped."""
    payload = json.loads(body)
    raw = bytearray(base64.b64decode(payload["records"][0]))
    raw[-1] ^= 1
    payload["records"][0] = base64.b64encode(bytes(raw)).decode("ascii")
    return json.dumps(payload).encode()


class NetworkDown(OSError):
    """The stall has no network (the firmware backs off and retries)."""


class Link:
    """A stall's transport (the callable the firmware's SyncClient takes), with its faults.

    `up` False: every request fails. An armed cut fails the next upload, before it leaves or
    after the backend answered; an armed double sends the next upload twice and returns the
    second answer (all duplicates); an armed corruption flips one bit of the first record's
    signature in the next upload.
    """

    def __init__(self, request: Callable[[str, str, dict[str, str], bytes | None], tuple[int, bytes]]) -> None:
        self._request = request
        self.up = True
        self.armed: list[Fault] = []

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        if not self.up:
            raise NetworkDown("réseau indisponible")
        fault = self.armed.pop(0) if method == "POST" and self.armed else None
        if fault is None:
            return self._request(method, path, headers, body)
        fault.triggered = True
        if fault.kind == FaultKind.CUT_BEFORE:
            raise NetworkDown("connexion coupée avant l'envoi")
        if fault.kind == FaultKind.CORRUPTED:
            return self._request(method, path, headers, flip_a_signature_bit(body or b"{}"))
        first = self._request(method, path, headers, body)
        if fault.kind == FaultKind.CUT_AFTER:
            raise NetworkDown("connexion coupée avant la réponse")
        assert fault.kind == FaultKind.DOUBLE
        second = self._request(method, path, headers, body)
        return second if first[0] == 200 else first
