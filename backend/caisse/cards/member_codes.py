"""Member codes (docs/cards.md, "Member code"): a household's optional 4-digit code, checked
offline by terminals against a salted verifier from the sync, and the wrong tries they report.

The backend keeps only what terminals get: salt and verifier = SHA-256(salt || code)[:8]. Ten
thousand codes are quick to try against it, so the verifier protects against a glance at a
screen or a log, not against whoever holds a terminal's flash or the database (docs/security.md).

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from caisse.cards.versions import bump_cards
from caisse.db import get_or_not_found, is_postgresql, table_of
from caisse.errors import InvalidInput
from caisse.models import Card, CodeFailure, Household, utcnow
from caisse_common import protocol

SALT_BYTES = 8
VERIFIER_BYTES = 8
MAX_FAILURE_ENTRIES = 512
# uid_len, uid (zero padded), failures since the last report, locked on the terminal, reserved
FAILURE_ENTRY = struct.Struct(">B10sHBB")
assert FAILURE_ENTRY.size == 15
MAX_FAILURES_BODY_BYTES = MAX_FAILURE_ENTRIES * FAILURE_ENTRY.size
_CODE = re.compile(r"^[0-9]{4}$")

_household = table_of(Household)
_code_failure = table_of(CodeFailure)


def code_verifier(salt: bytes, code: str) -> bytes:
    """What terminals compare a typed code with (docs/protocol.md, card entries)."""
    assert len(salt) == SALT_BYTES and _CODE.match(code)
    return hashlib.sha256(salt + code.encode("ascii")).digest()[:VERIFIER_BYTES]


def set_code(session: Session, *, household_id: int, code: str) -> None:
    """Give the household a (new) code: every card of the household carries it at next sync."""
    if not _CODE.match(code):
        raise InvalidInput("invalid_code", "a member code is exactly 4 digits")
    get_or_not_found(session, Household, household_id, code="household_not_found")
    salt = bytes(SALT_BYTES)
    while salt == bytes(SALT_BYTES):  # all zero means "no code" on the wire
        salt = os.urandom(SALT_BYTES)
    _store(session, household_id=household_id, salt=salt, verifier=code_verifier(salt, code))


def clear_code(session: Session, *, household_id: int) -> None:
    get_or_not_found(session, Household, household_id, code="household_not_found")
    _store(session, household_id=household_id, salt=None, verifier=None)


def _store(session: Session, *, household_id: int, salt: bytes | None, verifier: bytes | None) -> None:
    session.execute(update(_household).where(_household.c.id == household_id)
                    .values(code_salt=salt, code_verifier=verifier))
    bump_cards(session, household_ids=[household_id])


def parse_failures(body: bytes) -> dict[bytes, tuple[int, bool]]:
    """uid -> (failures, locked) of a report body; one UID twice adds up. Raises InvalidInput."""
    if len(body) % FAILURE_ENTRY.size or len(body) > MAX_FAILURES_BODY_BYTES:
        raise InvalidInput("invalid_code_failures",
                           f"the body is packed {FAILURE_ENTRY.size}-byte entries, at most {MAX_FAILURE_ENTRIES}")
    entries: dict[bytes, tuple[int, bool]] = {}
    for index, (uid_len, padded, failures, locked, reserved) in enumerate(FAILURE_ENTRY.iter_unpack(body)):
        uid = padded[:uid_len]
        if uid_len not in protocol.VALID_UID_SIZES or any(padded[uid_len:]) or locked > 1 or reserved:
            raise InvalidInput("invalid_code_failures", f"entry {index}: bad UID length, padding, locked or reserved byte")
        before, was_locked = entries.get(uid, (0, False))
        entries[uid] = (before + failures, was_locked or bool(locked))
    return entries


def record_failures(session: Session, *, terminal_id: int, body: bytes) -> int:
    """Add an authenticated terminal report's counts per card (caisse.terminals.sync.record_code_failures);
    returns how many entries named a card of ours (others are ignored). Raises InvalidInput."""
    entries = parse_failures(body)
    if not entries:
        return 0
    found = session.execute(select(col(Card.uid), col(Card.id)).where(col(Card.uid).in_(list(entries)))).all()
    cards = {bytes(uid): card_id for uid, card_id in found}
    rows = sorted(({"terminal_id": terminal_id, "card_id": cards[uid], "failures": failures, "locked": locked,
                    "reported_at": utcnow()} for uid, (failures, locked) in entries.items() if uid in cards),
                  key=lambda row: row["card_id"])
    if not rows:
        return 0
    insert = (postgresql if is_postgresql(session) else sqlite).insert(_code_failure).values(rows)
    session.execute(insert.on_conflict_do_update(
        index_elements=["terminal_id", "card_id"],
        set_={"failures": _code_failure.c.failures + insert.excluded.failures, "locked": insert.excluded.locked,
              "reported_at": insert.excluded.reported_at},
    ))
    return len(rows)


@dataclass(frozen=True, slots=True)
class CardFailures:
    terminal_id: int
    failures: int
    locked: bool
    reported_at: datetime


def card_failures(session: Session, *, card_id: int) -> list[CardFailures]:
    """Wrong codes per terminal for one card, for staff."""
    rows = session.execute(
        select(_code_failure.c.terminal_id, _code_failure.c.failures, _code_failure.c.locked, _code_failure.c.reported_at)
        .where(_code_failure.c.card_id == card_id).order_by(_code_failure.c.terminal_id)
    ).all()
    return [CardFailures(*row) for row in rows]
