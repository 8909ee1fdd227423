"""Staff services: unblocking a card (which blocks may be lifted, terminals told through sync),
console accounts (who may manage them, the last administrator, a reset password shown once),
and the searches of the lists (accents, `%`, `'`, pages)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from caisse import audit
from caisse.cards import service as card_service
from caisse.errors import Conflict, Forbidden, InvalidInput
from caisse.ingest import terminal_decisions
from caisse.members import households as household_service
from caisse.models import BlockReason, CardStatus, Role
from caisse.reports import directory
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.terminals.sync import unpack_cards
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.factories import World, make_world, new_uid
from tests.console.conftest import _fast_password_hashing  # noqa: F401 (autouse: argon2 at its smallest cost)

PASSWORD = "mot-de-passe-de-test"
# Plain ORM work, the same on both databases: SQLite only. The searches' SQL (folding, escaping,
# pages) runs on PostgreSQL too in CI.
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def _staff(session: Session) -> dict[Role, str]:
    emails = {role: f"{role.value}@caisse.test" for role in Role}
    for role, email in emails.items():
        accounts.create_user(session, email=email, password=PASSWORD, role=role)
    session.commit()
    return emails


def _card_entries(client: TestClient, world: World, since: int) -> tuple[int, dict[bytes, int]]:
    now = int(time.time())
    signature = protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, now, since))
    body = client.get(f"/v1/terminals/{world.terminal_id}/sync", params={"since": since},
                      headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()}).json()
    return body["cards_version"], {e.uid: e.status for e in unpack_cards(base64.b64decode(body["cards"]))}


@sqlite_only
def test_a_lost_card_found_again_is_unblocked_audited_and_terminals_learn_it_at_their_next_sync(
    client: TestClient, session: Session,
) -> None:
    staff = _staff(session)
    world = make_world(session)
    card_service.block_card(session, uid_hex=world.uid.hex(), reason=BlockReason.LOST, by=staff[Role.COORDINATOR])
    session.commit()
    version, entries = _card_entries(client, world, 0)
    assert entries[world.uid] == 1  # refused
    card = card_service.unblock_card(session, uid_hex=world.uid.hex(), by=staff[Role.COORDINATOR], os_user="marie")
    session.commit()
    assert (card.status, card.blocked_at, card.block_reason, card.blocked_version) == (CardStatus.ACTIVE, None, None, None)
    later, delta = _card_entries(client, world, version)
    assert later > version and delta == {world.uid: 0}  # active again, sent as a change
    [unblocked, blocked] = audit.events(session, subjects=[f"card:{world.uid.hex()}"], action_prefix="card.")[:2]
    assert (unblocked.action, unblocked.actor, blocked.action) == ("card.unblock", staff[Role.COORDINATOR], "card.block")
    detail = json.loads(unblocked.detail or "{}")
    assert (detail["reason"], detail["os_user"], detail["household_id"]) == ("lost", "marie", world.household_id)
    with pytest.raises(Conflict) as twice:
        card_service.unblock_card(session, uid_hex=world.uid.hex(), by=staff[Role.COORDINATOR])
    assert twice.value.code == "card_not_blocked"


@sqlite_only
@pytest.mark.parametrize("reason", [BlockReason.STOLEN, BlockReason.FLAGGED, BlockReason.REPLACED])
def test_a_stolen_copied_or_replaced_card_is_never_unblocked(session: Session, reason: BlockReason) -> None:
    staff = _staff(session)
    world = make_world(session)
    if reason == BlockReason.REPLACED:
        card_service.replace_card(session, uid_hex=world.uid.hex(), new_uid_hex=new_uid().hex(), by=staff[Role.ADMIN])
    elif reason == BlockReason.STOLEN:
        card_service.block_card(session, uid_hex=world.uid.hex(), reason=reason, by=staff[Role.ADMIN])
    else:
        from sqlalchemy import update

        from caisse.models import Card

        session.execute(update(Card).where(Card.uid == world.uid).values(  # type: ignore[arg-type]
            status=CardStatus.BLOCKED, block_reason=reason, blocked_at=None))
    session.commit()
    events = len(audit.events(session))
    with pytest.raises(Conflict) as refused:
        card_service.unblock_card(session, uid_hex=world.uid.hex(), by=staff[Role.ADMIN])
    assert refused.value.code == "card_block_final"
    session.rollback()
    assert card_service.get_card(session, uid_hex=world.uid.hex()).status == CardStatus.BLOCKED
    assert len(audit.events(session)) == events


@sqlite_only
def test_a_returned_card_is_issued_again_not_unblocked_and_a_disabled_account_changes_nothing(session: Session) -> None:
    staff = _staff(session)
    world = make_world(session)
    card_service.return_card(session, uid_hex=world.uid.hex(), by=staff[Role.ADMIN])
    session.commit()
    with pytest.raises(Conflict, match="returned"):
        card_service.unblock_card(session, uid_hex=world.uid.hex(), by=staff[Role.ADMIN])
    session.rollback()
    accounts.set_active(session, email=staff[Role.COORDINATOR], active=False, by=staff[Role.ADMIN])
    session.commit()
    for action in (lambda: card_service.block_card(session, uid_hex=world.uid.hex(), by=staff[Role.COORDINATOR]),
                   lambda: terminal_decisions.revoke_terminal(session, terminal_id=world.terminal_id, by=staff[Role.COORDINATOR]),
                   lambda: terminal_decisions.revoke_terminal(session, terminal_id=world.terminal_id, by="n'importe qui")):
        with pytest.raises(InvalidInput) as refused:
            action()
        assert refused.value.code == "not_an_active_account"
        session.rollback()
    assert terminal_registry.get_terminal(session, terminal_id=world.terminal_id).status == "active"


@sqlite_only
def test_only_an_active_administrator_manages_accounts_and_the_last_one_stays(session: Session) -> None:
    staff = _staff(session)
    for role in (Role.COORDINATOR, Role.TREASURER, Role.COMMITTEE):
        with pytest.raises(Forbidden):
            accounts.add_account(session, email="nouveau@caisse.test", password=PASSWORD, role="admin", by=staff[role])
        with pytest.raises(Forbidden):
            accounts.reset_password(session, email=staff[Role.ADMIN], by=staff[role])
        session.rollback()
    with pytest.raises(InvalidInput, match="--by"):  # an administrator exists: nobody is created anonymously
        accounts.add_account(session, email="nouveau@caisse.test", password=PASSWORD, role="admin", by=None)
    with pytest.raises(Conflict) as last:
        accounts.set_active(session, email=staff[Role.ADMIN], active=False, by=staff[Role.ADMIN])
    assert last.value.code == "last_admin"
    session.rollback()
    with pytest.raises(Conflict, match="already"):
        accounts.set_active(session, email=staff[Role.COMMITTEE], active=True, by=staff[Role.ADMIN])
    session.rollback()
    assert accounts.get_user(session, email=staff[Role.ADMIN]).active
    assert {u.email for u in directory.users_page(session).rows} == set(staff.values())


@sqlite_only
def test_a_reset_password_works_once_shown_ends_the_sessions_and_is_never_logged(session: Session) -> None:
    from tests.console.conftest import sign_in_directly
    from tests.fixtures.database import make_settings

    staff = _staff(session)
    settings = make_settings()
    token, _ = sign_in_directly(session, email=staff[Role.TREASURER], password=PASSWORD, settings=settings)
    stamp = accounts.password_stamp(accounts.get_user(session, email=staff[Role.TREASURER]))
    password = accounts.reset_password(session, email=staff[Role.TREASURER], by=staff[Role.ADMIN], os_user="root",
                                       stamp=stamp)
    session.commit()
    assert accounts.signed_in(session, token=token) is None
    with pytest.raises(accounts.SignInRefused):
        sign_in_directly(session, email=staff[Role.TREASURER], password=PASSWORD, settings=settings)
    assert sign_in_directly(session, email=staff[Role.TREASURER], password=password, settings=settings)[0]
    with pytest.raises(Conflict, match="changed"):  # the same page sent again: the first reset stands
        accounts.reset_password(session, email=staff[Role.TREASURER], by=staff[Role.ADMIN], stamp=stamp)
    session.rollback()
    [event] = audit.events(session, action_prefix="user.reset")
    assert (event.actor, event.subject) == (staff[Role.ADMIN], f"user:{staff[Role.TREASURER]}")
    assert password not in (event.detail or "") and json.loads(event.detail or "{}")["os_user"] == "root"
    accounts.change_password(session, email=staff[Role.TREASURER], current=password, new="un-nouveau-mot-de-passe")
    session.commit()
    assert all("mot-de-passe" not in (e.detail or "") for e in audit.events(session))


def test_searches_ignore_case_and_accents_and_take_percent_underscore_and_quotes_literally(session: Session) -> None:
    names = ["Élodie Müller", "Famille O'Brien", "100% Bio", "Jean_Paul", "Zoé"]
    for name in names:
        household_service.create_household(session, name=name, members=1, zone="Quartier Ça Va")
        vendor_service.create_vendor(session, name=name, kind="shop", zone="Nord")
    session.commit()

    def households(query: str) -> list[str]:
        return [row.household.name for row in directory.households_page(session, query=query).rows]

    assert households("elodie") == households("ÉLODIE") == households("müll") == ["Élodie Müller"]
    assert households("%") == ["100% Bio"] and households("_") == ["Jean_Paul"]
    assert households("o'b") == ["Famille O'Brien"] and households("'; DROP TABLE household; --") == []
    assert households("zoe") == ["Zoé"] and len(households("ca va")) == len(names)
    assert [r.vendor.name for r in directory.vendors_page(session, query="ZOE").rows] == ["Zoé"]
    assert [r.vendor.name for r in directory.vendors_page(session, query="%").rows] == ["100% Bio"]
    first, second = (directory.households_page(session, page=page, per_page=2) for page in (1, 2))
    assert (first.total, first.pages, len(first.rows), len(second.rows)) == (5, 3, 2, 2)
    assert not {r.household.id for r in first.rows} & {r.household.id for r in second.rows}
    past = directory.households_page(session, page=99, per_page=2)
    assert (past.page, len(past.rows)) == (3, 1)  # a page past the end is the last one


def test_cards_are_found_by_uid_household_name_or_number_and_filtered_by_status(session: Session) -> None:
    world, other = make_world(session), make_world(session)
    card_service.block_card(session, uid_hex=other.uid.hex())
    session.commit()
    spaced = " ".join(world.uid.hex()[i:i + 2] for i in range(0, 14, 2)).upper()
    assert [r.card.uid for r in directory.cards_page(session, query=spaced).rows] == [world.uid]
    assert [r.card.uid for r in directory.cards_page(session, query=str(other.household_id)).rows] == [other.uid]
    assert [r.card.uid for r in directory.cards_page(session, status="blocked").rows] == [other.uid]
    assert {r.card.uid for r in directory.cards_page(session, query="diallo").rows} == {world.uid, other.uid}
    terminals = directory.terminals_page(session, query="lilas", per_page=1)
    assert (terminals.total, [r.terminal.id for r in terminals.rows]) == (2, [world.terminal_id])


def test_settlement_runs_are_found_by_day_month_number_or_person_and_status(session: Session) -> None:
    from datetime import date

    from caisse.models import SettlementRun

    for day, status, by in ((date(2026, 11, 30), "exported", "claire@caisse.test"), (date(2026, 12, 1), "prepared", "yanis@caisse.test")):
        session.add(SettlementRun(run_date=day, cutoff_time=0, status=status, prepared_by=by))
    session.commit()

    def days(**filters: Any) -> list[str]:
        return [run.run_date.isoformat() for run in directory.runs_page(session, **filters).rows]

    assert days() == ["2026-12-01", "2026-11-30"]  # newest first
    assert days(query="2026-11") == days(query="2026-11-30") == days(query="CLAIRE") == ["2026-11-30"]
    assert days(status="prepared") == ["2026-12-01"] and days(query="2026-11", status="prepared") == []


@sqlite_only
def test_a_new_iban_is_approved_by_the_treasury_or_an_administrator_other_than_who_asked(session: Session) -> None:
    staff = _staff(session)
    world = make_world(session)
    change = vendor_service.request_iban_change(session, vendor_id=world.vendor_id, iban="DE89370400440532013000",
                                       by=staff[Role.TREASURER])
    session.commit()
    for who, refused in ((Role.COORDINATOR, Forbidden), (Role.COMMITTEE, Forbidden), (Role.TREASURER, Conflict)):
        with pytest.raises(refused):
            vendor_service.approve_iban_change(session, change_id=change.id or 0, by=staff[who])
        session.rollback()
    assert vendor_service.get_vendor(session, vendor_id=world.vendor_id).iban is None
    vendor_service.approve_iban_change(session, change_id=change.id or 0, by=staff[Role.ADMIN])
    assert vendor_service.get_vendor(session, vendor_id=world.vendor_id).iban == "DE89370400440532013000"
