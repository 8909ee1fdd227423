"""Card versions: how terminals learn what changed since their last sync (caisse.terminals.sync).

Versions come from the `cards` counter row. A writer takes the next version with
`UPDATE counter SET value = value + 1 ... RETURNING value` and stamps the cards it changed in the
same transaction; the row lock on the counter is held until commit, so versions are committed in
increasing order. Every service that changes a card or a member's balance stamps it here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from caisse.db import bind_value, is_postgresql, table_of
from caisse.models import Card, Counter, Household, utcnow

CARDS_COUNTER = "cards"

_counter = table_of(Counter)
_card = table_of(Card)
_household = table_of(Household)


def take_cards_versions(session: Session, *, count: int) -> int:
    """Reserve `count` consecutive versions and return the last one. The counter row stays
    locked until the caller commits."""
    assert count > 0
    statement = (
        update(_counter)
        .where(_counter.c.name == CARDS_COUNTER)
        .values(value=_counter.c.value + count)
        .returning(_counter.c.value)
    )
    version = session.execute(statement).scalar_one_or_none()
    if version is None:  # the migration creates the row; this covers a hand-made schema
        try:
            with session.begin_nested():
                session.execute(insert(_counter).values(name=CARDS_COUNTER, value=0))
        except IntegrityError:
            pass
        version = session.execute(statement).scalar_one()
    return int(version)


def current_cards_version(session: Session) -> int:
    value = session.execute(select(_counter.c.value).where(_counter.c.name == CARDS_COUNTER)).scalar_one_or_none()
    return int(value or 0)


def bump_cards(session: Session, *, household_ids: Iterable[int] = (), card_ids: Iterable[int] = ()) -> int | None:
    """Give these cards, and every card of these households, a new version; return the last one.

    Each household (and each single card) gets its own version, so a version never covers more
    than one household's cards and a sync page can always end between two versions.
    """
    household_ids, card_ids = sorted(set(household_ids)), sorted(set(card_ids))
    count = len(household_ids) + len(card_ids)
    if count == 0:
        return None
    last = take_cards_versions(session, count=count)
    version = last - count
    if household_ids and is_postgresql(session):
        session.execute(
            text(
                "UPDATE card SET sync_version = :version + v.n"
                " FROM unnest(CAST(string_to_array(:households, ',') AS integer[])) WITH ORDINALITY AS v(household_id, n)"
                " WHERE card.household_id = v.household_id"
            ),
            # One text parameter, not an array: psycopg dumps a list in Python, element by element.
            {"households": ",".join(map(str, household_ids)), "version": version},
        )
        version += len(household_ids)
    elif household_ids:
        session.connection().exec_driver_sql(
            "UPDATE card SET sync_version = ? WHERE household_id = ?",
            [(version + i, h) for i, h in enumerate(household_ids, start=1)],
        )
        version += len(household_ids)
    if card_ids:
        versions = {c: version + i for i, c in enumerate(card_ids, start=1)}
        session.execute(
            update(_card).where(_card.c.id.in_(card_ids)).values(sync_version=case(versions, value=_card.c.id))
        )
    if household_ids:
        mark_overdrafts(session, household_ids=household_ids)
    return last


# A member account's household id (its code is member:{id}) and balance.
_ACCOUNT_BALANCE = ("CAST(substr(code, 8) AS INTEGER) AS household_id,"
                    " credits_posted_cents - debits_posted_cents AS balance")


def mark_overdrafts(session: Session, *, household_ids: Collection[int]) -> None:
    """Set `household.overdrawn_since` for those of these households now below zero, clear it for
    those no longer. Every change of a member's balance bumps its household here (terminals must
    learn it), so this is the one place that sees a household cross zero. One UPDATE joined to
    their accounts (looked up by code, the unique index), writing only the rows whose state changes."""
    codes = [f"member:{h}" for h in sorted(household_ids)]
    if is_postgresql(session):
        accounts = f"SELECT {_ACCOUNT_BALANCE} FROM ledger_account WHERE code = ANY(string_to_array(:codes, ','))"
        codes_value = ",".join(codes)
    else:
        accounts = f"SELECT {_ACCOUNT_BALANCE} FROM ledger_account WHERE code IN (SELECT value FROM json_each(:codes))"
        codes_value = json.dumps(codes)
    session.execute(
        text("UPDATE household SET overdrawn_since = CASE WHEN a.balance < 0 THEN :now END"
             f" FROM ({accounts}) AS a WHERE household.id = a.household_id"
             " AND (a.balance < 0) <> (household.overdrawn_since IS NOT NULL)"),
        {"codes": codes_value, "now": bind_value(session, _household.c.overdrawn_since, utcnow())},
    )


def bump_blocked_cards(session: Session, *, card_ids: Collection[int]) -> None:
    """Give cards just blocked or returned a new version, and remember it as the version that
    carried the block: a terminal that proves holding it has been told (caisse.cards.authentication)."""
    if not card_ids:
        return
    bump_cards(session, card_ids=card_ids)
    session.execute(update(_card).where(_card.c.id.in_(list(card_ids)))  # a card blocked earlier keeps its first version
                    .values(blocked_version=func.coalesce(_card.c.blocked_version, _card.c.sync_version)))
