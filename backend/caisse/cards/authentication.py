"""Secure cards at ingestion (docs/cards.md, "Ingestion check"): the SUN message of a payment,
its read counter used at most once, and what happens to a card and its payments when either
fails or when a blocked card is tapped.

Called by caisse.ingest.upload inside the batch's transaction. A payment is never refused for any of
this: the terminal committed it and the vendor handed over the food. Instead the record is held
for review (caisse.ingest.review) with a French reason. What happens to the card depends on what one
terminal can prove: a missing or bad SUN message proves nothing about the card (any terminal can
sign a record with any UID), so the card is only flagged for staff; a genuine counter used by
two different terminals proves a copy of a genuine message exists, so the card is blocked and
every terminal refuses it after its next sync; a genuine counter used twice by one terminal
points at that terminal, which caisse.ingest.upload flags suspect.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from caisse.cards.versions import bump_blocked_cards
from caisse.config import Settings
from caisse.db import column_in, is_postgresql, table_of
from caisse.models import BlockReason, Card, CardCounter, CardStatus, TerminalSync, unix_s, utcnow
from caisse_common import sun

ZERO_AUTH = bytes(24)
_card = table_of(Card)
_counter = table_of(CardCounter)
_sync = table_of(TerminalSync)

# Why a card is refused, as staff and hold reasons say it; keyed by str, as it reads the stored
# block_reason column.
BLOCK_REASON_FR: dict[str, str] = {
    BlockReason.LOST: "perdue", BlockReason.STOLEN: "volée", BlockReason.REPLACED: "remplacée",
    BlockReason.FLAGGED: "suspectée de clonage", BlockReason.LEFT: "foyer parti"}


@dataclass(frozen=True, slots=True)
class CardKeys:
    """The caisse's SUN keys, from the settings (never from the database)."""

    meta_key: bytes
    master_key: bytes
    application_id: bytes
    system_id: bytes

    def file_key(self, uid: bytes) -> bytes:
        """The card's SDM file-read key, diversified from the master key (AN10922)."""
        return _diversified(self.master_key, uid, self.application_id, self.system_id)


def card_keys(settings: Settings) -> CardKeys:
    return _keys(settings.card_meta_key_hex, settings.card_master_key_hex, settings.card_key_application_id_hex,
                 settings.card_key_system_id_hex)


@lru_cache(maxsize=8)
def _keys(meta_hex: str, master_hex: str, application_hex: str, system_hex: str) -> CardKeys:
    return CardKeys(meta_key=bytes.fromhex(meta_hex), master_key=bytes.fromhex(master_hex),
                    application_id=bytes.fromhex(application_hex), system_id=bytes.fromhex(system_hex))


@lru_cache(maxsize=4096)
def _diversified(master_key: bytes, uid: bytes, application_id: bytes, system_id: bytes) -> bytes:
    return sun.diversify_key(master_key, uid, application_id=application_id, system_id=system_id)


def check_sun(keys: CardKeys, *, card_uid: bytes, card_auth: bytes) -> tuple[int | None, str | None]:
    """(read counter, None) when card_auth is a genuine SUN message of this card, else
    (None, why not, in French). Whether the counter was used before is claim_counters' job."""
    if card_auth == ZERO_AUTH:
        return None, "carte sécurisée payée sans message SUN : copie de son UID ?"
    try:
        message = sun.verify_sun(meta_key=keys.meta_key, file_key=keys.file_key(card_uid),
                                 picc_data=card_auth[: sun.PICC_DATA_BYTES], mac=card_auth[sun.PICC_DATA_BYTES :])
    except sun.SunError:
        return None, "message SUN illisible : falsifié, ou clé de lecture différente"
    if message.uid != card_uid:
        return None, f"le message SUN est celui de la carte {message.uid.hex()} : carte copiée ?"
    if not message.mac_valid:
        return None, "MAC SUN invalide : message falsifié"
    return message.counter, None


def claim_counters(session: Session, *, terminal_id: int,
                   claims: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Record each (card_id, counter, seq) as used; return (card_id, counter, seq, terminal that
    used it first) for those whose counter was used already, by a stored record or earlier in
    `claims`. One INSERT ... ON CONFLICT DO NOTHING: on PostgreSQL a concurrent batch claiming
    the same counter waits for ours to end, then gets nothing back, so each counter is granted to
    exactly one record."""
    fresh: dict[tuple[int, int], int] = {}
    repeated = []
    for card_id, counter, seq in claims:
        if (card_id, counter) in fresh:
            repeated.append((card_id, counter, seq, terminal_id))
        else:
            fresh[(card_id, counter)] = seq
    if not fresh:
        return repeated
    dialect = postgresql if is_postgresql(session) else sqlite
    rows = [{"card_id": c, "counter": n, "terminal_id": terminal_id, "seq": s} for (c, n), s in sorted(fresh.items())]
    statement = (dialect.insert(_counter).values(rows).on_conflict_do_nothing()
                 .returning(_counter.c.card_id, _counter.c.counter))
    granted = {(c, n) for c, n in session.execute(statement)}
    taken = [(c, n, s) for (c, n), s in fresh.items() if (c, n) not in granted]
    if not taken:
        return repeated
    owners = {(c, n): t for c, n, t in session.execute(
        select(_counter.c.card_id, _counter.c.counter, _counter.c.terminal_id).where(
            column_in(session, _counter.c.card_id, sorted({c for c, _, _ in taken})),
            column_in(session, _counter.c.counter, sorted({n for _, n, _ in taken})))
    )}
    return repeated + [(c, n, s, owners[(c, n)]) for c, n, s in taken]


def deny_list_held_since(session: Session, *, terminal_id: int, version: int) -> int | None:
    """Unix time of the first sync at which the terminal proved it held `version` of the card
    feed (its `since`), or None if it never did."""
    first = session.execute(
        select(func.min(_sync.c.synced_at)).where(_sync.c.terminal_id == terminal_id, _sync.c.cards_version >= version)
    ).scalar_one_or_none()
    return None if first is None else unix_s(first)


def unheld_block_reason(status: str, block_reason: str | None) -> str:
    """Hold reason of a tap on a blocked card by a terminal whose deny list predated the block."""
    what = "rendue" if status == CardStatus.RETURNED else BLOCK_REASON_FR.get(block_reason or "", "bloquée")
    return f"carte {what} : liste de blocage pas encore reçue par ce terminal (pas la faute du commerçant)"


def flag_cards(session: Session, *, reasons: Mapping[int, str]) -> None:
    """Note on each card, for staff, why a payment of it was held; the card stays as it is (what
    one terminal signs proves nothing about the card). A card keeps its first flag reason."""
    for card_id, reason in sorted(reasons.items()):
        session.execute(update(_card).where(_card.c.id == card_id, _card.c.flag_reason.is_(None)).values(flag_reason=reason[:200]))


def block_copied_cards(session: Session, *, reasons: Mapping[int, str]) -> None:
    """Block active cards as copies (a genuine SUN counter claimed by two terminals), one sync
    version each, so terminals learn it. A card already blocked keeps its first block and reason."""
    blocked: list[int] = []
    for card_id, reason in sorted(reasons.items()):
        done = session.connection().execute(  # a Connection's result has the rowcount
            update(_card).where(_card.c.id == card_id, _card.c.status == CardStatus.ACTIVE)
            .values(status=CardStatus.BLOCKED, blocked_at=utcnow(), block_reason=BlockReason.FLAGGED, flag_reason=reason[:200])
        )
        if done.rowcount:
            blocked.append(card_id)
    bump_blocked_cards(session, card_ids=blocked)
