"""The staff's decisions on a terminal's records: revoke the terminal (its records held), trust a
suspect terminal again, accept as lost the records a restore left out.

None of them commits: the caller does.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from caisse import audit
from caisse.db import get_or_not_found
from caisse.errors import Conflict
from caisse.ingest import review
from caisse.ingest import upload as ingest
from caisse.models import Terminal, TerminalHealth, TerminalStatus, TransactionRecord, utcnow
from caisse.staff import accounts


def _locked_terminal(session: Session, *, terminal_id: int) -> Terminal:
    """The terminal, read after its row was locked the way its uploads lock it."""
    get_or_not_found(session, Terminal, terminal_id, code="terminal_not_found")
    review.lock_terminals(session, [terminal_id])
    terminal = session.get(Terminal, terminal_id, populate_existing=True)
    assert terminal is not None
    return terminal


def revoke_terminal(session: Session, *, terminal_id: int, by: str, os_user: str | None = None) -> Terminal:
    """Every later request of the terminal is refused. Its records not settled yet are held for a
    person to decide (caisse.ingest.review): revoking pays nothing and refunds nothing. Revoking a
    revoked terminal writes nothing."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.REVOKED:
        before = terminal.status
        held = review.hold_terminal(session, terminal_id=terminal_id, reason=review.HOLD_REVOKED)
        session.execute(update(Terminal).where(col(Terminal.id) == terminal_id)
                        .values(status=TerminalStatus.REVOKED, revoked_at=utcnow()))
        audit.record(session, actor=by, action="terminal.revoke", subject=f"terminal:{terminal_id}",
                     detail=audit.with_os_user({"vendor_id": terminal.vendor_id, "status_before": before,
                                           "records_held": held}, os_user))
        session.refresh(terminal)
    return terminal


def clear_suspect_terminal(session: Session, *, terminal_id: int, by: str, os_user: str | None = None) -> Terminal:
    """A person looked at a suspect terminal and trusts it again: it is active. Its held records
    stay held until someone decides on them (caisse.ingest.review)."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.SUSPECT:
        raise Conflict("terminal_not_suspect", f"terminal {terminal_id} is {terminal.status}, not suspect")
    session.execute(update(Terminal).where(col(Terminal.id) == terminal_id).values(status=TerminalStatus.ACTIVE))
    audit.record(session, actor=by, action="terminal.clear", subject=f"terminal:{terminal_id}",
                 detail=audit.with_os_user({"vendor_id": terminal.vendor_id}, os_user))
    session.refresh(terminal)
    return terminal


def accept_lost_records(session: Session, *, terminal_id: int, by: str, os_user: str | None = None) -> tuple[int, int]:
    """A person accepts as lost the records a terminal reported it no longer holds while the
    database lacks them (restored from a backup taken before they arrived): the terminal's
    acked_seq passes the gap, so the terminal can reclaim its flash again, and the record after
    the gap, whose link to them can never be checked, counts as chain-verified, so the next run
    pays it. Returns the lost seqs (first, last). Their money stays taken from the members' cards
    and is nowhere in the books: the audit entry names them.
    """
    accounts.active_user(session, email=by)
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    health = session.get(TerminalHealth, terminal_id, populate_existing=True)
    first, last = (health.lost_first_seq, health.lost_last_seq) if health is not None else (None, None)
    if first is None or last is None or first != terminal.acked_seq + 1:
        raise Conflict("no_lost_records", f"terminal {terminal_id} reports no records lost above its acked_seq"
                                          f" {terminal.acked_seq}")
    arrived = session.execute(select(func.count()).select_from(TransactionRecord).where(
        col(TransactionRecord.terminal_id) == terminal_id, col(TransactionRecord.seq) >= first,
        col(TransactionRecord.seq) <= last)).scalar_one()
    if arrived:
        raise Conflict("lost_records_arrived", f"{arrived} of the records {first}..{last} of terminal {terminal_id}"
                                               " are stored: they are not lost")
    acked_seq = ingest.acked_seq_from(session, terminal_id=terminal_id, acked_seq=last)
    session.execute(update(Terminal).where(col(Terminal.id) == terminal_id).values(acked_seq=acked_seq))
    session.execute(update(TransactionRecord).where(
        col(TransactionRecord.terminal_id) == terminal_id, col(TransactionRecord.seq) == last + 1)
        .values(chain_verified=True))
    audit.record(session, actor=by, action="terminal.accept_loss", subject=f"terminal:{terminal_id}",
                 detail=audit.with_os_user({"first_seq": first, "last_seq": last, "acked_seq": acked_seq}, os_user))
    return first, last
