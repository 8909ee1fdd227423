"""Vendor accreditation (caisse.vendors.accreditation): what it records, who may change it, and that a
vendor whose accreditation is not active takes no new payments, whatever its terminal says."""

from __future__ import annotations

import base64
import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from caisse import audit
from caisse.db import session_factory, upgrade
from caisse.errors import CaisseError
from caisse.models import AccreditationState, ConventionStatus
from caisse.settlement import statements
from caisse.staff import accounts
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.backend.factories import Chain, World, make_world

STAFF = "coordination@caisse.test"
# Pure rules: SQLite only. On PostgreSQL too: the suspension test (history read by ingestion, sync
# v3, the service's writes) and the warning test (its date query).
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
END = date(2026, 1, 10)  # the accreditation's last day
ENDS_AT = int(datetime(2026, 1, 10, 23, 0, tzinfo=UTC).timestamp())  # midnight in Paris (UTC+1 in January)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The staff account's password is never checked here: its hash need not be costly."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)))


def at(*moment: int) -> int:
    return int(datetime(*moment, tzinfo=UTC).timestamp())  # type: ignore[misc]


def staff(session: Session) -> str:
    accounts.create_user(session, email=STAFF, password="un mot de passe assez long", role="coordinator")
    session.commit()
    return STAFF


def criterion(session: Session, label: str = "Produits locaux") -> int:
    made = accreditation.add_criterion(session, label=label, by=STAFF)
    session.commit()
    assert made.id is not None
    return made.id


def wanted(session: Session, vendor_id: int, **changes: object) -> accreditation.Accreditation:
    """The vendor's accreditation as it is, with `changes` (what a person types)."""
    fields = {f: getattr(accreditation.current(session, vendor_id=vendor_id), f) for f in accreditation.Accreditation.__slots__}
    return accreditation.Accreditation(**(fields | changes))  # type: ignore[arg-type]


def accredit(session: Session, world: World, **changes: object) -> None:
    """Active, visited, trained, every criterion met, then `changes`."""
    ticked = frozenset(c.id for c in accreditation.criteria(session) if c.id is not None)
    accreditation.update(session, vendor_id=world.vendor_id, by=STAFF, wanted=wanted(
        session, world.vendor_id, **({"status": "active", "visited_on": date(2025, 12, 1), "visited_by": "Awa",
                                       "trained_on": date(2025, 12, 2), "criteria": ticked} | changes)))
    session.commit()


def upload(client: TestClient, chain: Chain, raws: list[bytes]) -> list[str]:
    answer = client.post(f"/v1/terminals/{chain.terminal_id}/batches",
                         json={"records": [base64.b64encode(r).decode() for r in raws]})
    assert answer.status_code == 200, answer.text
    return [r["status"] for r in answer.json()["results"]]


def sync_bytes(client: TestClient, chain: Chain, version: int | None) -> bytes:
    now = int(time.time())
    signature = protocol.sign_digest(chain.key, protocol.sync_digest(chain.terminal_id, now, 0))
    answer = client.get(f"/v1/terminals/{chain.terminal_id}/sync", params={"since": 0} | ({"v": version} if version else {}),
                        headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()})
    assert answer.status_code == 200, answer.text
    return answer.content


def holds(session: Session, world: World) -> dict[int, str]:
    held = {r.seq: r.reason or "" for r in statements.held_for_review(session, vendor_id=world.vendor_id)}
    session.rollback()
    return held


# Enforcement at upload ------------------------------------------------------------------------

@SQLITE_ONLY
def test_a_terminal_lying_about_its_clock_after_the_end_is_judged_on_reception(client: TestClient, session: Session) -> None:
    with time_machine.travel(at(2026, 1, 1), tick=False):
        world = make_world(session)
        staff(session)
        accredit(session, world, ends_on=END)
    chain = world.chain
    with time_machine.travel(at(2026, 2, 1), tick=False):  # three weeks after the end
        statuses = upload(client, chain, [
            chain.pay(world.uid, 500, time=at(2026, 1, 9, 17)),  # trusted, before the end, uploaded late: owed
            chain.pay(world.uid, 800, time=at(2026, 1, 10, 22, 59)),  # 23:59 in Paris on its last day
            chain.pay(world.uid, 600, time=at(2026, 1, 9, 18), flags=protocol.FLAG_UNTRUSTED_TIME),  # an unset clock
            chain.pay(world.uid, 700, time=at(2026, 1, 12)),  # trusted and after the end
        ])
    assert statuses == ["accepted"] * 4  # never rejected: the vendor may have handed food over
    held = holds(session, world)
    assert set(held) == {3, 4}
    assert all("après la fin du conventionnement (le 10/01/2026)" in reason for reason in held.values())
    assert vendor_service.vendor_payable_cents(session, vendor_id=world.vendor_id) == 500 + 800  # the held ones wait for a person


def test_a_suspended_then_reactivated_vendor_is_paid_outside_the_suspension_only(client: TestClient, session: Session) -> None:
    with time_machine.travel(at(2026, 1, 1), tick=False):
        world = make_world(session)
        staff(session)
        criterion(session)
        accredit(session, world)
    with time_machine.travel(at(2026, 1, 5, 12), tick=False):
        accredit(session, world, status="suspended")
        suspended = sync_bytes(client, world.chain, 3)
    with time_machine.travel(at(2026, 1, 8, 12), tick=False):
        accredit(session, world)  # back: its criteria, visit and training are still recorded
        reactivated = sync_bytes(client, world.chain, 3)
    assert b'"accreditation":{"active":false,"ends_at":null}' in suspended
    assert b'"accreditation":{"active":true,"ends_at":null}' in reactivated
    chain = world.chain
    with time_machine.travel(at(2026, 1, 20), tick=False):
        statuses = upload(client, chain, [chain.pay(world.uid, 100, time=at(2026, 1, 5, 11)),
                                          chain.pay(world.uid, 200, time=at(2026, 1, 6)),
                                          chain.pay(world.uid, 300, time=at(2026, 1, 8, 13))])
    assert statuses == ["accepted"] * 3
    assert holds(session, world) == {2: "commerce non conventionné au moment du paiement (statut : suspendu)"}
    assert [s.status for s in accreditation.states(session, vendor_id=world.vendor_id)] == [
        "active", "suspended", "active"]


@SQLITE_ONLY
def test_a_void_is_not_held_for_the_accreditation(client: TestClient, session: Session) -> None:
    with time_machine.travel(at(2026, 1, 1), tick=False):
        world = make_world(session)
        staff(session)
        accredit(session, world, ends_on=END)
    chain = world.chain
    with time_machine.travel(at(2026, 1, 11), tick=False):
        assert upload(client, chain, [chain.pay(world.uid, 100, time=at(2026, 1, 10, 22, 58)),
                                      chain.void(1, time=at(2026, 1, 10, 23, 1))]) == ["accepted", "accepted"]
    assert holds(session, world) == {}


# Sync v3 --------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_v1_and_v2_answers_are_the_same_bytes_whatever_the_accreditation(client: TestClient, session: Session) -> None:
    with time_machine.travel(at(2026, 1, 5), tick=False):
        world = make_world(session)
        staff(session)
        before = {v: sync_bytes(client, world.chain, v) for v in (None, 2, 3)}
        accredit(session, world, status="ended", ends_on=date(2026, 1, 4))
        after = {v: sync_bytes(client, world.chain, v) for v in (None, 2, 3)}
    assert after[None] == before[None] and after[2] == before[2]
    assert b"accreditation" not in after[None] + after[2]
    assert b'"accreditation":{"active":true,"ends_at":null}' in before[3]
    assert after[3].endswith(b',"accreditation":{"active":false,"ends_at":%d}}' % at(2026, 1, 4, 23))
    assert after[3].replace(b'"v":3', b'"v":2').split(b',"accreditation"')[0] == after[2][:-1]


@pytest.mark.parametrize(("today", "active"), [(date(2026, 1, 10), True), (date(2026, 1, 11), False),
                                               (date(2025, 12, 31), False)])
@SQLITE_ONLY
def test_v3_tells_whether_today_is_within_start_and_end_in_paris(client: TestClient, session: Session, today: date,
                                                                 active: bool) -> None:
    with time_machine.travel(at(2025, 12, 30), tick=False):
        world = make_world(session)
        staff(session)
        accredit(session, world, starts_on=date(2026, 1, 1), ends_on=END)
    # 23:30 UTC is already the next day in Paris.
    with time_machine.travel(datetime(today.year, today.month, today.day, 22, 30, tzinfo=UTC), tick=False):
        answer = sync_bytes(client, world.chain, 3)
    assert b'"accreditation":{"active":%s,"ends_at":%d}' % (b"true" if active else b"false", ENDS_AT) in answer


# The service ----------------------------------------------------------------------------------

@SQLITE_ONLY
def test_activation_needs_every_criterion_the_visit_and_the_training(session: Session) -> None:
    world = make_world(session)
    staff(session)
    local, organic = criterion(session), criterion(session, "Agriculture biologique ou paysanne")
    accredit(session, world, status="pending", visited_on=None, visited_by=None, trained_on=None, criteria=frozenset())
    for changes in ({"criteria": frozenset({local})},
                    {"criteria": frozenset({local, organic}), "trained_on": None},
                    {"criteria": frozenset({local, organic}), "visited_by": None}):
        with pytest.raises(CaisseError) as refused:
            accredit(session, world, **changes)
        session.rollback()
        assert refused.value.code in ("accreditation_incomplete", "invalid_visit")
    assert accreditation.current(session, vendor_id=world.vendor_id).status == "pending"
    accreditation.retire_criterion(session, criterion_id=organic, by=STAFF)
    accredit(session, world, criteria=frozenset({local}))  # a retired criterion is no longer asked for
    assert accreditation.current(session, vendor_id=world.vendor_id).status == "active"


@SQLITE_ONLY
def test_preview_names_each_change_and_a_second_identical_update_changes_nothing(session: Session) -> None:
    world = make_world(session)
    staff(session)
    local = criterion(session)
    target = wanted(session, world.vendor_id, ends_on=END, visited_on=date(2025, 12, 1), visited_by="Awa",
                    trained_on=date(2025, 12, 2), criteria=frozenset({local}))
    changes = accreditation.preview(session, vendor_id=world.vendor_id, wanted=target)
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("Fin", "—", "10/01/2026"), ("Visite le", "—", "01/12/2025"), ("Visite par", "—", "Awa"),
        ("Formation le", "—", "02/12/2025"), ("Critère « Produits locaux »", "non", "oui")]
    accreditation.update(session, vendor_id=world.vendor_id, wanted=target, by=STAFF, os_user="awa")
    session.commit()
    with pytest.raises(CaisseError) as twice:
        accreditation.update(session, vendor_id=world.vendor_id, wanted=target, by=STAFF)
    assert twice.value.code == "accreditation_unchanged"
    session.rollback()
    [event] = [e for e in audit.events(session, subjects=[f"vendor:{world.vendor_id}"]) if e.action == "vendor.accreditation"]
    assert event.actor == STAFF and "awa" in (event.detail or "") and "10/01/2026" in (event.detail or "")
    rows = session.execute(select(AccreditationState.ends_on).where(AccreditationState.vendor_id == world.vendor_id)).scalars().all()  # type: ignore[arg-type]
    assert rows == [None, END]


@SQLITE_ONLY
def test_a_disabled_or_unknown_account_changes_nothing(session: Session) -> None:
    world = make_world(session)
    staff(session)
    accounts.create_user(session, email="admin@caisse.test", password="un mot de passe assez long", role="admin")
    accounts.set_active(session, email=STAFF, active=False, by="admin@caisse.test")
    session.commit()
    for who in ("personne@caisse.test", STAFF):
        with pytest.raises(CaisseError) as refused:
            accreditation.update(session, vendor_id=world.vendor_id, by=who,
                                 wanted=wanted(session, world.vendor_id, status="suspended"))
        assert refused.value.code == "not_an_active_account"
        session.rollback()
    assert accreditation.current(session, vendor_id=world.vendor_id).status == "active"


def test_the_warning_starts_thirty_days_before_the_end(session: Session) -> None:
    world = make_world(session)
    staff(session)
    accredit(session, world, ends_on=END)
    assert [e.days_left for e in accreditation.ending_soon(session, today=date(2025, 12, 11))] == [30]
    assert accreditation.ending_soon(session, today=date(2025, 12, 10)) == []
    assert accreditation.ending_soon(session, today=date(2026, 1, 11)) == []  # ended: the vendor page says so
    vendor = accreditation._vendor(session, vendor_id=world.vendor_id)
    assert accreditation.warning(vendor, today=date(2025, 12, 10)) is None
    assert "dans 30 jours" in (accreditation.warning(vendor, today=date(2025, 12, 11)) or "")
    assert "aujourd'hui" in (accreditation.warning(vendor, today=END) or "")
    assert "échu" in (accreditation.warning(vendor, today=date(2026, 1, 11)) or "")
    assert ConventionStatus.ACTIVE == vendor.convention_status


@SQLITE_ONLY
def test_migration_0023_gives_each_vendor_its_present_state_from_its_creation(engine: Engine) -> None:
    from tests.backend.migrations.test_migrations import _downgrade

    _downgrade(engine, "0022")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO vendor (name, kind, zone, convention_status, convention_end, created_at)"
                                " VALUES ('Ferme', 'producer', 'Nord', 'suspended', '2026-03-01', '2026-01-02 08:00:00')"))
    upgrade(engine)
    with session_factory(engine)() as session:
        [state] = accreditation.states(session, vendor_id=1)
    assert state == accreditation.State("suspended", None, date(2026, 3, 1), at(2026, 1, 2, 8))


def test_a_moment_is_judged_on_the_state_begun_before_it_in_paris_dates() -> None:
    paris = ZoneInfo("Europe/Paris")
    history = [accreditation.State("pending", None, None, at(2026, 1, 1)),
               accreditation.State("active", date(2026, 1, 5), date(2026, 1, 31), at(2026, 1, 3))]
    judged = {moment: accreditation.unaccredited_reason(history, moment, paris) for moment in (
        at(2025, 12, 1), at(2026, 1, 2), at(2026, 1, 4, 22, 59), at(2026, 1, 4, 23), at(2026, 1, 31, 22, 59),
        at(2026, 1, 31, 23))}
    assert list(judged.values()) == [
        "commerce non conventionné au moment du paiement (statut : en attente)",  # before any state: the first
        "commerce non conventionné au moment du paiement (statut : en attente)",
        "paiement avant le début du conventionnement (le 05/01/2026)",  # 23:59 on the 4th in Paris
        None, None,
        "paiement après la fin du conventionnement (le 31/01/2026)",  # midnight in Paris
    ]
    assert accreditation.unaccredited_reason([], at(2026, 1, 1), paris) is None
