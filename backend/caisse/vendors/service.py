"""Vendors' services: create, edit, IBAN changes (asked by one person, approved by another).

Plain functions with keyword-only arguments, free of HTTP, used by the admin API, the console and the CLI.
None of them commits: the caller does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlmodel import Session, col

from caisse import audit
from caisse.config import sepa_text
from caisse.db import get_or_not_found
from caisse.errors import Conflict, Forbidden, InvalidInput, NotFound, require_text
from caisse.ledger import postings as ledger
from caisse.models import ConventionStatus, IbanChangeStatus, Role, Vendor, VendorIbanChange, VendorKind, utcnow
from caisse.staff import accounts
from caisse.vendors import accreditation

_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
_AUDITED = ("name", "kind", "zone", "market", "iban", "convention_status", "convention_start", "convention_end")


def create_vendor(
    session: Session, *, name: str, kind: str, zone: str, market: str | None = None, iban: str | None = None,
    convention_status: str = ConventionStatus.ACTIVE, convention_start: date | None = None,
    convention_end: date | None = None, by: str = accounts.SYSTEM, os_user: str | None = None,
) -> Vendor:
    """Accredit a vendor (audited as `by`). Its first IBAN is set here, by one person: a vendor
    is paid only what its own terminals take, and every later change needs a second person."""
    iban = _checked_vendor_fields(kind=kind, convention_status=convention_status, iban=iban,
                                  convention_start=convention_start, convention_end=convention_end)
    require_text(name=name, zone=zone)
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
    accreditation is not among them: caisse.vendors.accreditation.update checks its criteria, visit and
    training."""
    vendor = get_vendor(session, vendor_id=vendor_id)
    iban = _checked_vendor_fields(kind=kind, convention_status=vendor.convention_status, iban=iban,
                                  convention_start=vendor.convention_start, convention_end=vendor.convention_end)
    require_text(name=name, zone=zone)
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
    sent = sepa_text(name)
    return None if sent == name.strip() else f"Nom transmis à la banque (caractères SEPA) : « {sent} »."


def _require_sepa_name(name: str) -> None:
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
                 detail=audit.with_os_user({"change": change.id, "before": vendor.iban, "after": checked}, os_user))
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
                 detail=audit.with_os_user({"change": change.id, "requested_by": change.requested_by, "before": before,
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
                 detail=audit.with_os_user({"change": change.id, "iban": change.iban}, os_user))
    return change


def pending_iban_change(session: Session, *, vendor_id: int) -> VendorIbanChange | None:
    return session.execute(select(VendorIbanChange).where(
        col(VendorIbanChange.vendor_id) == vendor_id, col(VendorIbanChange.status) == str(IbanChangeStatus.PENDING))
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
    change = session.execute(select(VendorIbanChange).where(col(VendorIbanChange.id) == change_id).with_for_update()).scalar_one_or_none()
    if change is None:
        raise NotFound("iban_change_not_found", f"no IBAN change {change_id}")
    if change.status != IbanChangeStatus.PENDING:
        raise Conflict("iban_change_decided", f"IBAN change {change_id} is {change.status} already")
    return change


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
    return get_or_not_found(session, Vendor, vendor_id, code="vendor_not_found")


def list_vendors(session: Session) -> list[Vendor]:
    return list(session.execute(select(Vendor).order_by(col(Vendor.id))).scalars())


def vendor_payable_cents(session: Session, *, vendor_id: int) -> int:
    return ledger.balance_cents(session, code=ledger.vendor_payable_code(vendor_id))
