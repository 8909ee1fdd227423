"""Cards' lifecycle: issue, block, unblock, replace, return.

None of them commits: the caller does.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, col

from caisse import audit
from caisse.cards.versions import bump_blocked_cards, bump_cards
from caisse.db import get_or_not_found
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.models import BlockReason, Card, CardCounter, CardStatus, CardType, Household, utcnow
from caisse.staff import accounts
from caisse_common import protocol, sun

# A household may use this many cards at once; blocked and returned ones do not count, since a
# lost card is gone and must not keep the household from getting a new one.
MAX_CARDS_PER_HOUSEHOLD = 16
# Every card attached to a household, blocked and returned ones too, shares the version a balance
# or member-code change stamps (caisse.cards.versions.bump_cards), and a sync page never splits a version: this
# bound keeps a version group at half the 512 entries of a page, so each page still moves on.
MAX_CARDS_ATTACHED_PER_HOUSEHOLD = 256


def parse_uid(uid_hex: str) -> bytes:
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError:
        raise InvalidInput("invalid_uid", "a card UID is hexadecimal") from None
    if len(uid) not in protocol.VALID_UID_SIZES:
        raise InvalidInput("invalid_uid", "a card UID is 4, 7 or 10 bytes")
    return uid


def issue_card(session: Session, *, household_id: int, uid_hex: str, card_type: str = CardType.BASIC,
               by: str = accounts.SYSTEM, os_user: str | None = None) -> Card:
    """A new card for the household, or a returned card issued again (to any household): then
    it starts afresh, its SUN counters forgotten, since wiping may restart the chip's counter."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    card = _issue(session, household_id=household_id, uid_hex=uid_hex, card_type=card_type)
    audit.record(session, actor=by, action="card.issue", subject=f"card:{card.uid.hex()}",
                 detail=audit.with_os_user({"household_id": household_id, "card_type": card.card_type}, os_user))
    return card


def _issue(session: Session, *, household_id: int, uid_hex: str, card_type: str) -> Card:
    uid = parse_uid(uid_hex)
    if card_type not in CardType.__members__.values():
        raise InvalidInput("invalid_card_type", f"card_type must be one of {', '.join(CardType)}")
    if card_type == CardType.SECURE and len(uid) != sun.UID_BYTES:
        raise InvalidInput("invalid_uid", f"a secure card (NTAG 424 DNA) has a {sun.UID_BYTES}-byte UID")
    if get_or_not_found(session, Household, household_id, code="household_not_found").leaving_blocked_at is not None:
        raise Conflict("household_left_no_card", f"household {household_id} has left the caisse: no new card")
    existing = session.execute(select(Card).where(col(Card.uid) == uid)).scalar_one_or_none()
    if existing is not None and existing.status != CardStatus.RETURNED:
        raise Conflict("card_exists", f"card {uid.hex()} is already issued")
    _check_room_for_a_card(session, household_id=household_id)
    if existing is None:
        card = Card(uid=uid, household_id=household_id, card_type=card_type)
        session.add(card)
        session.flush()
    else:
        card = existing
        session.execute(delete(CardCounter).where(col(CardCounter.card_id) == card.id))
        session.execute(update(Card).where(col(Card.id) == card.id).values(
            household_id=household_id, card_type=card_type, status=CardStatus.ACTIVE, blocked_at=None,
            block_reason=None, flag_reason=None, blocked_version=None))
    assert card.id is not None
    bump_cards(session, card_ids=[card.id])
    session.refresh(card)
    return card


def _check_room_for_a_card(session: Session, *, household_id: int) -> None:
    counts = session.execute(
        select(col(Card.status), func.count()).where(col(Card.household_id) == household_id).group_by(col(Card.status))
    ).all()
    if sum(n for status, n in counts if status == CardStatus.ACTIVE) >= MAX_CARDS_PER_HOUSEHOLD:
        raise Conflict("too_many_cards", f"a household uses at most {MAX_CARDS_PER_HOUSEHOLD} cards at once")
    if sum(n for _, n in counts) >= MAX_CARDS_ATTACHED_PER_HOUSEHOLD:
        raise Conflict("too_many_ended_cards",
                       f"a household has at most {MAX_CARDS_ATTACHED_PER_HOUSEHOLD} cards, blocked and returned ones included")


def get_card(session: Session, *, uid_hex: str) -> Card:
    uid = parse_uid(uid_hex)
    card = session.execute(select(Card).where(col(Card.uid) == uid)).scalar_one_or_none()
    if card is None:
        raise NotFound("card_not_found", f"no card {uid.hex()}")
    return card


def block_card(session: Session, *, uid_hex: str, reason: str = BlockReason.LOST, by: str = accounts.SYSTEM,
               os_user: str | None = None) -> Card:
    """Block a lost or stolen card from now on (docs/cards.md, "Lifecycle"). Blocking twice keeps
    the first time and reason (taps before it still count) and writes nothing; a returned card
    stays returned."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    if reason not in (BlockReason.LOST, BlockReason.STOLEN):
        raise InvalidInput("invalid_block_reason", "a card is blocked as lost or stolen")
    card = get_card(session, uid_hex=uid_hex)
    if _end_card(session, card, status=CardStatus.BLOCKED, reason=reason):
        audit.record(session, actor=by, action="card.block", subject=f"card:{card.uid.hex()}",
                     detail=audit.with_os_user({"household_id": card.household_id, "reason": reason}, os_user))
    return card


# Which blocks a person may lift. A lost card that turns up is the household's again. A stolen
# card, one seen copied (flagged) or one replaced may have a copy or a successor in use: the
# household gets a replacement card instead (replace_card), never the old one back.
LIFTABLE_BLOCKS = (BlockReason.LOST,)


def unblock_card(session: Session, *, uid_hex: str, by: str, os_user: str | None = None) -> Card:
    """A card blocked as lost was found: active again from the terminals' next sync. Its balance
    never moved (it is the household's); the audit keeps when and why it had been blocked."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    card = get_card(session, uid_hex=uid_hex)
    if card.status == CardStatus.ACTIVE:
        raise Conflict("card_not_blocked", f"card {card.uid.hex()} is not blocked")
    if card.status == CardStatus.RETURNED:
        raise Conflict("card_returned", f"card {card.uid.hex()} was returned: issue it again instead")
    if card.block_reason not in LIFTABLE_BLOCKS:
        raise Conflict("card_block_final", f"card {card.uid.hex()} is blocked as {card.block_reason}: replace it")
    _check_room_for_a_card(session, household_id=card.household_id)
    assert card.id is not None
    blocked_at, reason = card.blocked_at, card.block_reason  # the update below refreshes `card`
    session.execute(update(Card).where(col(Card.id) == card.id).values(
        status=CardStatus.ACTIVE, blocked_at=None, block_reason=None, blocked_version=None))
    bump_cards(session, card_ids=[card.id])
    audit.record(session, actor=by, action="card.unblock", subject=f"card:{card.uid.hex()}",
                 detail=audit.with_os_user({"household_id": card.household_id, "reason": reason,
                                       "blocked_at": blocked_at}, os_user))
    session.refresh(card)
    return card


def replace_card(session: Session, *, uid_hex: str, new_uid_hex: str, card_type: str | None = None,
                 by: str = accounts.SYSTEM, os_user: str | None = None) -> Card:
    """A new card for the old one's household; the old one is blocked (if it was not already).
    The balance is the household's, so it follows without moving money."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    old = get_card(session, uid_hex=uid_hex)
    if old.status == CardStatus.RETURNED:
        raise Conflict("card_returned", f"card {old.uid.hex()} was returned: issue a new card to the household instead")
    # Blocked first, so a household using its 16 cards can still swap one; if the new card is
    # refused, the caller rolls the block back with it.
    _end_card(session, old, status=CardStatus.BLOCKED, reason=BlockReason.REPLACED)
    new = _issue(session, household_id=old.household_id, uid_hex=new_uid_hex, card_type=card_type or old.card_type)
    audit.record(session, actor=by, action="card.replace", subject=f"card:{old.uid.hex()}",
                 detail=audit.with_os_user({"household_id": old.household_id, "new_uid": new.uid.hex()}, os_user))
    return new


def return_card(session: Session, *, uid_hex: str, by: str = accounts.SYSTEM, os_user: str | None = None) -> Card:
    """The card was handed back (and wiped): refused from now on, its UID free to issue again."""
    by = accounts.audited_actor(session, by=by, os_user=os_user)
    card = get_card(session, uid_hex=uid_hex)
    if _end_card(session, card, status=CardStatus.RETURNED, reason=card.block_reason):
        audit.record(session, actor=by, action="card.return", subject=f"card:{card.uid.hex()}",
                     detail=audit.with_os_user({"household_id": card.household_id}, os_user))
    return card


def block_household_cards(session: Session, *, household_id: int, reason: str, at: datetime | None = None) -> list[int]:
    """Block every active card of a household (its members left: caisse.members.service), the way a lost
    card is blocked, so terminals learn it at their next sync. The ids of the cards blocked."""
    cards = session.execute(select(Card).where(col(Card.household_id) == household_id, col(Card.status) == str(CardStatus.ACTIVE))
                            .order_by(col(Card.id))).scalars().all()
    for card in cards:
        _end_card(session, card, status=CardStatus.BLOCKED, reason=reason, at=at)
    return [card.id for card in cards if card.id is not None]


def _end_card(session: Session, card: Card, *, status: CardStatus, reason: str | None, at: datetime | None = None) -> bool:
    """Move an active card to blocked or returned, or a blocked card to returned, keeping the
    first refusal time; the new state reaches terminals at their next sync. False: unchanged."""
    if card.status == status or card.status == CardStatus.RETURNED:
        return False
    assert card.id is not None
    session.execute(update(Card).where(col(Card.id) == card.id).values(
        status=status, blocked_at=card.blocked_at or at or utcnow(), block_reason=reason))
    bump_blocked_cards(session, card_ids=[card.id])
    session.refresh(card)
    return True
