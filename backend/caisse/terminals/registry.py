"""Terminals' registration: a terminal's key and vendor, and its member-code key.

None of them commits: the caller does.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.db import get_or_not_found
from caisse.errors import Conflict, InvalidInput
from caisse.models import Terminal, TerminalStatus
from caisse.terminals.sync import terminal_code_key
from caisse.vendors.service import get_vendor
from caisse_common import protocol


def register_terminal(session: Session, *, vendor_id: int, public_key_hex: str,
                      secure_element: bool | None = None) -> Terminal:
    get_vendor(session, vendor_id=vendor_id)
    try:
        public_key = bytes.fromhex(public_key_hex)
        protocol.load_public_key(public_key)
    except ValueError:
        raise InvalidInput("invalid_public_key", "public_key is a 65-byte uncompressed P-256 point, in hex") from None
    if session.execute(select(col(Terminal.id)).where(col(Terminal.public_key) == public_key)).first() is not None:
        raise Conflict("terminal_exists", "a terminal with this public key is already registered")
    terminal = Terminal(vendor_id=vendor_id, public_key=public_key, secure_element=secure_element)
    session.add(terminal)
    session.flush()
    assert terminal.id is not None
    return terminal


def get_terminal(session: Session, *, terminal_id: int) -> Terminal:
    return get_or_not_found(session, Terminal, terminal_id, code="terminal_not_found")


def member_code_key(session: Session, *, terminal_id: int, settings: Settings) -> bytes:
    """The key provisioning writes into the terminal's ATECC608 (docs/protocol.md, "Member-code
    verifiers"): only for an active terminal registered with a secure element."""
    terminal = get_terminal(session, terminal_id=terminal_id)
    if terminal.status == TerminalStatus.REVOKED:
        raise Conflict("terminal_revoked", f"terminal {terminal_id} was revoked")
    if not terminal.secure_element:
        raise Conflict("no_secure_element", f"terminal {terminal_id} was not registered with a secure element")
    return terminal_code_key(settings, terminal_id)
