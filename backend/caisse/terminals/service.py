"""The terminal a request comes from: found, refused if revoked, locked, its key loaded."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import bindparam, select
from sqlmodel import Session

from caisse.db import table_of
from caisse.errors import TerminalRefused
from caisse.models import Terminal, TerminalStatus
from caisse_common import protocol

MAX_TERMINAL_ID = 0xFFFFFFFF  # u32 on the wire
_terminal = table_of(Terminal)
# Built once (every upload and sync runs it): building a statement costs more than running it.
_LOCK_TERMINAL = (
    select(_terminal.c.vendor_id, _terminal.c.public_key, _terminal.c.status, _terminal.c.acked_seq,
           _terminal.c.secure_element, _terminal.c.limits_version, _terminal.c.cards_version_sent)
    .where(_terminal.c.id == bindparam("terminal_id"))
    .with_for_update(key_share=True)
)


@dataclass(frozen=True, slots=True)
class TerminalState:
    vendor_id: int
    public_key: bytes
    status: str
    acked_seq: int
    secure_element: bool | None  # Terminal.secure_element
    limits_version: int | None  # of its last v2 sync answer; None: it never synced v2
    cards_version_sent: int | None  # of its last v2 sync answer


@lru_cache(maxsize=4096)
def terminal_public_key(sec1_point: bytes) -> ec.EllipticCurvePublicKey:
    """Loaded keys, cached by their bytes: a revoked terminal is refused before its key is used,
    and a re-keyed terminal has different bytes, so the cache never needs invalidating."""
    return protocol.load_public_key(sec1_point)


def lock_terminal(session: Session, *, terminal_id: int) -> TerminalState:
    """An active or suspect terminal, its row locked (on PostgreSQL) until the caller's
    transaction ends, so the requests of one terminal run one after the other.

    Raises TerminalRefused: `unknown_terminal` or `terminal_revoked`.
    """
    if not 0 < terminal_id <= MAX_TERMINAL_ID:
        raise TerminalRefused("unknown_terminal", f"no terminal {terminal_id}")
    row = session.connection().execute(_LOCK_TERMINAL, {"terminal_id": terminal_id}).one_or_none()
    if row is None:
        raise TerminalRefused("unknown_terminal", f"no terminal {terminal_id}")
    vendor_id, public_key, status, acked_seq, secure_element, limits_version, cards_version_sent = row
    if status == TerminalStatus.REVOKED:
        raise TerminalRefused("terminal_revoked", f"terminal {terminal_id} was revoked")
    return TerminalState(vendor_id=vendor_id, public_key=bytes(public_key), status=status, acked_seq=acked_seq,
                         secure_element=secure_element, limits_version=limits_version,
                         cards_version_sent=cards_version_sent)
