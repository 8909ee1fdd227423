"""Offline overspend (docs/ledger.md, "Offline limits"): sync v2 tells terminals a budget per
household, per terminal and per day; ingestion holds what a terminal approved beyond the limits it
last received; households below zero are listed for the staff and recovered by the next allowance."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.fund import allowances, overdrafts
from caisse.main import create_app
from caisse.members import households as household_service
from caisse.models import Terminal, TerminalLimits
from caisse.settlement import statements
from caisse.terminals import registry as terminal_registry
from caisse.terminals.sync import CARD_ENTRY, unpack_cards, unpack_cards_v2
from caisse_common import protocol
from tests.backend.factories import Chain, World, make_world, new_key, new_uid
from tests.fixtures.database import make_settings

SHARE_BP, CAP_CENTS = 5_000, 10_000  # half the balance at sync, at most 100 EUR
DAY_S = 86_400


@pytest.fixture
def limits_settings(engine: Engine) -> Settings:
    return make_settings(str(engine.url), offline_share_bp=SHARE_BP, offline_daily_cap_cents=CAP_CENTS,
                         allowance_rule="flat", allowance_flat_cents=10_000, allowance_pro_rata=False)


@pytest.fixture
def api(engine: Engine, limits_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(limits_settings, engine=engine)) as client:
        yield client


def sync(client: TestClient, chain: Chain, *, since: int = 0, version: int | None = 2) -> dict:
    now = int(time.time())
    signature = protocol.sign_digest(chain.key, protocol.sync_digest(chain.terminal_id, now, since))
    params = {"since": since} | ({"v": version} if version is not None else {})
    answer = client.get(f"/v1/terminals/{chain.terminal_id}/sync", params=params,
                        headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()})
    assert answer.status_code == 200, answer.text
    return answer.json()


def upload(client: TestClient, chain: Chain, raws: list[bytes]) -> list[str]:
    answer = client.post(f"/v1/terminals/{chain.terminal_id}/batches",
                         json={"records": [base64.b64encode(r).decode() for r in raws]})
    assert answer.status_code == 200, answer.text
    return [r["status"] for r in answer.json()["results"]]


def terminal_of(session: Session, world: World) -> Chain:
    key = new_key()
    terminal = terminal_registry.register_terminal(session, vendor_id=world.vendor_id, public_key_hex=protocol.public_key_bytes(key).hex())
    session.commit()
    assert terminal.id is not None
    return Chain(terminal.id, key)


def holds(session: Session, chain: Chain) -> dict[int, str]:
    held = {r.seq: r.reason for r in statements.held_for_review(session) if r.terminal_id == chain.terminal_id}
    session.rollback()  # end the read: on SQLite it holds the write lock the next upload needs
    return held


def second_card(session: Session, world: World) -> bytes:
    uid = new_uid()
    card_service.issue_card(session, household_id=world.household_id, uid_hex=uid.hex())
    session.commit()
    return uid


# The attack ---------------------------------------------------------------------------------

def test_one_household_two_cards_five_offline_terminals_is_bounded_per_terminal_and_day(
    api: TestClient, session: Session
) -> None:
    """Each terminal approved 4 x 50 EUR with the household's two cards (a terminal counting per
    card, or a tampered one): only min(50 % x 100, 100) = 50 EUR per terminal is owed to its
    vendor; the rest is accepted (the food is gone) but held, and the household is flagged."""
    world = make_world(session, balance_cents=10_000)
    other = second_card(session, world)
    chains = [world.chain] + [terminal_of(session, world) for _ in range(4)]
    for chain in chains:
        sync(api, chain)
    later = int(time.time()) + 60
    for chain in chains:
        raws = [chain.pay(uid, 5_000, time=later + n) for n, uid in enumerate((world.uid, other, world.uid, other))]
        assert upload(api, chain, raws) == ["accepted"] * 4
    for chain in chains:
        held = holds(session, chain)
        assert sorted(held) == [2, 3, 4]
        assert all("plafond hors ligne" in reason for reason in held.values())
    [overdraft] = overdrafts.overdrawn_households(session)
    assert (overdraft.household_id, overdraft.balance_cents) == (world.household_id, 10_000 - 20 * 5_000)
    assert overdraft.since is not None
    owed = 5 * 5_000  # what the vendors are owed without a person deciding: 5 terminals x the daily budget
    assert owed - 10_000 <= 5 * min(10_000 * SHARE_BP // 10_000, CAP_CENTS)  # the loss bound of docs/ledger.md


def test_records_of_a_v1_terminal_are_judged_as_before_but_the_household_is_flagged(
    api: TestClient, session: Session
) -> None:
    world = make_world(session, balance_cents=10_000)
    sync(api, world.chain, version=None)  # an old terminal: no household limits were ever sent
    later = int(time.time()) + 60
    assert upload(api, world.chain, [world.chain.pay(world.uid, 5_000, time=later + n) for n in range(3)]) == ["accepted"] * 3
    assert holds(session, world.chain) == {}
    assert [o.balance_cents for o in overdrafts.overdrawn_households(session)] == [-5_000]


# The judgement at ingestion ----------------------------------------------------------------

def test_within_the_budget_is_owed_and_beyond_it_is_held_per_household_not_per_card(
    api: TestClient, session: Session
) -> None:
    world = make_world(session, balance_cents=10_000)
    other = second_card(session, world)
    sync(api, world.chain)
    later = int(time.time()) + 60
    chain = world.chain
    assert upload(api, chain, [chain.pay(world.uid, 3_000, time=later), chain.pay(other, 2_000, time=later + 1),
                               chain.pay(other, 1, time=later + 2)]) == ["accepted"] * 3
    assert list(holds(session, chain)) == [3]  # 30 + 20 = the 50 EUR budget; one cent more is held
    assert holds(session, chain)[3] == f"plafond hors ligne dépassé : foyer {world.household_id}, 50,00 € par jour sur ce terminal"


def test_a_void_gives_back_its_budget_and_the_next_day_starts_afresh(api: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=10_000)
    sync(api, world.chain)
    chain, later = world.chain, int(time.time()) + 60
    raws = [chain.pay(world.uid, 5_000, time=later), chain.void(1, time=later + 1),
            chain.pay(world.uid, 5_000, time=later + 2)]
    assert upload(api, chain, raws) == ["accepted"] * 3
    assert holds(session, chain) == {}
    # A day is the terminal's: UTC+1, as its log's day summary. The next one is a new budget.
    next_day = (later + 3_600) // DAY_S * DAY_S + DAY_S - 3_600 + 10
    with time_machine.travel(next_day + 5, tick=False):  # uploaded that day: a time ahead of reception is held
        assert upload(api, chain, [chain.pay(world.uid, 2_500, time=next_day)]) == ["accepted"]
    assert holds(session, chain) == {}


def test_the_order_of_upload_changes_which_record_is_held_not_how_much(api: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=10_000)
    sync(api, world.chain)
    chain, later = world.chain, int(time.time()) + 60
    raws = [chain.pay(world.uid, 2_000, time=later + n) for n in range(4)]
    for raw in reversed(raws):  # a tampered terminal uploads backwards, one record at a time
        assert upload(api, chain, [raw]) == ["accepted"]
    held = holds(session, chain)
    owed = sum(r.amount_cents for r in chain.records if r.seq not in held)
    assert len(held) == 2 and owed <= 5_000


def test_a_lower_balance_in_an_answer_the_terminal_may_have_lost_does_not_hold_its_payments(
    api: TestClient, session: Session
) -> None:
    """The terminal proves which cards version it holds only at its next sync: until then the
    backend judges with the most generous balance it may hold, so an honest vendor is not held."""
    world = make_world(session, balance_cents=10_000)
    elsewhere = terminal_of(session, world)
    held = sync(api, world.chain)["cards_version"]  # balance 100 EUR: a budget of 50
    sync(api, elsewhere)
    now = int(time.time())
    assert upload(api, elsewhere, [elsewhere.pay(world.uid, 4_500, time=now)]) == ["accepted"]
    sync(api, world.chain, since=held)  # balance 55 EUR, a budget of 27,50: this answer is lost on the way
    assert upload(api, world.chain, [world.chain.pay(world.uid, 4_000, time=now + 60)]) == ["accepted"]
    assert holds(session, world.chain) == {}


def test_the_limits_a_terminal_received_are_logged_once_per_change(
    engine: Engine, session: Session, limits_settings: Settings
) -> None:
    world = make_world(session, balance_cents=10_000)
    with TestClient(create_app(limits_settings, engine=engine)) as client:
        first = sync(client, world.chain)["limits"]
        sync(client, world.chain)
    tighter = limits_settings.model_copy(update={"offline_daily_cap_cents": 2_000})
    with TestClient(create_app(tighter, engine=engine)) as client:
        second = sync(client, world.chain)["limits"]
        later = int(time.time()) + 60
        # Within the old limits (the answer with the new ones may be lost): owed, not held.
        assert upload(client, world.chain, [world.chain.pay(world.uid, 4_000, time=later)]) == ["accepted"]
        assert holds(session, world.chain) == {}
    assert first["limits_version"] != second["limits_version"]
    logged = session.execute(select(TerminalLimits.limits_version, TerminalLimits.offline_daily_cap_cents)
                             .where(TerminalLimits.terminal_id == world.terminal_id)  # type: ignore[arg-type]
                             .order_by(TerminalLimits.id)).all()  # type: ignore[arg-type]
    assert [tuple(row) for row in logged] == [(first["limits_version"], CAP_CENTS), (second["limits_version"], 2_000)]
    held_version = session.execute(select(Terminal.limits_version).where(Terminal.id == world.terminal_id)).scalar_one()  # type: ignore[arg-type]
    assert held_version == second["limits_version"]


# Sync v2 --------------------------------------------------------------------------------------

def test_sync_v2_entries_carry_the_household_and_its_limits_the_budget(api: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=12_345)
    other = second_card(session, world)
    body = sync(api, world.chain)
    assert body["v"] == 2
    packed = base64.b64decode(body["cards"])
    assert len(packed) == 2 * 36
    assert {(e.uid, e.balance_cents, e.household_id) for e in unpack_cards_v2(packed)} == {
        (world.uid, 12_345, world.household_id), (other, 12_345, world.household_id)}
    limits = body["limits"]
    assert (limits["offline_share_bp"], limits["offline_daily_cap_cents"]) == (SHARE_BP, CAP_CENTS)
    assert 0 < limits["limits_version"] < 2**32


def test_a_v1_sync_is_served_as_before(api: TestClient, session: Session) -> None:
    world = make_world(session, balance_cents=12_345)
    body = sync(api, world.chain, version=None)
    assert "v" not in body
    assert len(base64.b64decode(body["cards"])) == CARD_ENTRY.size == 32
    assert [e.balance_cents for e in unpack_cards(base64.b64decode(body["cards"]))] == [12_345]
    assert set(body["limits"]) == {"max_payment_cents", "pin_threshold_cents", "offline_max_age_s", "void_window_s",
                                   "basic_card_max_payment_cents", "code_max_tries"}
    again = sync(api, world.chain, version=1)  # v=1 asks for what no v asks for
    assert again | {"server_time": 0} == body | {"server_time": 0}


def test_an_unknown_sync_version_is_refused(api: TestClient, session: Session) -> None:
    world = make_world(session)
    now = int(time.time())
    signature = protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, now, 0))
    answer = api.get(f"/v1/terminals/{world.terminal_id}/sync", params={"since": 0, "v": 4},
                     headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()})
    assert answer.status_code == 422


# Households below zero --------------------------------------------------------------------------

def test_the_next_allowance_covers_an_overdraft_first(api: TestClient, session: Session, limits_settings: Settings) -> None:
    deep = make_world(session, balance_cents=1_000)
    shallow = make_world(session, balance_cents=1_000)
    later = int(time.time()) + 60
    assert upload(api, deep.chain, [deep.chain.pay(deep.uid, 4_000, time=later + n) for n in range(3)]) == ["accepted"] * 3
    assert upload(api, shallow.chain, [shallow.chain.pay(shallow.uid, 4_000, time=later)]) == ["accepted"]
    listed = overdrafts.overdrawn_households(session)
    assert [(o.household_id, o.balance_cents) for o in listed] == [(deep.household_id, -11_000),
                                                                   (shallow.household_id, -3_000)]
    since = {o.household_id: o.since for o in listed}
    month = time.strftime("%Y-%m", time.gmtime(later + 40 * DAY_S))
    report = allowances.allocate(session, month=month, settings=limits_settings)
    session.commit()
    assert report.expired_cents == 0  # nothing "unspent" is taken from a household in debt
    after = overdrafts.overdrawn_households(session)
    assert [(o.household_id, o.balance_cents, o.since) for o in after] == [(deep.household_id, -1_000, since[deep.household_id])]
    assert household_service.household_balance_cents(session, household_id=shallow.household_id) == 7_000
