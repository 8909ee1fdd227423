"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.config import JsonDict

from caisse.ingest.upload import MAX_RECORDS_PER_BATCH
from caisse.members.households import MAX_CREDIT_CENTS
from caisse.models import ConventionStatus, VendorKind

# The services check these rules and answer with their own error codes (invalid_uid, ...); the
# schema states them too (documentation only, json_schema_extra) so that clients, and the
# fuzzer, know which values are valid.
UID_HEX_PATTERN = "^([0-9a-fA-F]{8}|[0-9a-fA-F]{14}|[0-9a-fA-F]{20})$"  # 4, 7 or 10 bytes
_BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _as_utc(value: datetime | None) -> datetime | None:
    """Timestamps are stored in UTC; SQLite gives them back without their offset."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]

# The services strip spaces (str.strip) and refuse what is left empty. JSON Schema patterns are
# ECMA-262, whose \s lacks some characters Python strips: those are listed too.
_NOT_BLANK: JsonDict = {"pattern": r"[^\s\x1c-\x1f\x85]"}


def _json_integer(value: object) -> object:
    """Lax pydantic reads JSON true as 1 (a card for household 1, a credit of one cent) and "7"
    as 7, which JSON Schema's "integer" refuses; 7.0 is an integer there, and stays accepted."""
    if isinstance(value, bool | str):
        raise ValueError("a number is expected")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class VendorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, json_schema_extra=_NOT_BLANK)
    kind: str = Field(json_schema_extra={"enum": [k.value for k in VendorKind]})
    zone: str = Field(min_length=1, max_length=100, json_schema_extra=_NOT_BLANK)
    market: str | None = Field(default=None, max_length=200)
    iban: str | None = Field(default=None, max_length=42)
    convention_status: str = Field(default="active", json_schema_extra={"enum": [c.value for c in ConventionStatus]})
    convention_start: date | None = None
    convention_end: date | None = None


class VendorOut(BaseModel):
    id: int
    name: str
    kind: str
    market: str | None
    zone: str
    convention_status: str
    convention_start: date | None
    convention_end: date | None
    iban: str | None
    created_at: UtcDateTime
    payable_cents: int


class HouseholdCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, json_schema_extra=_NOT_BLANK)
    members: JsonInt = Field(ge=1, le=50)
    zone: str = Field(min_length=1, max_length=100, json_schema_extra=_NOT_BLANK)


class CardOut(BaseModel):
    id: int
    uid: str
    household_id: int
    status: str
    blocked_at: UtcDateTime | None
    sync_version: int
    card_type: str
    block_reason: str | None
    flag_reason: str | None


class CodeFailureOut(BaseModel):
    terminal_id: int
    failures: int
    locked: bool
    reported_at: UtcDateTime


class CardDetailOut(CardOut):
    code_failures: list[CodeFailureOut]


class HouseholdOut(BaseModel):
    id: int
    name: str
    members: int
    zone: str
    created_at: UtcDateTime
    balance_cents: int
    cards: list[CardOut]


class CreditCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_cents: JsonInt = Field(gt=0, json_schema_extra={"maximum": MAX_CREDIT_CENTS})
    memo: str | None = Field(default=None, max_length=300)
    reference: str | None = Field(default=None, min_length=1, max_length=120)


class CreditOut(BaseModel):
    reference: str
    ledger_reference: str
    amount_cents: int
    created: bool
    balance_cents: int


# A secure card (NTAG 424 DNA) has a 7-byte UID: stated for clients, checked by admin.issue_card.
_SECURE_UID_RULE = {"if": {"properties": {"card_type": {"const": "secure"}}, "required": ["card_type"]},
                    "then": {"properties": {"uid": {"pattern": "^[0-9a-fA-F]{14}$"}}}}


class CardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_SECURE_UID_RULE)
    household_id: JsonInt
    card_type: Literal["basic", "secure"] = "basic"
    uid: str = Field(min_length=8, max_length=20, json_schema_extra={"pattern": UID_HEX_PATTERN})


class CardBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal["lost", "stolen"] = "lost"


class CardReplace(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_SECURE_UID_RULE)
    uid: str = Field(min_length=8, max_length=20, description="the new card's UID, hex",
                     json_schema_extra={"pattern": UID_HEX_PATTERN})
    card_type: Literal["basic", "secure"] | None = Field(default=None, description="default: the old card's type")


class TerminalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor_id: JsonInt
    public_key: str = Field(min_length=130, max_length=130, json_schema_extra={"pattern": "^04[0-9a-fA-F]{128}$"})
    # True: its ATECC608 holds the member-code key; False: no chip. Omitted: as before member-code keys.
    secure_element: StrictBool | None = None


class TerminalOut(BaseModel):
    id: int
    vendor_id: int
    public_key: str
    status: str
    acked_seq: int
    created_at: UtcDateTime
    last_sync_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    secure_element: bool | None


class MemberCodeKeyOut(BaseModel):
    terminal_id: int
    key: str  # 64 hex characters


class LedgerSummaryOut(BaseModel):
    accounts: int
    transfers: int
    transfers_amount_cents: int
    debits_posted_cents: int
    credits_posted_cents: int
    balance_sum_cents: int


# ---- documented for clients (OpenAPI) and checked by tests/fuzz; the routes build these bodies
# themselves, without validating them on the hot path.

class ErrorOut(BaseModel):
    error: str = Field(description="a stable code, e.g. unknown_terminal, invalid_batch")
    detail: str = Field(description="what is wrong, for a human")
    server_time: int | None = Field(default=None, description="only on a sync 401 clock_skew: the server's unix time")


def error_responses(*status_codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for the error statuses a route can answer, all with the ErrorOut body."""
    return {code: {"model": ErrorOut, "description": "refused, nothing was changed"} for code in status_codes}


class BatchIn(BaseModel):
    records: list[Annotated[str, Field(json_schema_extra={"pattern": _BASE64_PATTERN})]] = Field(
        max_length=MAX_RECORDS_PER_BATCH, description="base64 of 154-byte signed records, in seq order")


class RecordResultOut(BaseModel):
    index: int
    seq: int | None
    status: str = Field(description="accepted, duplicate or rejected")
    reason: str | None = None
    detail: str | None = None


class BatchOut(BaseModel):
    results: list[RecordResultOut]
    acked_seq: int


class SyncOut(BaseModel):
    v: int | None = Field(default=None, description="2 or 3 in a v2 or v3 answer; absent in v1")
    server_time: int
    acked_seq: int
    cards_version: int
    full: bool
    more: bool
    cards: str = Field(description="base64 of the packed card entries (docs/protocol.md#sync)")
    limits: dict[str, int]
    accreditation: dict[str, bool | int | None] | None = Field(
        default=None, description='v3 only: {"active": may the vendor take payments now, "ends_at": unix s or null}')
