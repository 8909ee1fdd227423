"""Administration services: vendors, households, cards, terminals, allowance credits.

Plain functions with keyword-only arguments, free of HTTP, used by the admin API and the CLI.
None of them commits: the caller does, so a household and its ledger account appear together.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, func, select, update
from sqlmodel import Session

from caisse import audit, ledger, protocol, review, sun
from caisse.db import get_by_id
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.models import (
    BlockReason,
    Card,
    CardCounter,
    CardStatus,
    CardType,
    ConventionStatus,
    Household,
    Terminal,
    TerminalStatus,
    Vendor,
    VendorKind,
    utcnow,
)
from caisse.sync import bump_blocked_cards, bump_cards

# A household may use this many cards at once; blocked and returned ones do not count, since a
# lost card is gone and must not keep the household from getting a new one.
MAX_CARDS_PER_HOUSEHOLD = 16
# Every card attached to a household, blocked and returned ones too, shares the version a balance
# or member-code change stamps (sync.bump_cards), and a sync page never splits a version: this
# bound keeps a version group at half the 512 entries of a page, so each page still moves on.
MAX_CARDS_ATTACHED_PER_HOUSEHOLD = 256
MAX_CREDIT_CENTS = 1_000_000  # 10 000 EUR: far above any monthly allowance, catches typos
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")


# Vendors ------------------------------------------------------------------------------------

def create_vendor(
    session: Session, *, name: str, kind: str, zone: str, market: str | None = None, iban: str | None = None,
    convention_status: str = ConventionStatus.ACTIVE, convention_start: date | None = None,
    convention_end: date | None = None,
) -> Vendor:
    iban = _checked_vendor_fields(kind=kind, convention_status=convention_status, iban=iban,
                                  convention_start=convention_start, convention_end=convention_end)
    _require_text(name=name, zone=zone)
    vendor = Vendor(name=name.strip(), kind=kind, zone=zone.strip(), market=(market or None), iban=iban,
                    convention_status=convention_status, convention_start=convention_start or date.today(),
                    convention_end=convention_end)
    session.add(vendor)
    session.flush()
    assert vendor.id is not None
    ledger.ensure_account(session, code=ledger.vendor_payable_code(vendor.id), kind="vendor_payable")
    ledger.ensure_account(session, code=ledger.vendor_held_code(vendor.id), kind="vendor_held")
    return vendor


def update_vendor(
    session: Session, *, vendor_id: int, name: str, kind: str, zone: str, market: str | None, iban: str | None,
    convention_status: str, convention_start: date | None, convention_end: date | None,
) -> Vendor:
    """Every editable field at once (the console's form); the same rules as create_vendor."""
    vendor = get_vendor(session, vendor_id=vendor_id)
    iban = _checked_vendor_fields(kind=kind, convention_status=convention_status, iban=iban,
                                  convention_start=convention_start, convention_end=convention_end)
    _require_text(name=name, zone=zone)
    vendor.sqlmodel_update({"name": name.strip(), "kind": kind, "zone": zone.strip(), "market": market or None, "iban": iban,
                            "convention_status": convention_status, "convention_start": convention_start,
                            "convention_end": convention_end})
    session.add(vendor)
    session.flush()
    return vendor


def _checked_vendor_fields(
    *, kind: str, convention_status: str, iban: str | None, convention_start: date | None, convention_end: date | None,
) -> str | None:
    """Raise InvalidInput for a field breaking a rule; returns the IBAN without spaces, upper-case."""
    if kind not in VendorKind.__members__.values():
        raise InvalidInput("invalid_kind", f"kind must be one of {', '.join(k.value for k in VendorKind)}")
    if convention_status not in ConventionStatus.__members__.values():
        raise InvalidInput("invalid_convention_status", f"convention_status must be one of {', '.join(ConventionStatus)}")
    if convention_start and convention_end and convention_end < convention_start:
        raise InvalidInput("invalid_convention_dates", "the accreditation ends before it starts")
    if iban is None:
        return None
    iban = iban.replace(" ", "").upper()
    if not _IBAN.match(iban):
        raise InvalidInput("invalid_iban", "the IBAN is not well formed")
    from caisse.settlement import iban_problem  # checksum, country length, bank code (schwifty)

    problem = iban_problem(iban)
    if problem is not None:
        raise InvalidInput("invalid_iban", problem)
    return iban


def get_vendor(session: Session, *, vendor_id: int) -> Vendor:
    vendor = get_by_id(session, Vendor, vendor_id)
    if vendor is None:
        raise NotFound("vendor_not_found", f"no vendor {vendor_id}")
    return vendor


def list_vendors(session: Session) -> list[Vendor]:
    return list(session.execute(select(Vendor).order_by(Vendor.id)).scalars())  # type: ignore[arg-type]


def vendor_payable_cents(session: Session, *, vendor_id: int) -> int:
    return ledger.balance_cents(session, code=ledger.vendor_payable_code(vendor_id))


# Households and cards -----------------------------------------------------------------------

def create_household(session: Session, *, name: str, members: int, zone: str) -> Household:
    _require_text(name=name, zone=zone)
    if members < 1:
        raise InvalidInput("invalid_members", "a household has at least one member")
    household = Household(name=name.strip(), members=members, zone=zone.strip())
    session.add(household)
    session.flush()
    assert household.id is not None
    ledger.ensure_account(session, code=ledger.member_code(household.id), kind="member")
    return household


def get_household(session: Session, *, household_id: int) -> Household:
    household = get_by_id(session, Household, household_id)
    if household is None:
        raise NotFound("household_not_found", f"no household {household_id}")
    return household


def update_household(session: Session, *, household_id: int, name: str, members: int, zone: str) -> Household:
    household = get_household(session, household_id=household_id)
    _require_text(name=name, zone=zone)
    if members < 1:
        raise InvalidInput("invalid_members", "a household has at least one member")
    household.sqlmodel_update({"name": name.strip(), "members": members, "zone": zone.strip()})
    session.add(household)
    session.flush()
    return household


def household_balance_cents(session: Session, *, household_id: int) -> int:
    return ledger.balance_cents(session, code=ledger.member_code(household_id))


def household_cards(session: Session, *, household_id: int) -> list[Card]:
    return list(session.execute(select(Card).where(Card.household_id == household_id).order_by(Card.id)).scalars())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Credit:
    reference: str
    amount_cents: int
    created: bool  # False when the reference had been posted before (idempotent retry)


def credit_household(
    session: Session, *, household_id: int, amount_cents: int, memo: str | None = None, reference: str | None = None,
) -> Credit:
    """Allowance credit: allowance_fund -> member. Same reference + same body = the same credit."""
    get_household(session, household_id=household_id)
    if not 0 < amount_cents <= MAX_CREDIT_CENTS:
        raise InvalidInput("invalid_amount", f"amount_cents must be between 1 and {MAX_CREDIT_CENTS}")
    reference = reference or f"credit:{uuid.uuid4()}"
    fund = ledger.ensure_account(session, code=ledger.ALLOWANCE_FUND, kind="allowance_fund")
    member = ledger.ensure_account(session, code=ledger.member_code(household_id), kind="member")
    existing = ledger.find_transfer(session, reference=reference)
    if existing is not None:
        same = (existing.debit_account_id, existing.credit_account_id, existing.amount_cents) == (fund, member, amount_cents)
        if not same:
            raise Conflict("reference_reused", f"reference {reference!r} was posted with a different body")
        return Credit(reference=reference, amount_cents=amount_cents, created=False)
    ledger.post_transfer(session, debit=fund, credit=member, amount_cents=amount_cents,
                         kind=ledger.TransferKind.ALLOWANCE, reference=reference, memo=memo)
    bump_cards(session, household_ids=[household_id])
    return Credit(reference=reference, amount_cents=amount_cents, created=True)


def parse_uid(uid_hex: str) -> bytes:
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError:
        raise InvalidInput("invalid_uid", "a card UID is hexadecimal") from None
    if len(uid) not in protocol.VALID_UID_SIZES:
        raise InvalidInput("invalid_uid", "a card UID is 4, 7 or 10 bytes")
    return uid


def issue_card(session: Session, *, household_id: int, uid_hex: str, card_type: str = CardType.BASIC) -> Card:
    """A new card for the household, or a returned card issued again (to any household): then
    it starts afresh, its SUN counters forgotten, since wiping may restart the chip's counter."""
    uid = parse_uid(uid_hex)
    if card_type not in CardType.__members__.values():
        raise InvalidInput("invalid_card_type", f"card_type must be one of {', '.join(CardType)}")
    if card_type == CardType.SECURE and len(uid) != sun.UID_BYTES:
        raise InvalidInput("invalid_uid", f"a secure card (NTAG 424 DNA) has a {sun.UID_BYTES}-byte UID")
    get_household(session, household_id=household_id)
    existing = session.execute(select(Card).where(Card.uid == uid)).scalar_one_or_none()  # type: ignore[arg-type]
    if existing is not None and existing.status != CardStatus.RETURNED:
        raise Conflict("card_exists", f"card {uid.hex()} is already issued")
    _check_room_for_a_card(session, household_id=household_id)
    if existing is None:
        card = Card(uid=uid, household_id=household_id, card_type=card_type)
        session.add(card)
        session.flush()
    else:
        card = existing
        session.execute(delete(CardCounter).where(CardCounter.card_id == card.id))  # type: ignore[arg-type]
        session.execute(update(Card).where(Card.id == card.id).values(  # type: ignore[arg-type]
            household_id=household_id, card_type=card_type, status=CardStatus.ACTIVE, blocked_at=None,
            block_reason=None, flag_reason=None, blocked_version=None))
    assert card.id is not None
    bump_cards(session, card_ids=[card.id])
    session.refresh(card)
    return card


def _check_room_for_a_card(session: Session, *, household_id: int) -> None:
    counts = session.execute(
        select(Card.status, func.count()).where(Card.household_id == household_id).group_by(Card.status)  # type: ignore[arg-type]
    ).all()
    if sum(n for status, n in counts if status == CardStatus.ACTIVE) >= MAX_CARDS_PER_HOUSEHOLD:
        raise Conflict("too_many_cards", f"a household uses at most {MAX_CARDS_PER_HOUSEHOLD} cards at once")
    if sum(n for _, n in counts) >= MAX_CARDS_ATTACHED_PER_HOUSEHOLD:
        raise Conflict("too_many_ended_cards",
                       f"a household has at most {MAX_CARDS_ATTACHED_PER_HOUSEHOLD} cards, blocked and returned ones included")


def get_card(session: Session, *, uid_hex: str) -> Card:
    uid = parse_uid(uid_hex)
    card = session.execute(select(Card).where(Card.uid == uid)).scalar_one_or_none()
    if card is None:
        raise NotFound("card_not_found", f"no card {uid.hex()}")
    return card


def block_card(session: Session, *, uid_hex: str, reason: str = BlockReason.LOST) -> Card:
    """Block a lost or stolen card from now on (docs/cards.md, "Lifecycle"). Blocking twice keeps
    the first time and reason (taps before it still count); a returned card stays returned."""
    if reason not in (BlockReason.LOST, BlockReason.STOLEN):
        raise InvalidInput("invalid_block_reason", "a card is blocked as lost or stolen")
    card = get_card(session, uid_hex=uid_hex)
    _end_card(session, card, status=CardStatus.BLOCKED, reason=reason)
    return card


def replace_card(session: Session, *, uid_hex: str, new_uid_hex: str, card_type: str | None = None) -> Card:
    """A new card for the old one's household; the old one is blocked (if it was not already).
    The balance is the household's, so it follows without moving money."""
    old = get_card(session, uid_hex=uid_hex)
    if old.status == CardStatus.RETURNED:
        raise Conflict("card_returned", f"card {old.uid.hex()} was returned: issue a new card to the household instead")
    # Blocked first, so a household using its 16 cards can still swap one; if the new card is
    # refused, the caller rolls the block back with it.
    _end_card(session, old, status=CardStatus.BLOCKED, reason=BlockReason.REPLACED)
    return issue_card(session, household_id=old.household_id, uid_hex=new_uid_hex, card_type=card_type or old.card_type)


def return_card(session: Session, *, uid_hex: str) -> Card:
    """The card was handed back (and wiped): refused from now on, its UID free to issue again."""
    card = get_card(session, uid_hex=uid_hex)
    _end_card(session, card, status=CardStatus.RETURNED, reason=card.block_reason)
    return card


def _end_card(session: Session, card: Card, *, status: CardStatus, reason: str | None) -> None:
    """Move an active card to blocked or returned, or a blocked card to returned, keeping the
    first refusal time; the new state reaches terminals at their next sync."""
    if card.status == status or card.status == CardStatus.RETURNED:
        return
    assert card.id is not None
    session.execute(update(Card).where(Card.id == card.id).values(  # type: ignore[arg-type]
        status=status, blocked_at=card.blocked_at or utcnow(), block_reason=reason))
    bump_blocked_cards(session, card_ids=[card.id])
    session.refresh(card)


# Terminals ----------------------------------------------------------------------------------

def register_terminal(session: Session, *, vendor_id: int, public_key_hex: str) -> Terminal:
    get_vendor(session, vendor_id=vendor_id)
    try:
        public_key = bytes.fromhex(public_key_hex)
        protocol.load_public_key(public_key)
    except ValueError:
        raise InvalidInput("invalid_public_key", "public_key is a 65-byte uncompressed P-256 point, in hex") from None
    if session.execute(select(Terminal.id).where(Terminal.public_key == public_key)).first() is not None:
        raise Conflict("terminal_exists", "a terminal with this public key is already registered")
    terminal = Terminal(vendor_id=vendor_id, public_key=public_key)
    session.add(terminal)
    session.flush()
    assert terminal.id is not None
    return terminal


def get_terminal(session: Session, *, terminal_id: int) -> Terminal:
    terminal = get_by_id(session, Terminal, terminal_id)
    if terminal is None:
        raise NotFound("terminal_not_found", f"no terminal {terminal_id}")
    return terminal


def _locked_terminal(session: Session, *, terminal_id: int) -> Terminal:
    """The terminal, read after its row was locked the way its uploads lock it."""
    if get_by_id(session, Terminal, terminal_id) is None:
        raise NotFound("terminal_not_found", f"no terminal {terminal_id}")
    review.lock_terminals(session, [terminal_id])
    terminal = session.get(Terminal, terminal_id, populate_existing=True)
    assert terminal is not None
    return terminal


def revoke_terminal(session: Session, *, terminal_id: int, by: str) -> Terminal:
    """Every later request of the terminal is refused. Its records not settled yet are held for a
    person to decide (caisse.review): revoking pays nothing and refunds nothing."""
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.REVOKED:
        before = terminal.status
        held = review.hold_terminal(session, terminal_id=terminal_id, reason=review.HOLD_REVOKED)
        session.execute(update(Terminal).where(Terminal.id == terminal_id)  # type: ignore[arg-type]
                        .values(status=TerminalStatus.REVOKED, revoked_at=utcnow()))
        audit.record(session, actor=by, action="terminal.revoke", subject=f"terminal:{terminal_id}",
                     detail={"vendor_id": terminal.vendor_id, "status_before": before, "records_held": held})
        session.refresh(terminal)
    return terminal


def clear_suspect_terminal(session: Session, *, terminal_id: int, by: str) -> Terminal:
    """A person looked at a suspect terminal and trusts it again: it is active. Its held records
    stay held until someone decides on them (caisse.review)."""
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.SUSPECT:
        raise Conflict("terminal_not_suspect", f"terminal {terminal_id} is {terminal.status}, not suspect")
    session.execute(update(Terminal).where(Terminal.id == terminal_id).values(status=TerminalStatus.ACTIVE))  # type: ignore[arg-type]
    audit.record(session, actor=by, action="terminal.clear", subject=f"terminal:{terminal_id}",
                 detail={"vendor_id": terminal.vendor_id})
    session.refresh(terminal)
    return terminal


def _require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value or not value.strip():
            raise InvalidInput(f"invalid_{name}", f"{name} must not be empty")
