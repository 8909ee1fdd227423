"""Database tables. Money is integer cents (BigInteger where sums grow); times are UTC."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def unix_s(moment: datetime) -> int:
    """Unix seconds of a stored time; SQLite hands back naive datetimes, which are UTC here."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _created() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, default=utcnow)


class CardStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # lost, stolen, replaced or flagged: refused from blocked_at on
    RETURNED = "returned"  # handed back and wiped: refused from blocked_at on; its UID may be issued again


class CardType(enum.StrEnum):
    BASIC = "basic"  # identified by its UID alone: clonable, lower limits (docs/cards.md)
    SECURE = "secure"  # NTAG 424 DNA: every payment carries a SUN message checked at ingestion


class BlockReason(enum.StrEnum):
    LOST = "lost"
    STOLEN = "stolen"
    REPLACED = "replaced"
    FLAGGED = "flagged"  # ingestion saw a bad or replayed SUN message: see flag_reason
    LEFT = "left"  # its household left the caisse (caisse.members.service)


class TerminalStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPECT = "suspect"  # a seq conflict or a broken chain was seen; still accepted, shown to humans
    REVOKED = "revoked"  # refused with 403 on every request


class VendorKind(enum.StrEnum):
    PRODUCER = "producer"
    MARKET_STALL = "market_stall"
    SHOP = "shop"
    EPICERIE = "epicerie"
    COOPERATIVE = "cooperative"
    BAKERY = "bakery"
    OTHER = "other"


class ConventionStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"


class ReviewStatus(enum.StrEnum):
    HELD = "held"  # waiting for a person: not settled
    RELEASED = "released"  # settled like any other record
    REJECTED = "rejected"  # never settled; the member was refunded


class RecordStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # business rejection: genuinely signed, stored, posts nothing


class TableModel(SQLModel):
    """Base of every table. SQLModel declares `__tablename__` as its own default-name method, which
    a type checker would not let a table name with a plain string; SQLAlchemy takes either."""

    __tablename__: ClassVar[Any]


class Household(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    members: int = Field(sa_column=Column(Integer, CheckConstraint("members > 0"), nullable=False))
    zone: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    # Member code (docs/cards.md): SHA-256(salt || 4 digits)[:8], sent to terminals; both or neither.
    code_salt: bytes | None = Field(default=None, sa_column=Column(LargeBinary(8), nullable=True))
    code_verifier: bytes | None = Field(default=None, sa_column=Column(LargeBinary(8), nullable=True))
    # When its balance last went below zero; None while it is zero or more (caisse.fund.overdrafts).
    overdrawn_since: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # Leaving (caisse.members.service): the last day of membership (Paris calendar), when its cards were
    # blocked for it, and when its unspent balance went back to the fund.
    left_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    leaving_blocked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    leaving_settled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # Personal data erased after the retention period: the name is a pseudonym from then on.
    erased_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Card(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    uid: bytes = Field(sa_column=Column(LargeBinary(10), nullable=False, unique=True))
    household_id: int = Field(sa_column=Column(Integer, ForeignKey("household.id"), nullable=False, index=True))
    status: str = Field(default=CardStatus.ACTIVE, sa_column=Column(String(16), nullable=False))
    blocked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    card_type: str = Field(default=CardType.BASIC, sa_column=Column(String(8), nullable=False, server_default="basic"))
    block_reason: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    flag_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))  # French, for staff
    # The cards version that carried the block to the feed: a terminal that reported holding it
    # (TerminalSync) refuses the card; taps from one that did not are not the vendor's fault.
    blocked_version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Position in the terminal sync feed: taken from Counter "cards" whenever status or balance changes.
    sync_version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class Vendor(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(200), nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    market: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    zone: str = Field(sa_column=Column(String(100), nullable=False, index=True))
    convention_status: str = Field(default=ConventionStatus.ACTIVE, sa_column=Column(String(16), nullable=False))
    convention_start: date | None = None
    convention_end: date | None = None
    iban: str | None = Field(default=None, sa_column=Column(String(34), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    # The accreditation's visit and training (caisse.vendors.accreditation); its criteria: VendorCriterion.
    visited_on: date | None = None
    visited_by: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    trained_on: date | None = None


class Terminal(TableModel, table=True):
    id: int | None = Field(default=None, primary_key=True)  # the protocol's terminal_id
    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), nullable=False, index=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary(65), nullable=False, unique=True))
    status: str = Field(default=TerminalStatus.ACTIVE, sa_column=Column(String(16), nullable=False))
    # Every record 1..acked_seq is stored; maintained by ingestion under the terminal's row lock.
    acked_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    last_sync_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    firmware_version: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))  # as last reported
    # Declared at registration: True, its ATECC608 holds its member-code key (keyed verifiers);
    # False, no chip (no verifiers); None, registered before member-code keys (v1 verifiers).
    secure_element: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    # Sync v2 (docs/protocol.md): the limits version and the cards version of its last answer.
    # Both None until its first v2 sync: its records are judged as v1's, without offline budget.
    limits_version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    cards_version_sent: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class CardCounter(TableModel, table=True):
    """A secure card's SUN read counter used by a stored payment: each (card, counter) at most once."""

    __tablename__ = "card_counter"

    card_id: int = Field(sa_column=Column(Integer, ForeignKey("card.id"), primary_key=True, autoincrement=False))
    counter: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))  # 24-bit on the card
    terminal_id: int = Field(sa_column=Column(Integer, nullable=False))  # the record that used it
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class TerminalSync(TableModel, table=True):
    """A terminal proved it held `cards_version` at `synced_at` (the `since` of its sync)."""

    __tablename__ = "terminal_sync"
    __table_args__ = (Index("ix_terminal_sync_terminal_version", "terminal_id", "cards_version"),)

    id: int | None = Field(default=None, primary_key=True)
    terminal_id: int = Field(sa_column=Column(Integer, ForeignKey("terminal.id"), nullable=False))
    cards_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    synced_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class TerminalHealth(TableModel, table=True):
    """The last health report a terminal signed on its sync (docs/protocol.md, "Health report"):
    one row per terminal, replaced by a report with a later terminal time."""

    __tablename__ = "terminal_health"

    terminal_id: int = Field(sa_column=Column(Integer, ForeignKey("terminal.id"), primary_key=True, autoincrement=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    terminal_time: int = Field(sa_column=Column(BigInteger, nullable=False))  # the signed X-Caisse-Time
    firmware_version: str = Field(sa_column=Column(String(32), nullable=False))
    uptime_s: int = Field(sa_column=Column(BigInteger, nullable=False))
    boots: int = Field(sa_column=Column(BigInteger, nullable=False))
    watchdog_resets: int = Field(sa_column=Column(BigInteger, nullable=False))
    crash_resets: int = Field(sa_column=Column(BigInteger, nullable=False))
    task_restarts: int = Field(sa_column=Column(BigInteger, nullable=False))
    safe_mode_boots: int = Field(sa_column=Column(BigInteger, nullable=False))
    errors: dict = Field(sa_column=Column(JSON, nullable=False))  # part -> errors counted since provisioning
    last_error: str = Field(sa_column=Column(String(80), nullable=False))
    battery_mv: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    battery_low: bool = Field(sa_column=Column(Boolean, nullable=False))
    unsent_records: int = Field(sa_column=Column(BigInteger, nullable=False))
    unsigned_records: int = Field(sa_column=Column(BigInteger, nullable=False))
    log_free_bytes: int = Field(sa_column=Column(BigInteger, nullable=False))
    # The terminal's own acked_seq (the highest the backend ever answered it) and the records it
    # no longer holds while the backend lacks them; None from a firmware that does not say.
    terminal_acked_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    lost_first_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    lost_last_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Set when a report said the terminal had been acknowledged further than the backend then was
    # (its database restored from a backup): from which seq, down to which. Kept by later reports.
    rewound_from_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    rewound_to_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class TerminalLimits(TableModel, table=True):
    """The offline limits sent to a terminal, one row each time they differ from the last sent."""

    __tablename__ = "terminal_limits"
    __table_args__ = (Index("ix_terminal_limits_terminal_id", "terminal_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    terminal_id: int = Field(sa_column=Column(Integer, ForeignKey("terminal.id"), nullable=False))
    limits_version: int = Field(sa_column=Column(BigInteger, nullable=False))
    offline_share_bp: int = Field(sa_column=Column(Integer, nullable=False))
    offline_daily_cap_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    sent_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class FeedBalance(TableModel, table=True):
    """The balance a v2 sync sent for a household at one cards version: every terminal that got
    this version got this balance. Ingestion judges offline budgets with it (caisse.terminals.offline_limits).
    No foreign key: rows are written by syncs, in bulk, and never deleted with their household."""

    __tablename__ = "feed_balance"

    household_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    cards_version: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    balance_cents: int = Field(sa_column=Column(BigInteger, nullable=False))


class CodeFailure(TableModel, table=True):
    """Wrong member codes a terminal reported for a card, summed over its reports."""

    __tablename__ = "code_failure"

    terminal_id: int = Field(sa_column=Column(Integer, ForeignKey("terminal.id"), primary_key=True, autoincrement=False))
    card_id: int = Field(sa_column=Column(Integer, ForeignKey("card.id"), primary_key=True, autoincrement=False))
    failures: int = Field(sa_column=Column(BigInteger, nullable=False))
    locked: bool = Field(sa_column=Column(Boolean, nullable=False))  # as of the last report
    reported_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class TransactionRecord(TableModel, table=True):
    """A stored record: accepted, or rejected for a business reason. Raw bytes kept verbatim."""

    __tablename__ = "transaction_record"
    __table_args__ = (UniqueConstraint("terminal_id", "seq", name="uq_transaction_record_terminal_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    terminal_id: int = Field(sa_column=Column(Integer, ForeignKey("terminal.id"), nullable=False))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))  # u32 on the wire
    raw: bytes = Field(sa_column=Column(LargeBinary(154), nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    kind: int = Field(sa_column=Column(SmallInteger, nullable=False))
    flags: int = Field(sa_column=Column(SmallInteger, nullable=False))
    time: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    ref_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Not indexed: no query looks records up by card yet, and every index costs each insert on
    # the ingestion hot path. Add it with the first query that needs it.
    card_uid: bytes = Field(sa_column=Column(LargeBinary(10), nullable=False))
    card_auth: bytes = Field(sa_column=Column(LargeBinary(24), nullable=False))
    prev_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    household_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    # True once prev_hash was checked against the stored record seq-1 (always true for seq 1).
    chain_verified: bool = Field(sa_column=Column(Boolean, nullable=False))
    voided: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    # Review of an accepted record (caisse.ingest.review): None, or held -> released | rejected.
    review: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    hold_reason: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    reviewed_by: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class RejectedUpload(TableModel, table=True):
    """Rejection log: bytes that are not an authentic, well-formed record. Never occupy a seq.

    A bounded summary (caisse.ingest.upload, "rejection log"): the digest and size of what came, why it
    was refused; the bytes themselves only when the terminal's key signed them (a seq conflict, a
    broken chain: 154 bytes of evidence). At most ingest.REJECTIONS_PER_SOURCE_PER_MINUTE rows per
    terminal a minute, the rest counted in RejectionBudget."""

    __tablename__ = "rejected_upload"

    id: int | None = Field(default=None, primary_key=True)
    terminal_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))  # from the URL
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary(154), nullable=True))
    raw_sha256: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    raw_size: int = Field(sa_column=Column(Integer, nullable=False))
    reason: str = Field(sa_column=Column(String(32), nullable=False))
    detail: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class RejectionBudget(TableModel, table=True):
    """What a source (`terminal:{id}`, or `all`) may still write to the rejection log this minute."""

    __tablename__ = "rejection_budget"

    source: str = Field(sa_column=Column(String(32), primary_key=True))
    minute: int = Field(sa_column=Column(BigInteger, nullable=False))  # unix time // 60
    used: int = Field(sa_column=Column(BigInteger, nullable=False))  # rejections asked to log this minute
    dropped: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))  # ever, not logged


class LedgerAccount(TableModel, table=True):
    """Balance = credits_posted_cents - debits_posted_cents; only ever changed by atomic deltas."""

    __tablename__ = "ledger_account"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_column=Column(String(64), nullable=False, unique=True))  # member:12, vendor_payable:3
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    debits_posted_cents: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    credits_posted_cents: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class LedgerTransfer(TableModel, table=True):
    """One immutable double entry, after TigerBeetle's Transfer. Corrected by a reverse transfer."""

    __tablename__ = "ledger_transfer"
    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="ck_ledger_transfer_amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ck_ledger_transfer_distinct_accounts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Not indexed, like TransactionRecord.card_uid: balances live on the accounts, so nothing reads
    # transfers by account yet (accounts are never deleted, so the foreign keys need no index).
    debit_account_id: int = Field(sa_column=Column(Integer, ForeignKey("ledger_account.id"), nullable=False))
    credit_account_id: int = Field(sa_column=Column(Integer, ForeignKey("ledger_account.id"), nullable=False))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    # Idempotency key: record:{terminal_id}:{seq} for records, so a record posts at most once.
    reference: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    memo: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class Counter(TableModel, table=True):
    """Named monotonic counters. Incremented with UPDATE ... SET value = value + 1, so writers of
    one counter serialize on its row until they commit: a reader never sees version v committed
    while a smaller version is still in flight."""

    name: str = Field(sa_column=Column(String(32), primary_key=True))
    value: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


# Allowances, contributions, settlement (docs/settlement.md) -----------------------------------

class AllowanceMonth(TableModel, table=True):
    """A month allowances were allocated for; once closed, `caisse allocate` refuses it."""

    __tablename__ = "allowance_month"

    month: str = Field(sa_column=Column(String(7), primary_key=True))  # YYYY-MM
    allocated_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    closed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class Contribution(TableModel, table=True):
    """A household's contribution for a month, in cents. Immutable; corrected by a new row."""

    __table_args__ = (CheckConstraint("amount_cents > 0", name="ck_contribution_amount_positive"),)

    id: int | None = Field(default=None, primary_key=True)
    household_id: int = Field(sa_column=Column(Integer, ForeignKey("household.id"), nullable=False))
    month: str = Field(sa_column=Column(String(7), nullable=False, index=True))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    reference: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class HouseholdMeans(TableModel, table=True):
    """A household's size, means and chosen contribution from `effective_month` on, until its next
    row (caisse.members.means). The size drives the per_member allowance of each month; `household.members`
    is the size in force now."""

    __tablename__ = "household_means"
    __table_args__ = (
        UniqueConstraint("household_id", "effective_month", name="uq_household_means_month"),
        CheckConstraint("size > 0", name="ck_household_means_size"),
        CheckConstraint("income_quartile IS NULL OR income_quartile BETWEEN 1 AND 4", name="ck_household_means_quartile"),
        CheckConstraint("monthly_income_cents IS NULL OR monthly_income_cents >= 0", name="ck_household_means_income"),
        CheckConstraint("chosen_contribution_cents IS NULL OR chosen_contribution_cents >= 0",
                        name="ck_household_means_contribution"),
    )

    id: int | None = Field(default=None, primary_key=True)
    household_id: int = Field(sa_column=Column(Integer, ForeignKey("household.id"), nullable=False, index=True))
    effective_month: str = Field(sa_column=Column(String(7), nullable=False))  # YYYY-MM
    size: int = Field(sa_column=Column(Integer, nullable=False))
    income_quartile: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))  # 1 = lowest
    monthly_income_cents: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chosen_contribution_cents: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    recorded_by: str = Field(sa_column=Column(String(254), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class FeeCategory(TableModel, table=True):
    """What a fee paid was for (caisse.fund.costs), by the reference of its ledger transfer."""

    __tablename__ = "fee_category"
    __table_args__ = (
        CheckConstraint("category IN ('logiciel', 'banque', 'plateforme', 'personnel', 'autre')", name="ck_fee_category"),
    )

    reference: str = Field(sa_column=Column(String(128), primary_key=True))
    category: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class AllowanceKind(enum.StrEnum):
    """How a household's monthly allowance is reckoned (caisse.fund.allowances)."""
    FLAT = "flat"
    PER_MEMBER = "per_member"
    AVERAGE_CONTRIBUTION = "average_contribution"


class UnspentPolicy(enum.StrEnum):
    """What becomes of a household's allowance left unspent at the month's end."""
    CARRY_OVER = "carry_over"  # kept up to a cap
    EXPIRE = "expire"  # back to the allowance fund


class AllowanceRule(TableModel, table=True):
    """The allowance rule the citizens' committee chose, in force from `effective_month` until the
    next rule (docs/settlement.md). Without any rule, the settings give it."""

    __tablename__ = "allowance_rule"
    __table_args__ = (
        CheckConstraint("rule IN ('flat', 'per_member', 'average_contribution')", name="ck_allowance_rule_rule"),
        CheckConstraint("unspent IN ('carry_over', 'expire')", name="ck_allowance_rule_unspent"),
        CheckConstraint("flat_cents >= 0 AND base_cents >= 0 AND per_extra_member_cents >= 0"
                        " AND carry_over_cap_cents >= 0", name="ck_allowance_rule_amounts"),
    )

    effective_month: str = Field(sa_column=Column(String(7), primary_key=True))  # YYYY-MM
    rule: str = Field(sa_column=Column(String(24), nullable=False))
    flat_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    base_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    per_extra_member_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    pro_rata: bool = Field(sa_column=Column(Boolean, nullable=False))
    unspent: str = Field(sa_column=Column(String(16), nullable=False))
    carry_over_cap_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    set_by: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class SettlementStatus(enum.StrEnum):
    PREPARED = "prepared"
    APPROVED = "approved"
    EXPORTED = "exported"


class LineStatus(enum.StrEnum):
    """settlement_line.status: a vendor's line in a run is paid, or held with its reason."""
    PAID = "paid"
    HELD = "held"


class SettlementRun(TableModel, table=True):
    """One nightly run: prepared -> approved -> exported. At most one per date."""

    __tablename__ = "settlement_run"

    id: int | None = Field(default=None, primary_key=True)
    run_date: date = Field(sa_column=Column(Date, nullable=False, unique=True))
    cutoff_time: int = Field(sa_column=Column(BigInteger, nullable=False))  # unix s, exclusive
    status: str = Field(sa_column=Column(String(16), nullable=False))
    prepared_by: str = Field(sa_column=Column(String(100), nullable=False))
    prepared_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    approved_by: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    exported_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    output_dir: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    # Given when the run is prepared, so a file rewritten after a crash carries the same ids (caisse.settlement.sepa).
    message_id: str | None = Field(default=None, sa_column=Column(String(35), nullable=True))
    payment_info_id: str | None = Field(default=None, sa_column=Column(String(35), nullable=True))
    execution_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))  # set at export


class SettlementItem(TableModel, table=True):
    """A record settled by a run. The primary key is the record: a record is paid at most once."""

    __tablename__ = "settlement_item"
    # Indexed by run alone: run ids only grow, so each insert appends to the index. A (run, vendor)
    # index took inserts all over the tree and made a 1M-record run 3x slower (docs/performance.md).
    __table_args__ = (Index("ix_settlement_item_run_id", "run_id"),)

    # No foreign keys (migration 0006b): checking them was most of the cost of settling, and an item
    # is only ever inserted from its record, in the transaction of its run; neither is ever deleted.
    record_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    run_id: int = Field(sa_column=Column(Integer, nullable=False))
    vendor_id: int = Field(sa_column=Column(Integer, nullable=False))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))  # payment > 0, void < 0


class SettlementLine(TableModel, table=True):
    """Per run and vendor: what is paid, or what is held back and why (in French, for people)."""

    __tablename__ = "settlement_line"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(sa_column=Column(Integer, ForeignKey("settlement_run.id"), nullable=False, index=True))
    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), nullable=False))
    status: str = Field(sa_column=Column(String(8), nullable=False))  # a LineStatus
    reason: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    record_count: int = Field(sa_column=Column(Integer, nullable=False))
    # A paid line's payee, frozen when the run is prepared: the approver sees it, the file and the
    # statement pay it, whatever happens to the vendor's row afterwards.
    payee_name: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    payee_iban: str | None = Field(default=None, sa_column=Column(String(34), nullable=True))
    payee_bic: str | None = Field(default=None, sa_column=Column(String(11), nullable=True))
    payment_id: str | None = Field(default=None, sa_column=Column(String(35), nullable=True))  # EndToEndId
    # The day the caisse's bank statement (camt.054/053) shows the transfer debited (caisse.settlement.bank_returns).
    debited_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))


class BankFile(TableModel, table=True):
    """A bank message imported (caisse.settlement.bank_returns): its digest makes a second import change nothing."""

    __tablename__ = "bank_file"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    message_type: str = Field(sa_column=Column(String(40), nullable=False))  # pain.002.001.03, camt.054.001.02...
    message_id: str = Field(sa_column=Column(String(35), nullable=False))  # the bank's GrpHdr/MsgId
    imported_by: str = Field(sa_column=Column(String(254), nullable=False))
    imported_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class BankReturn(TableModel, table=True):
    """A transfer the bank rejected or returned (caisse.settlement.bank_returns): its money is back in the vendor's
    payable, and a later run pays it again. At most one per payment (its EndToEndId)."""

    __tablename__ = "bank_return"

    id: int | None = Field(default=None, primary_key=True)
    payment_id: str = Field(sa_column=Column(String(35), nullable=False, unique=True))
    run_id: int = Field(sa_column=Column(Integer, ForeignKey("settlement_run.id"), nullable=False))
    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), nullable=False, index=True))
    amount_cents: int = Field(sa_column=Column(BigInteger, nullable=False))
    iban: str = Field(sa_column=Column(String(34), nullable=False))  # the IBAN the money came back from
    reason_code: str = Field(sa_column=Column(String(8), nullable=False))  # ISO 20022 ExternalStatusReason, e.g. AC04
    reason: str = Field(sa_column=Column(String(300), nullable=False))  # in French, for staff and the vendor
    needs_new_iban: bool = Field(sa_column=Column(Boolean, nullable=False))
    file_sha256: str = Field(sa_column=Column(String(64), ForeignKey("bank_file.sha256"), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    repaid_run_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("settlement_run.id"), nullable=True))


class IbanChangeStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class VendorIbanChange(TableModel, table=True):
    """A vendor's new IBAN, requested by one console account and approved by another (caisse.vendors.service)."""

    __tablename__ = "vendor_iban_change"

    id: int | None = Field(default=None, primary_key=True)
    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), nullable=False, index=True))
    iban: str = Field(sa_column=Column(String(34), nullable=False))
    status: str = Field(default=IbanChangeStatus.PENDING, sa_column=Column(String(16), nullable=False))
    requested_by: str = Field(sa_column=Column(String(254), nullable=False))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    decided_by: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


# Accreditation of vendors (caisse.vendors.accreditation, docs/guide/conventionnement.md) ---------------

class AccreditationCriterion(TableModel, table=True):
    """A criterion the caisse checks before accrediting a vendor. Retired, it is no longer asked
    for; the vendors that met it keep their tick."""

    __tablename__ = "accreditation_criterion"

    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    retired: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class VendorCriterion(TableModel, table=True):
    """A criterion a vendor meets: ticked by a console account."""

    __tablename__ = "vendor_criterion"

    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), primary_key=True))
    criterion_id: int = Field(sa_column=Column(Integer, ForeignKey("accreditation_criterion.id"), primary_key=True))
    checked_by: str = Field(sa_column=Column(String(254), nullable=False))
    checked_at: datetime = Field(default_factory=utcnow, sa_column=_created())


class AccreditationState(TableModel, table=True):
    """A vendor's accreditation (status, start, end) from `since` on, until its next row: ingestion
    judges a payment on the state in force at the payment's judged time."""

    __tablename__ = "accreditation_state"

    id: int | None = Field(default=None, primary_key=True)
    vendor_id: int = Field(sa_column=Column(Integer, ForeignKey("vendor.id"), nullable=False, index=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    starts_on: date | None = None
    ends_on: date | None = None
    since: datetime = Field(default_factory=utcnow, sa_column=_created())


# Sortition of new members (caisse.members.sortition, docs/console.md "Sortition") ----------------------

class SortitionStatus(enum.StrEnum):
    OPEN = "open"  # volunteers are being registered
    SEALED = "sealed"  # the seed is published: the list of volunteers can no longer change
    DRAWN = "drawn"


class SortitionDraw(TableModel, table=True):
    __tablename__ = "sortition_draw"

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(String(200), nullable=False))
    status: str = Field(default=SortitionStatus.OPEN, sa_column=Column(String(16), nullable=False))
    created_by: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    # The public string and its SHA-256: published (and the list frozen) before the draw runs.
    seed_phrase: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    seed_hex: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    seed_published_by: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    seed_published_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    drawn_by: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    drawn_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # The age bands the strata use (caisse.members.sortition.SCHEMES): a draw keeps the scheme it was made
    # with, so it verifies the same way forever. Ages are counted at the closing date.
    scheme: str = Field(default="2024-18-34-35-59-60", sa_column=Column(String(32), nullable=False, server_default="2024-18-34-35-59-60"))
    closing_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))


class SortitionQuota(TableModel, table=True):
    """Seats of one stratum (income quartile x age band) in a draw."""

    __tablename__ = "sortition_quota"
    __table_args__ = (
        CheckConstraint("income_quartile BETWEEN 1 AND 4", name="ck_sortition_quota_quartile"),
        CheckConstraint("age_band BETWEEN 1 AND 3", name="ck_sortition_quota_age_band"),
        CheckConstraint("seats >= 0", name="ck_sortition_quota_seats"),
    )

    draw_id: int = Field(sa_column=Column(Integer, ForeignKey("sortition_draw.id"), primary_key=True, autoincrement=False))
    income_quartile: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    age_band: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    seats: int = Field(sa_column=Column(Integer, nullable=False))
    # The population's share the seats were computed from (a percentage or a count, as staff typed
    # it, decimal text); None when staff typed the seats themselves.
    population_share: str | None = Field(default=None, sa_column=Column(String(24), nullable=True))


class InvitationStatus(enum.StrEnum):
    INVITED = "invited"  # drawn (or the next of its stratum's reserve): waiting for an answer
    ACCEPTED = "accepted"  # became a household (household_id)
    DECLINED = "declined"  # the next of the reserve was invited instead


class SortitionVolunteer(TableModel, table=True):
    """A volunteer of a draw. `number` (1, 2, ... in registration order) is the public reference
    the draw hashes; name and contact are personal data, never shown to the committee."""

    __tablename__ = "sortition_volunteer"
    __table_args__ = (
        UniqueConstraint("draw_id", "number", name="uq_sortition_volunteer_draw_number"),
        CheckConstraint("income_quartile BETWEEN 1 AND 4", name="ck_sortition_volunteer_quartile"),
        CheckConstraint("age_band BETWEEN 1 AND 3", name="ck_sortition_volunteer_age_band"),
    )

    id: int | None = Field(default=None, primary_key=True)
    draw_id: int = Field(sa_column=Column(Integer, ForeignKey("sortition_draw.id"), nullable=False))
    number: int = Field(sa_column=Column(Integer, nullable=False))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    contact: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    income_quartile: int = Field(sa_column=Column(SmallInteger, nullable=False))
    age_band: int = Field(sa_column=Column(SmallInteger, nullable=False))
    registered_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    # Set by the draw: position in the stratum's order, and whether it is within the seats.
    rank: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    selected: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    # The questionnaire (scheme 2026 on): the reference person's date of birth gives the age band
    # at the closing date; household size and where they shop are asked for the caisse's needs.
    birth_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    household_size: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    shops: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    # The invitation that follows the draw; accepting makes the household.
    invitation: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    invitation_decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    household_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("household.id"), nullable=True))
    erased_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


# Console accounts and the audit log (docs/console.md) -----------------------------------------

class Role(enum.StrEnum):
    ADMIN = "admin"  # everything, including accounts
    COORDINATOR = "coordinator"  # households, cards, vendors, terminals, transactions
    TREASURER = "treasurer"  # settlements (approves), vendors' IBANs, transactions
    COMMITTEE = "committee"  # aggregates only: budget, flows, sortition; no personal data


class ConsoleUser(TableModel, table=True):
    __tablename__ = "console_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(254), nullable=False, unique=True))  # stored lower-case
    role: str = Field(sa_column=Column(String(16), nullable=False))
    password_hash: str = Field(sa_column=Column(String(255), nullable=False))  # argon2id, PHC string
    active: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, default=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    last_login_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class ConsoleSession(TableModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database does not let anyone sign in. Deleting the row signs the browser out."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    user_id: int = Field(sa_column=Column(Integer, ForeignKey("console_user.id"), nullable=False, index=True))
    csrf_token: str = Field(sa_column=Column(String(64), nullable=False))  # sent back by every form
    created_at: datetime = Field(default_factory=utcnow, sa_column=_created())
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class LoginAttempt(TableModel, table=True):
    """Sign-in attempts of the last window, counted to refuse guessing (caisse.staff.accounts)."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_email_at", "email", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(String(254), nullable=False))
    succeeded: bool = Field(sa_column=Column(Boolean, nullable=False))
    at: datetime = Field(default_factory=utcnow, sa_column=_created())


class AuditEvent(TableModel, table=True):
    """Who changed what, written in the same transaction as the change. Never updated or deleted."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_created())
    actor: str = Field(sa_column=Column(String(254), nullable=False))  # a console user's email, or "cli"
    action: str = Field(sa_column=Column(String(64), nullable=False))  # household.enrol, card.block...
    subject: str = Field(sa_column=Column(String(200), nullable=False, index=True))  # household:12
    detail: str | None = Field(default=None, sa_column=Column(String(2000), nullable=True))
