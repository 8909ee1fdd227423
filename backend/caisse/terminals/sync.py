"""Terminal sync (docs/protocol.md#sync): clock, deny list and balances, as a delta.

Three versions are served (docs/protocol.md, "Sync versions"): v1, 32-byte entries and six limits,
for terminals that do not ask for more; v2 (`v=2`), 36-byte entries that name the card's household
and limits with the offline budget; v3 (`v=3`), v2 plus whether the vendor may take payments and
when its accreditation ends (caisse.vendors.accreditation). A v2 answer is remembered for ingestion to judge the budget
(caisse.terminals.offline_limits): the limits sent (`terminal_limits`, a row when they change) and, per
household and cards version, the balance sent (`feed_balance`).

Versions come from the `cards` counter row. A writer takes the next version with
`UPDATE counter SET value = value + 1 ... RETURNING value` and stamps the cards it changed in the
same transaction; the row lock on the counter is held until commit, so versions are committed in
increasing order. A reader reads the counter first, then the cards up to that value: every card
stamped at or below it is already committed and visible, so no change is ever skipped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, String, cast, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from caisse.cards import member_codes
from caisse.cards.versions import current_cards_version
from caisse.config import Settings
from caisse.db import is_postgresql, table_of
from caisse.errors import SyncUnauthorized
from caisse.models import Card, CardStatus, FeedBalance, Household, LedgerAccount, Terminal, TerminalLimits, TerminalSync, Vendor, utcnow
from caisse.terminals.service import TerminalState, lock_terminal, terminal_public_key
from caisse.vendors import accreditation
from caisse_common import protocol

MAX_CARDS_PER_SYNC = 512
SYNC_VERSIONS = (1, 2, 3)
# uid_len, uid (zero padded), status, balance_cents, member code salt and verifier (zeros: no code)
CARD_ENTRY = struct.Struct(">B10sBi8s8s")
assert CARD_ENTRY.size == 32
# v2: the v1 entry, then the card's household id (terminals add up spend per household)
CARD_ENTRY_V2 = struct.Struct(">B10sBi8s8sI")
assert CARD_ENTRY_V2.size == 36
_NO_CODE = bytes(8)
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
CODE_KEY_DOMAIN = b"caisse-member-code-v1"
MAX_SINCE = 0xFFFFFFFF
# X-Caisse-Firmware (docs/protocol.md#sync): at most 32 printable ASCII characters.
_FIRMWARE_VERSION = re.compile(r"[\x20-\x7e]{1,32}")

_card = table_of(Card)
_terminal = table_of(Terminal)
_household = table_of(Household)
_terminal_sync = table_of(TerminalSync)
_account = table_of(LedgerAccount)
_terminal_limits = table_of(TerminalLimits)
_feed_balance = table_of(FeedBalance)


def member_balance(household_id: ColumnElement[int]) -> ColumnElement[int]:
    """The balance of the household's member account as a SQL expression (0 without an account)."""
    code = literal("member:") + cast(household_id, String)
    return func.coalesce(
        select(_account.c.credits_posted_cents - _account.c.debits_posted_cents).where(_account.c.code == code)
        .scalar_subquery(), 0)


@dataclass(frozen=True, slots=True)
class SyncResponse:
    server_time: int
    acked_seq: int
    cards_version: int
    full: bool
    more: bool
    cards: bytes  # packed CARD_ENTRY (v1) or CARD_ENTRY_V2 (v2) entries
    limits: dict[str, int]
    version: int = 1
    accreditation: dict[str, object] | None = None  # v3: {"active": bool, "ends_at": unix s or None}

    def as_json(self) -> dict:
        return ({"v": self.version} if self.version > 1 else {}) | {
            "server_time": self.server_time,
            "acked_seq": self.acked_seq,
            "cards_version": self.cards_version,
            "full": self.full,
            "more": self.more,
            "cards": base64.b64encode(self.cards).decode(),
            "limits": self.limits,
        } | ({"accreditation": self.accreditation} if self.accreditation is not None else {})


def authenticate(
    session: Session, *, terminal_id: int, time_s: int | None, signed: Callable[[int], bytes], signature_hex: str | None,
    now_s: int, settings: Settings,
) -> TerminalState:
    """The terminal (its row locked) if the request is genuine and timely; raises otherwise.

    `signed(time_s)` is the digest the terminal signs for this kind of request."""
    terminal = lock_terminal(session, terminal_id=terminal_id)
    if time_s is None or signature_hex is None:
        raise SyncUnauthorized("bad_signature", "X-Caisse-Time and X-Caisse-Signature are required")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        signature = b""
    if len(signature) != protocol.SIGNATURE_SIZE or not 0 <= time_s <= MAX_SINCE:
        raise SyncUnauthorized("bad_signature", "X-Caisse-Signature is 128 hex characters over a u32 time")
    if not protocol.verify_digest(terminal_public_key(terminal.public_key), signed(time_s), signature):
        raise SyncUnauthorized("bad_signature", "the signature does not verify with this terminal's key")
    if abs(time_s - now_s) > settings.sync_clock_window_s:
        raise SyncUnauthorized(
            "clock_skew", f"terminal time is {time_s - now_s:+d} s from the server's", server_time=now_s
        )
    return terminal


def record_code_failures(
    session: Session, *, terminal_id: int, time_s: int | None, signature_hex: str | None, body: bytes,
    now_s: int, settings: Settings,
) -> int:
    """A terminal's report of wrong member codes, signed like sync: authenticated here, then counted
    per card (caisse.cards.member_codes). Raises like sync, or InvalidInput."""
    authenticate(session, terminal_id=terminal_id, time_s=time_s,
                 signed=lambda t: protocol.code_failures_digest(terminal_id, t, body),
                 signature_hex=signature_hex, now_s=now_s, settings=settings)
    return member_codes.record_failures(session, terminal_id=terminal_id, body=body)


def terminal_code_key(settings: Settings, terminal_id: int) -> bytes:
    """The member-code key of a terminal: HMAC-SHA256(master, "caisse-member-code-v1" || u32 id),
    written into its ATECC608 at provisioning (docs/protocol.md, "Member-code verifiers")."""
    master = bytes.fromhex(settings.member_code_master_key_hex)
    return hmac.new(master, CODE_KEY_DOMAIN + struct.pack(">I", terminal_id), hashlib.sha256).digest()


def member_code_fields(salt: bytes | None, verifier: bytes | None, *, secure_element: bool | None,
                       code_key: bytes | None) -> tuple[bytes, bytes]:
    """The (code_salt, code_verifier) of a card entry for this terminal, from the household's
    stored salt and SHA-256(salt || code)[:8]: zeros without a code; keyed with the terminal's
    code key when its chip holds it; the salt alone (a code is needed, this terminal cannot check
    it) when it has no chip; as stored for a terminal registered before member-code keys."""
    if salt is None or verifier is None:
        return _NO_CODE, _NO_CODE
    if secure_element is None:
        return bytes(salt), bytes(verifier)
    if not secure_element or code_key is None:
        return bytes(salt), _NO_CODE
    return bytes(salt), hmac.new(code_key, bytes(verifier), hashlib.sha256).digest()[:8]


def sync_terminal(
    session: Session, *, terminal_id: int, time_s: int | None, since: int, signature_hex: str | None,
    now_s: int, settings: Settings, firmware_version: str | None = None, version: int = 1,
) -> SyncResponse:
    """Authenticate, then the card changes after `since` (at most 512, in version order), in the
    entries and limits of sync `version`.

    Records the terminal's last sync time, the cards version it holds and its firmware version
    (a malformed one is ignored: it is informational); for v2, what the answer told it. The
    caller commits.
    """
    assert 0 <= since <= MAX_SINCE and version in SYNC_VERSIONS
    terminal = authenticate(session, terminal_id=terminal_id, time_s=time_s,
                            signed=lambda t: protocol.sync_digest(terminal_id, t, since),
                            signature_hex=signature_hex, now_s=now_s, settings=settings)
    code_key = terminal_code_key(settings, terminal_id) if terminal.secure_element else None
    record_version_held(session, terminal_id=terminal_id, since=since)
    upper = current_cards_version(session)  # read before the cards: see the module docstring
    # The balance is read in the statement that reads the versions: one snapshot, so the balance
    # sent with a card's version is the household's balance at that version (feed_balance).
    rows = session.execute(
        select(_card.c.uid, _card.c.status, _card.c.household_id, _card.c.sync_version,
               _household.c.code_salt, _household.c.code_verifier, member_balance(_card.c.household_id).label("balance"))
        .join(_household, _household.c.id == _card.c.household_id)
        .where(_card.c.sync_version > since, _card.c.sync_version <= upper)
        .order_by(_card.c.sync_version, _card.c.id)
        .limit(MAX_CARDS_PER_SYNC + 1)
    ).all()
    more = len(rows) > MAX_CARDS_PER_SYNC
    if more:
        page = rows[:MAX_CARDS_PER_SYNC]
        boundary = page[-1].sync_version
        if rows[MAX_CARDS_PER_SYNC].sync_version == boundary:
            # Cards sharing a version must travel together, or `since` would skip the rest.
            # A version covers at most one household's cards (admin.MAX_CARDS_ATTACHED_PER_HOUSEHOLD, ended cards included).
            page = [r for r in page if r.sync_version != boundary]
            assert page, "a sync version covers more cards than a page holds"
        rows, cards_version = page, page[-1].sync_version
    else:
        cards_version = upper
    packed = b"".join(_entry(r, version, secure_element=terminal.secure_element, code_key=code_key) for r in rows)
    limits = settings.terminal_limits(version)
    changes: dict[str, object] = {"last_sync_at": utcnow()}
    if is_firmware_version(firmware_version):
        changes["firmware_version"] = firmware_version
    if version >= 2:
        _remember_balances_sent(session, rows=rows)
        changes["cards_version_sent"] = cards_version
        if terminal.limits_version != limits["limits_version"]:
            session.execute(insert(_terminal_limits).values(
                terminal_id=terminal_id, limits_version=limits["limits_version"], offline_share_bp=limits["offline_share_bp"],
                offline_daily_cap_cents=limits["offline_daily_cap_cents"], sent_at=utcnow()))
            changes["limits_version"] = limits["limits_version"]
    session.execute(update(_terminal).where(_terminal.c.id == terminal_id).values(**changes))
    return SyncResponse(
        server_time=now_s, acked_seq=terminal.acked_seq, cards_version=cards_version, full=since == 0, more=more,
        cards=packed, limits=limits, version=version,
        accreditation=vendor_accreditation(session, vendor_id=terminal.vendor_id, now_s=now_s, settings=settings)
        if version >= 3 else None,
    )


def vendor_accreditation(session: Session, *, vendor_id: int, now_s: int, settings: Settings) -> dict[str, object]:
    """The `accreditation` of a v3 answer: may the vendor take payments now, and from when its
    terminals refuse them by their own clock (docs/protocol.md, "Sync v3")."""
    vendor = session.get(Vendor, vendor_id)
    assert vendor is not None, "a terminal belongs to a vendor"
    zone = ZoneInfo(settings.settlement_timezone)
    return {"active": accreditation.may_take_payments(vendor, now_s=now_s, zone=zone),
            "ends_at": accreditation.ends_at_s(vendor, zone=zone)}


def _entry(row: Row[*tuple[Any, ...]], version: int, *, secure_element: bool | None, code_key: bytes | None) -> bytes:
    balance = max(_I32_MIN, min(_I32_MAX, int(row.balance)))
    fields = (len(row.uid), bytes(row.uid), 0 if row.status == CardStatus.ACTIVE else 1, balance,
              *member_code_fields(row.code_salt, row.code_verifier, secure_element=secure_element,
                                  code_key=code_key))
    if version == 1:
        return CARD_ENTRY.pack(*fields)
    return CARD_ENTRY_V2.pack(*fields, row.household_id)


def _remember_balances_sent(session: Session, *, rows: Sequence[Row[*tuple[Any, ...]]]) -> None:
    """One feed_balance row per (household, cards version) of the page; a row another terminal's
    sync wrote already is the same balance (read at the same version), so conflicts are skipped."""
    sent = {(r.household_id, r.sync_version): int(r.balance) for r in rows}
    if not sent:
        return
    dialect = postgresql if is_postgresql(session) else sqlite
    values = [{"household_id": h, "cards_version": v, "balance_cents": b} for (h, v), b in sorted(sent.items())]
    session.execute(dialect.insert(_feed_balance).values(values).on_conflict_do_nothing())


def is_firmware_version(value: str | None) -> bool:
    return value is not None and _FIRMWARE_VERSION.fullmatch(value) is not None


def record_version_held(session: Session, *, terminal_id: int, since: int) -> None:
    """Remember that the terminal holds cards version `since` now, when it is above every version
    it reported before: ingestion asks when a terminal first held a block's version
    (caisse.cards.authentication.deny_list_held_since), so only new highs matter, and the table grows with
    the feed's changes, not with the number of syncs. Called under the terminal's row lock."""
    highest = session.execute(
        select(func.max(_terminal_sync.c.cards_version)).where(_terminal_sync.c.terminal_id == terminal_id)
    ).scalar_one_or_none()
    if highest is None or since > highest:
        session.execute(insert(_terminal_sync).values(terminal_id=terminal_id, cards_version=since, synced_at=utcnow()))


class CardEntry(NamedTuple):
    uid: bytes
    status: int  # 0 active, 1 refused (blocked or returned)
    balance_cents: int
    code_salt: bytes  # zeros when the household has no member code
    code_verifier: bytes


def unpack_cards(packed: bytes) -> list[CardEntry]:
    """The entries of a v1 sync answer; the inverse of what sync sends. For tests and tools."""
    assert len(packed) % CARD_ENTRY.size == 0
    return [CardEntry(uid[:uid_len], status, balance, salt, verifier)
            for uid_len, uid, status, balance, salt, verifier in CARD_ENTRY.iter_unpack(packed)]


class CardEntryV2(NamedTuple):
    uid: bytes
    status: int
    balance_cents: int
    code_salt: bytes
    code_verifier: bytes
    household_id: int


def unpack_cards_v2(packed: bytes) -> list[CardEntryV2]:
    """The entries of a v2 sync answer. For tests and tools."""
    assert len(packed) % CARD_ENTRY_V2.size == 0
    return [CardEntryV2(uid[:uid_len], status, balance, salt, verifier, household)
            for uid_len, uid, status, balance, salt, verifier, household in CARD_ENTRY_V2.iter_unpack(packed)]
