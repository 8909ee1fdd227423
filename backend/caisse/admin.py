"""Administration services: vendors, households, cards, terminals, allowance credits.

Plain functions with keyword-only arguments, free of HTTP, used by the admin API and the CLI.
None of them commits: the caller does, so a household and its ledger account appear together.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlmodel import Session

from caisse import accounts, accreditation, audit, ingest, ledger, review
from caisse.config import Settings
from caisse.db import get_by_id
from caisse.errors import Conflict, Forbidden, InvalidInput, NotFound
from caisse.models import (
    BlockReason,
    Card,
    CardCounter,
    CardStatus,
    CardType,
    ConventionStatus,
    Household,
    IbanChangeStatus,
    Role,
    Terminal,
    TerminalHealth,
    TerminalStatus,
    TransactionRecord,
    Vendor,
    VendorIbanChange,
    VendorKind,
    utcnow,
)
from caisse.sync import bump_blocked_cards, bump_cards, terminal_code_key
from caisse_common import protocol, sun

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

SYSTEM = accounts.SYSTEM  # who acts when no person does
API = "api-admin"  # the admin API: its token is the machine's (provisioning)
_AUDITED = ("name", "kind", "zone", "market", "iban", "convention_status", "convention_start", "convention_end")


def create_vendor(
    session: Session, *, name: str, kind: str, zone: str, market: str | None = None, iban: str | None = None,
    convention_status: str = ConventionStatus.ACTIVE, convention_start: date | None = None,
    convention_end: date | None = None, by: str = SYSTEM, os_user: str | None = None,
) -> Vendor:
    """Accredit a vendor (audited as `by`). Its first IBAN is set here, by one person: a vendor
    is paid only what its own terminals take, and every later change needs a second person."""
    iban = _checked_vendor_fields(kind=kind, convention_status=convention_status, iban=iban,
                                  convention_start=convention_start, convention_end=convention_end)
    _require_text(name=name, zone=zone)
    _require_sepa_name(name)
    vendor = Vendor(name=name.strip(), kind=kind, zone=zone.strip(), market=(market or None), iban=iban,
                    convention_status=convention_status, convention_start=convention_start,
                    convention_end=convention_end)
    session.add(vendor)
    session.flush()
    assert vendor.id is not None
    ledger.ensure_account(session, code=ledger.vendor_payable_code(vendor.id), kind=ledger.AccountKind.VENDOR_PAYABLE)
    ledger.ensure_account(session, code=ledger.vendor_held_code(vendor.id), kind=ledger.AccountKind.VENDOR_HELD)
    accreditation.note_state(session, vendor=vendor)
    audit.record(session, actor=by, action="vendor.create", subject=f"vendor:{vendor.id}",
                 detail={**vendor.model_dump(include=set(_AUDITED)), **({"os_user": os_user} if os_user else {})})
    return vendor


@dataclass(frozen=True, slots=True)
class VendorUpdate:
    vendor: Vendor
    iban_change: VendorIbanChange | None  # a new IBAN typed in the form: requested, not applied


def update_vendor(
    session: Session, *, vendor_id: int, name: str, kind: str, zone: str, market: str | None, iban: str | None, by: str,
) -> VendorUpdate:
    """The vendor's own fields at once (the console's form); the same rules as create_vendor. A
    different IBAN is not applied: it becomes a change request another person approves. The
    accreditation is not among them: caisse.accreditation.update checks its criteria, visit and
    training."""
    vendor = get_vendor(session, vendor_id=vendor_id)
    iban = _checked_vendor_fields(kind=kind, convention_status=vendor.convention_status, iban=iban,
                                  convention_start=vendor.convention_start, convention_end=vendor.convention_end)
    _require_text(name=name, zone=zone)
    _require_sepa_name(name)
    before = vendor.model_dump(include=set(_AUDITED))
    vendor.sqlmodel_update({"name": name.strip(), "kind": kind, "zone": zone.strip(), "market": market or None})
    session.add(vendor)
    session.flush()
    after = vendor.model_dump(include=set(_AUDITED))
    changed = {key: {"before": before[key], "after": after[key]} for key in _AUDITED if before[key] != after[key]}
    if changed:
        audit.record(session, actor=by, action="vendor.edit", subject=f"vendor:{vendor_id}", detail=changed)
    change = None
    if iban is not None and iban != vendor.iban:
        change = request_iban_change(session, vendor_id=vendor_id, iban=iban, by=by)
    return VendorUpdate(vendor=vendor, iban_change=change)


def sepa_name_notice(name: str) -> str | None:
    """What staff are told when the bank will receive the name otherwise than typed (French)."""
    from caisse.sepa import sepa_text

    sent = sepa_text(name)
    return None if sent == name.strip() else f"Nom transmis à la banque (caractères SEPA) : « {sent} »."


def _require_sepa_name(name: str) -> None:
    from caisse.sepa import sepa_text

    if name.strip() and not sepa_text(name):
        raise InvalidInput("name_not_sepa", f"{name!r} has no character a SEPA bank reads")


# A vendor's IBAN: changed by two people, for the runs prepared after the approval ------------

def request_iban_change(session: Session, *, vendor_id: int, iban: str, by: str, os_user: str | None = None) -> VendorIbanChange:
    """Ask for a vendor's new IBAN; nothing is paid to it until another account approves."""
    by = accounts.active_user(session, email=by).email
    vendor = get_vendor(session, vendor_id=vendor_id)
    checked = _checked_iban(iban)
    if checked == vendor.iban:
        raise InvalidInput("iban_unchanged", "this is the vendor's IBAN already")
    if pending_iban_change(session, vendor_id=vendor_id) is not None:
        raise Conflict("iban_change_pending", f"vendor {vendor_id} has an IBAN change waiting for approval")
    change = VendorIbanChange(vendor_id=vendor_id, iban=checked, requested_by=by)
    session.add(change)
    session.flush()
    audit.record(session, actor=by, action="vendor.iban_request", subject=f"vendor:{vendor_id}",
                 detail=_with_os_user({"change": change.id, "before": vendor.iban, "after": checked}, os_user))
    return change


def approve_iban_change(session: Session, *, change_id: int, by: str, os_user: str | None = None) -> Vendor:
    """A second active account approves: the vendor's IBAN changes now, and runs prepared from now
    on pay it (a run prepared before keeps the IBAN it froze)."""
    change, by = _decidable_change(session, change_id=change_id, by=by)
    vendor = get_vendor(session, vendor_id=change.vendor_id)
    before = vendor.iban
    vendor.iban = change.iban
    change.status, change.decided_by, change.decided_at = IbanChangeStatus.APPROVED, by, utcnow()
    session.add_all([vendor, change])
    session.flush()
    audit.record(session, actor=by, action="vendor.iban_approve", subject=f"vendor:{vendor.id}",
                 detail=_with_os_user({"change": change.id, "requested_by": change.requested_by, "before": before,
                                       "after": change.iban}, os_user))
    return vendor


def reject_iban_change(session: Session, *, change_id: int, by: str, os_user: str | None = None) -> VendorIbanChange:
    """Refuse a requested IBAN (any active account, the requester included: withdrawing is safe)."""
    by = accounts.active_user(session, email=by).email
    change = _pending_change(session, change_id=change_id)
    change.status, change.decided_by, change.decided_at = IbanChangeStatus.REJECTED, by, utcnow()
    session.add(change)
    session.flush()
    audit.record(session, actor=by, action="vendor.iban_reject", subject=f"vendor:{change.vendor_id}",
                 detail=_with_os_user({"change": change.id, "iban": change.iban}, os_user))
    return change


def pending_iban_change(session: Session, *, vendor_id: int) -> VendorIbanChange | None:
    return session.execute(select(VendorIbanChange).where(
        VendorIbanChange.vendor_id == vendor_id, VendorIbanChange.status == str(IbanChangeStatus.PENDING))  # type: ignore[arg-type]
    ).scalars().first()


# Who may approve a vendor's new IBAN: the treasury and the administrators (the console's rule,
# held here so the command line keeps it too). Anyone active may ask, or refuse a request.
IBAN_APPROVERS = (Role.TREASURER, Role.ADMIN)


def _decidable_change(session: Session, *, change_id: int, by: str) -> tuple[VendorIbanChange, str]:
    approver = accounts.active_user(session, email=by)
    if approver.role not in IBAN_APPROVERS:
        raise Forbidden("iban_approver_required", f"{approver.email} is {approver.role}: the treasury or an administrator approves")
    by = approver.email
    change = _pending_change(session, change_id=change_id)
    if accounts.same_person(by, change.requested_by):
        raise Conflict("second_person_required", f"{by} requested this IBAN change: another person approves it")
    return change, by


def _pending_change(session: Session, *, change_id: int) -> VendorIbanChange:
    # Locked: two people deciding at once queue, and the second finds it decided.
    change = session.execute(select(VendorIbanChange).where(VendorIbanChange.id == change_id).with_for_update()).scalar_one_or_none()  # type: ignore[arg-type]
    if change is None:
        raise NotFound("iban_change_not_found", f"no IBAN change {change_id}")
    if change.status != IbanChangeStatus.PENDING:
        raise Conflict("iban_change_decided", f"IBAN change {change_id} is {change.status} already")
    return change


def _with_os_user(detail: dict[str, object], os_user: str | None) -> dict[str, object]:
    return {**detail, "os_user": os_user} if os_user else detail


def _actor(session: Session, by: str, os_user: str | None) -> str:
    """Who the audit names (accounts.staff_actor), the admin API's token included."""
    return API if by == API and os_user is None else accounts.staff_actor(session, by=by, os_user=os_user)


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
    return None if iban is None else _checked_iban(iban)


def _checked_iban(iban: str) -> str:
    """The IBAN without spaces, upper-case; refused when malformed, failing schwifty's checks
    (checksum, country length, bank code) or outside the SEPA zone (the caisse pays by SEPA)."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    iban = iban.replace(" ", "").upper()
    if not _IBAN.match(iban):
        raise InvalidInput("invalid_iban", "the IBAN is not well formed")
    try:
        checked = IBAN(iban)
    except SchwiftyException as error:
        raise InvalidInput("invalid_iban", str(error)) from None
    if not checked.in_sepa_zone:
        raise InvalidInput("iban_outside_sepa", f"{checked.country_code} is not in the SEPA zone")
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
    ledger.ensure_account(session, code=ledger.member_code(household.id), kind=ledger.AccountKind.MEMBER)
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
    reference: str  # the caller's key (or the one made for it): send it again to retry
    ledger_reference: str  # what the ledger posted it under, `credit:{reference}` (to reverse it)
    amount_cents: int
    created: bool  # False when the reference had been posted before (idempotent retry)


def credit_household(
    session: Session, *, household_id: int, amount_cents: int, memo: str | None = None, reference: str | None = None,
    by: str = SYSTEM, os_user: str | None = None,
) -> Credit:
    """Allowance credit: allowance_fund -> member. Same reference + same body = the same credit.
    Posted as `credit:{reference}` (ledger.user_reference): a key cannot take a system reference."""
    by = accounts.staff_actor(session, by=by, os_user=os_user)
    get_household(session, household_id=household_id)
    if not 0 < amount_cents <= MAX_CREDIT_CENTS:
        raise InvalidInput("invalid_amount", f"amount_cents must be between 1 and {MAX_CREDIT_CENTS}")
    key = uuid.uuid4().hex if reference is None else reference
    posted_as = ledger.user_reference("credit", key)
    fund = ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND, kind=ledger.AccountKind.ALLOWANCE_FUND)
    member = ledger.ensure_account(session, code=ledger.member_code(household_id), kind=ledger.AccountKind.MEMBER)
    existing = ledger.find_transfer(session, reference=posted_as)
    if existing is not None:
        same = (existing.debit_account_id, existing.credit_account_id, existing.amount_cents) == (fund, member, amount_cents)
        if not same:
            raise Conflict("reference_reused", f"reference {key!r} was posted with a different body")
        return Credit(reference=key, ledger_reference=posted_as, amount_cents=amount_cents, created=False)
    ledger.post_transfer(session, debit=fund, credit=member, amount_cents=amount_cents,
                         kind=ledger.TransferKind.ALLOWANCE, reference=posted_as, memo=memo)
    bump_cards(session, household_ids=[household_id])
    audit.record(session, actor=by, action="household.credit", subject=f"household:{household_id}",
                 detail={"amount_cents": amount_cents, "memo": memo, "reference": posted_as}, os_user=os_user)
    return Credit(reference=key, ledger_reference=posted_as, amount_cents=amount_cents, created=True)


def parse_uid(uid_hex: str) -> bytes:
    try:
        uid = bytes.fromhex(uid_hex)
    except ValueError:
        raise InvalidInput("invalid_uid", "a card UID is hexadecimal") from None
    if len(uid) not in protocol.VALID_UID_SIZES:
        raise InvalidInput("invalid_uid", "a card UID is 4, 7 or 10 bytes")
    return uid


def issue_card(session: Session, *, household_id: int, uid_hex: str, card_type: str = CardType.BASIC,
               by: str = SYSTEM, os_user: str | None = None) -> Card:
    """A new card for the household, or a returned card issued again (to any household): then
    it starts afresh, its SUN counters forgotten, since wiping may restart the chip's counter."""
    by = _actor(session, by, os_user)
    card = _issue(session, household_id=household_id, uid_hex=uid_hex, card_type=card_type)
    audit.record(session, actor=by, action="card.issue", subject=f"card:{card.uid.hex()}",
                 detail=_with_os_user({"household_id": household_id, "card_type": card.card_type}, os_user))
    return card


def _issue(session: Session, *, household_id: int, uid_hex: str, card_type: str) -> Card:
    uid = parse_uid(uid_hex)
    if card_type not in CardType.__members__.values():
        raise InvalidInput("invalid_card_type", f"card_type must be one of {', '.join(CardType)}")
    if card_type == CardType.SECURE and len(uid) != sun.UID_BYTES:
        raise InvalidInput("invalid_uid", f"a secure card (NTAG 424 DNA) has a {sun.UID_BYTES}-byte UID")
    if get_household(session, household_id=household_id).leaving_blocked_at is not None:
        raise Conflict("household_left_no_card", f"household {household_id} has left the caisse: no new card")
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


def block_card(session: Session, *, uid_hex: str, reason: str = BlockReason.LOST, by: str = SYSTEM,
               os_user: str | None = None) -> Card:
    """Block a lost or stolen card from now on (docs/cards.md, "Lifecycle"). Blocking twice keeps
    the first time and reason (taps before it still count) and writes nothing; a returned card
    stays returned."""
    by = _actor(session, by, os_user)
    if reason not in (BlockReason.LOST, BlockReason.STOLEN):
        raise InvalidInput("invalid_block_reason", "a card is blocked as lost or stolen")
    card = get_card(session, uid_hex=uid_hex)
    if _end_card(session, card, status=CardStatus.BLOCKED, reason=reason):
        audit.record(session, actor=by, action="card.block", subject=f"card:{card.uid.hex()}",
                     detail=_with_os_user({"household_id": card.household_id, "reason": reason}, os_user))
    return card


# Which blocks a person may lift. A lost card that turns up is the household's again. A stolen
# card, one seen copied (flagged) or one replaced may have a copy or a successor in use: the
# household gets a replacement card instead (replace_card), never the old one back.
LIFTABLE_BLOCKS = (BlockReason.LOST,)


def unblock_card(session: Session, *, uid_hex: str, by: str, os_user: str | None = None) -> Card:
    """A card blocked as lost was found: active again from the terminals' next sync. Its balance
    never moved (it is the household's); the audit keeps when and why it had been blocked."""
    by = _actor(session, by, os_user)
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
    session.execute(update(Card).where(Card.id == card.id).values(  # type: ignore[arg-type]
        status=CardStatus.ACTIVE, blocked_at=None, block_reason=None, blocked_version=None))
    bump_cards(session, card_ids=[card.id])
    audit.record(session, actor=by, action="card.unblock", subject=f"card:{card.uid.hex()}",
                 detail=_with_os_user({"household_id": card.household_id, "reason": reason,
                                       "blocked_at": blocked_at}, os_user))
    session.refresh(card)
    return card


def replace_card(session: Session, *, uid_hex: str, new_uid_hex: str, card_type: str | None = None,
                 by: str = SYSTEM, os_user: str | None = None) -> Card:
    """A new card for the old one's household; the old one is blocked (if it was not already).
    The balance is the household's, so it follows without moving money."""
    by = _actor(session, by, os_user)
    old = get_card(session, uid_hex=uid_hex)
    if old.status == CardStatus.RETURNED:
        raise Conflict("card_returned", f"card {old.uid.hex()} was returned: issue a new card to the household instead")
    # Blocked first, so a household using its 16 cards can still swap one; if the new card is
    # refused, the caller rolls the block back with it.
    _end_card(session, old, status=CardStatus.BLOCKED, reason=BlockReason.REPLACED)
    new = _issue(session, household_id=old.household_id, uid_hex=new_uid_hex, card_type=card_type or old.card_type)
    audit.record(session, actor=by, action="card.replace", subject=f"card:{old.uid.hex()}",
                 detail=_with_os_user({"household_id": old.household_id, "new_uid": new.uid.hex()}, os_user))
    return new


def return_card(session: Session, *, uid_hex: str, by: str = SYSTEM, os_user: str | None = None) -> Card:
    """The card was handed back (and wiped): refused from now on, its UID free to issue again."""
    by = _actor(session, by, os_user)
    card = get_card(session, uid_hex=uid_hex)
    if _end_card(session, card, status=CardStatus.RETURNED, reason=card.block_reason):
        audit.record(session, actor=by, action="card.return", subject=f"card:{card.uid.hex()}",
                     detail=_with_os_user({"household_id": card.household_id}, os_user))
    return card


def block_household_cards(session: Session, *, household_id: int, reason: str, at: datetime | None = None) -> list[int]:
    """Block every active card of a household (its members left: caisse.members), the way a lost
    card is blocked, so terminals learn it at their next sync. The ids of the cards blocked."""
    cards = session.execute(select(Card).where(Card.household_id == household_id, Card.status == str(CardStatus.ACTIVE))  # type: ignore[arg-type]
                            .order_by(Card.id)).scalars().all()  # type: ignore[arg-type]
    for card in cards:
        _end_card(session, card, status=CardStatus.BLOCKED, reason=reason, at=at)
    return [card.id for card in cards if card.id is not None]


def _end_card(session: Session, card: Card, *, status: CardStatus, reason: str | None, at: datetime | None = None) -> bool:
    """Move an active card to blocked or returned, or a blocked card to returned, keeping the
    first refusal time; the new state reaches terminals at their next sync. False: unchanged."""
    if card.status == status or card.status == CardStatus.RETURNED:
        return False
    assert card.id is not None
    session.execute(update(Card).where(Card.id == card.id).values(  # type: ignore[arg-type]
        status=status, blocked_at=card.blocked_at or at or utcnow(), block_reason=reason))
    bump_blocked_cards(session, card_ids=[card.id])
    session.refresh(card)
    return True


# Terminals ----------------------------------------------------------------------------------

def register_terminal(session: Session, *, vendor_id: int, public_key_hex: str,
                      secure_element: bool | None = None) -> Terminal:
    get_vendor(session, vendor_id=vendor_id)
    try:
        public_key = bytes.fromhex(public_key_hex)
        protocol.load_public_key(public_key)
    except ValueError:
        raise InvalidInput("invalid_public_key", "public_key is a 65-byte uncompressed P-256 point, in hex") from None
    if session.execute(select(Terminal.id).where(Terminal.public_key == public_key)).first() is not None:
        raise Conflict("terminal_exists", "a terminal with this public key is already registered")
    terminal = Terminal(vendor_id=vendor_id, public_key=public_key, secure_element=secure_element)
    session.add(terminal)
    session.flush()
    assert terminal.id is not None
    return terminal


def get_terminal(session: Session, *, terminal_id: int) -> Terminal:
    terminal = get_by_id(session, Terminal, terminal_id)
    if terminal is None:
        raise NotFound("terminal_not_found", f"no terminal {terminal_id}")
    return terminal


def member_code_key(session: Session, *, terminal_id: int, settings: Settings) -> bytes:
    """The key provisioning writes into the terminal's ATECC608 (docs/protocol.md, "Member-code
    verifiers"): only for an active terminal registered with a secure element."""
    terminal = get_terminal(session, terminal_id=terminal_id)
    if terminal.status == TerminalStatus.REVOKED:
        raise Conflict("terminal_revoked", f"terminal {terminal_id} was revoked")
    if not terminal.secure_element:
        raise Conflict("no_secure_element", f"terminal {terminal_id} was not registered with a secure element")
    return terminal_code_key(settings, terminal_id)


def _locked_terminal(session: Session, *, terminal_id: int) -> Terminal:
    """The terminal, read after its row was locked the way its uploads lock it."""
    if get_by_id(session, Terminal, terminal_id) is None:
        raise NotFound("terminal_not_found", f"no terminal {terminal_id}")
    review.lock_terminals(session, [terminal_id])
    terminal = session.get(Terminal, terminal_id, populate_existing=True)
    assert terminal is not None
    return terminal


def revoke_terminal(session: Session, *, terminal_id: int, by: str, os_user: str | None = None) -> Terminal:
    """Every later request of the terminal is refused. Its records not settled yet are held for a
    person to decide (caisse.review): revoking pays nothing and refunds nothing. Revoking a
    revoked terminal writes nothing."""
    by = _actor(session, by, os_user)
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.REVOKED:
        before = terminal.status
        held = review.hold_terminal(session, terminal_id=terminal_id, reason=review.HOLD_REVOKED)
        session.execute(update(Terminal).where(Terminal.id == terminal_id)  # type: ignore[arg-type]
                        .values(status=TerminalStatus.REVOKED, revoked_at=utcnow()))
        audit.record(session, actor=by, action="terminal.revoke", subject=f"terminal:{terminal_id}",
                     detail=_with_os_user({"vendor_id": terminal.vendor_id, "status_before": before,
                                           "records_held": held}, os_user))
        session.refresh(terminal)
    return terminal


def clear_suspect_terminal(session: Session, *, terminal_id: int, by: str, os_user: str | None = None) -> Terminal:
    """A person looked at a suspect terminal and trusts it again: it is active. Its held records
    stay held until someone decides on them (caisse.review)."""
    by = _actor(session, by, os_user)
    terminal = _locked_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.SUSPECT:
        raise Conflict("terminal_not_suspect", f"terminal {terminal_id} is {terminal.status}, not suspect")
    session.execute(update(Terminal).where(Terminal.id == terminal_id).values(status=TerminalStatus.ACTIVE))  # type: ignore[arg-type]
    audit.record(session, actor=by, action="terminal.clear", subject=f"terminal:{terminal_id}",
                 detail=_with_os_user({"vendor_id": terminal.vendor_id}, os_user))
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
        TransactionRecord.terminal_id == terminal_id, TransactionRecord.seq >= first,  # type: ignore[arg-type]
        TransactionRecord.seq <= last)).scalar_one()  # type: ignore[arg-type]
    if arrived:
        raise Conflict("lost_records_arrived", f"{arrived} of the records {first}..{last} of terminal {terminal_id}"
                                               " are stored: they are not lost")
    acked_seq = ingest.acked_seq_from(session, terminal_id=terminal_id, acked_seq=last)
    session.execute(update(Terminal).where(Terminal.id == terminal_id).values(acked_seq=acked_seq))  # type: ignore[arg-type]
    session.execute(update(TransactionRecord).where(
        TransactionRecord.terminal_id == terminal_id, TransactionRecord.seq == last + 1)  # type: ignore[arg-type]
        .values(chain_verified=True))
    audit.record(session, actor=by, action="terminal.accept_loss", subject=f"terminal:{terminal_id}",
                 detail=_with_os_user({"first_seq": first, "last_seq": last, "acked_seq": acked_seq}, os_user))
    return first, last


def _require_text(**fields: str) -> None:
    for name, value in fields.items():
        if not value or not value.strip():
            raise InvalidInput(f"invalid_{name}", f"{name} must not be empty")
