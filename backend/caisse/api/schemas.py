"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class VendorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    kind: str
    zone: str = Field(min_length=1, max_length=100)
    market: str | None = Field(default=None, max_length=200)
    iban: str | None = Field(default=None, max_length=42)
    convention_status: str = "active"
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
    created_at: datetime
    payable_cents: int


class HouseholdCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    members: int = Field(ge=1, le=50)
    zone: str = Field(min_length=1, max_length=100)


class CardOut(BaseModel):
    id: int
    uid: str
    household_id: int
    status: str
    blocked_at: datetime | None
    sync_version: int


class HouseholdOut(BaseModel):
    id: int
    name: str
    members: int
    zone: str
    created_at: datetime
    balance_cents: int
    cards: list[CardOut]


class CreditCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_cents: int = Field(gt=0)
    memo: str | None = Field(default=None, max_length=300)
    reference: str | None = Field(default=None, min_length=1, max_length=120)


class CreditOut(BaseModel):
    reference: str
    amount_cents: int
    created: bool
    balance_cents: int


class CardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    household_id: int
    uid: str = Field(min_length=8, max_length=20)


class TerminalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor_id: int
    public_key: str = Field(min_length=130, max_length=130)


class TerminalOut(BaseModel):
    id: int
    vendor_id: int
    public_key: str
    status: str
    acked_seq: int
    created_at: datetime
    last_sync_at: datetime | None
    revoked_at: datetime | None


class LedgerSummaryOut(BaseModel):
    accounts: int
    transfers: int
    transfers_amount_cents: int
    debits_posted_cents: int
    credits_posted_cents: int
    balance_sum_cents: int
