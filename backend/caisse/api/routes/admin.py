"""Admin API under /v1/admin, bearer token. Thin: each route calls one service and commits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from caisse.api.deps import SessionDep, SettingsDep, TokenFirstRoute, require_admin
from caisse.api.schemas import (
    UID_HEX_PATTERN,
    CardBlock,
    CardCreate,
    CardDetailOut,
    CardOut,
    CardReplace,
    CodeFailureOut,
    CreditCreate,
    CreditOut,
    HouseholdCreate,
    HouseholdOut,
    LedgerSummaryOut,
    MemberCodeKeyOut,
    TerminalCreate,
    TerminalOut,
    VendorCreate,
    VendorOut,
    error_responses,
)
from caisse.cards import member_codes
from caisse.cards import service as card_service
from caisse.ingest import terminal_decisions
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import Card, Household, Terminal, Vendor
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service

# The dependency documents the bearer token in the OpenAPI schema; TokenFirstRoute checks it
# before the body is read.
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], route_class=TokenFirstRoute,
                   responses=error_responses(400, 401, 404, 409, 422))
API_ACTOR = accounts.API  # the audit log's actor for changes made with the admin token (provisioning)


def _vendor_out(vendor: Vendor, payable_cents: int) -> VendorOut:
    return VendorOut.model_validate(vendor.model_dump() | {"payable_cents": payable_cents})


def _card_out(card: Card) -> CardOut:
    return CardOut.model_validate(card.model_dump() | {"uid": card.uid.hex()})


def _household_out(session: SessionDep, household: Household) -> HouseholdOut:
    assert household.id is not None
    return HouseholdOut.model_validate(
        household.model_dump()
        | {
            "balance_cents": household_service.household_balance_cents(session, household_id=household.id),
            "cards": [_card_out(c) for c in household_service.household_cards(session, household_id=household.id)],
        }
    )


def _terminal_out(terminal: Terminal) -> TerminalOut:
    return TerminalOut.model_validate(terminal.model_dump() | {"public_key": terminal.public_key.hex()})


@router.post("/vendors", status_code=status.HTTP_201_CREATED)
def create_vendor(body: VendorCreate, session: SessionDep) -> VendorOut:
    vendor = vendor_service.create_vendor(session, **body.model_dump())
    session.commit()
    return _vendor_out(vendor, 0)


@router.get("/vendors")
def list_vendors(session: SessionDep) -> list[VendorOut]:
    vendors = vendor_service.list_vendors(session)
    payables = ledger.balances_by_code(session, codes=[ledger.vendor_payable_code(v.id or 0) for v in vendors])
    return [_vendor_out(v, payables.get(ledger.vendor_payable_code(v.id or 0), 0)) for v in vendors]


@router.get("/vendors/{vendor_id}")
def get_vendor(vendor_id: int, session: SessionDep) -> VendorOut:
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    return _vendor_out(vendor, vendor_service.vendor_payable_cents(session, vendor_id=vendor_id))


@router.post("/households", status_code=status.HTTP_201_CREATED)
def create_household(body: HouseholdCreate, session: SessionDep) -> HouseholdOut:
    household = household_service.create_household(session, **body.model_dump())
    session.commit()
    return _household_out(session, household)


@router.get("/households/{household_id}")
def get_household(household_id: int, session: SessionDep) -> HouseholdOut:
    return _household_out(session, household_service.get_household(session, household_id=household_id))


@router.post("/households/{household_id}/credits", status_code=status.HTTP_201_CREATED)
def credit_household(household_id: int, body: CreditCreate, session: SessionDep, response: Response) -> CreditOut:
    credit = household_service.credit_household(session, household_id=household_id, **body.model_dump())
    session.commit()
    if not credit.created:
        response.status_code = status.HTTP_200_OK  # the same reference and body: already posted
    balance = household_service.household_balance_cents(session, household_id=household_id)
    return CreditOut(reference=credit.reference, ledger_reference=credit.ledger_reference, amount_cents=credit.amount_cents,
                     created=credit.created, balance_cents=balance)


@router.post("/cards", status_code=status.HTTP_201_CREATED)
def issue_card(body: CardCreate, session: SessionDep) -> CardOut:
    card = card_service.issue_card(session, household_id=body.household_id, uid_hex=body.uid, card_type=body.card_type,
                           by=API_ACTOR)
    session.commit()
    return _card_out(card)


UidPath = Annotated[str, Path(json_schema_extra={"pattern": UID_HEX_PATTERN})]


@router.get("/cards/{uid_hex}")
def get_card(uid_hex: UidPath, session: SessionDep) -> CardDetailOut:
    card = card_service.get_card(session, uid_hex=uid_hex)
    assert card.id is not None
    failures = [CodeFailureOut.model_validate(f, from_attributes=True) for f in member_codes.card_failures(session, card_id=card.id)]
    return CardDetailOut.model_validate(_card_out(card).model_dump() | {"code_failures": failures})


@router.post("/cards/{uid_hex}/block")
def block_card(uid_hex: UidPath, session: SessionDep, body: CardBlock | None = None) -> CardOut:
    card = card_service.block_card(session, uid_hex=uid_hex, reason=(body or CardBlock()).reason, by=API_ACTOR)
    session.commit()
    return _card_out(card)


@router.post("/cards/{uid_hex}/replace", status_code=status.HTTP_201_CREATED)
def replace_card(uid_hex: UidPath, body: CardReplace, session: SessionDep) -> CardOut:
    card = card_service.replace_card(session, uid_hex=uid_hex, new_uid_hex=body.uid, card_type=body.card_type, by=API_ACTOR)
    session.commit()
    return _card_out(card)


@router.post("/cards/{uid_hex}/return")
def return_card(uid_hex: UidPath, session: SessionDep) -> CardOut:
    card = card_service.return_card(session, uid_hex=uid_hex, by=API_ACTOR)
    session.commit()
    return _card_out(card)


@router.post("/terminals", status_code=status.HTTP_201_CREATED)
def register_terminal(body: TerminalCreate, session: SessionDep) -> TerminalOut:
    terminal = terminal_registry.register_terminal(session, vendor_id=body.vendor_id, public_key_hex=body.public_key,
                                       secure_element=body.secure_element)
    session.commit()
    return _terminal_out(terminal)


@router.post("/terminals/{terminal_id}/member-code-key")
def member_code_key(terminal_id: int, session: SessionDep, settings: SettingsDep, response: Response) -> MemberCodeKeyOut:
    """The key provisioning writes into the terminal's ATECC608; a secret: not to be cached."""
    key = terminal_registry.member_code_key(session, terminal_id=terminal_id, settings=settings)
    response.headers["Cache-Control"] = "no-store"
    return MemberCodeKeyOut(terminal_id=terminal_id, key=key.hex())


@router.post("/terminals/{terminal_id}/revoke")
def revoke_terminal(terminal_id: int, session: SessionDep) -> TerminalOut:
    terminal = terminal_decisions.revoke_terminal(session, terminal_id=terminal_id, by=API_ACTOR)
    session.commit()
    return _terminal_out(terminal)


@router.get("/terminals/{terminal_id}")
def get_terminal(terminal_id: int, session: SessionDep) -> TerminalOut:
    return _terminal_out(terminal_registry.get_terminal(session, terminal_id=terminal_id))


@router.get("/ledger/summary")
def ledger_summary(session: SessionDep) -> LedgerSummaryOut:
    totals = ledger.summary(session)
    return LedgerSummaryOut(
        accounts=totals.accounts, transfers=totals.transfers, transfers_amount_cents=totals.transfers_amount_cents,
        debits_posted_cents=totals.debits_posted_cents, credits_posted_cents=totals.credits_posted_cents,
        balance_sum_cents=totals.balance_sum_cents,
    )
