"""Members joining and leaving in Paris months, their balance going back to the fund only when no
terminal can still pay with their card, and the erasure of former members' personal data."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from caisse import audit
from caisse.cards import service as card_service
from caisse.config import LeavingBalance
from caisse.errors import Conflict, InvalidInput
from caisse.fund import allowances
from caisse.ingest import upload as ingest
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.members import service as members
from caisse.members import sortition
from caisse.models import Household, LedgerTransfer, RecordStatus, SortitionDraw, utcnow
from caisse.months import Month
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import World, make_world, staff_account
from tests.fixtures.database import make_settings

# Page and command logic, and paths with no SQL of their own: SQLite only; the SQL paths run on both.
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
STAFF = "coordination@caisse.test"
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def staff(session: Session) -> str:
    staff_account(session, STAFF)
    session.commit()
    return STAFF


def _joined(session: Session, moment: datetime) -> int:
    household = household_service.create_household(session, name="Famille Martin", members=2, zone="Nord")
    assert household.id is not None
    session.execute(update(Household).where(Household.id == household.id).values(created_at=moment))  # type: ignore[arg-type]
    session.commit()
    return household.id


def _credited_months(session: Session, household_id: int) -> list[str]:
    references = session.execute(select(LedgerTransfer.reference).where(
        LedgerTransfer.reference.like(f"allowance:{household_id}:%"))).scalars()  # type: ignore[attr-defined]
    return sorted(reference.rsplit(":", 1)[1] for reference in references)


@pytest.mark.parametrize(("joined", "first_month"), [
    (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), "2026-04"),  # 00:30 on 1 April in Paris (summer time since 29 March)
    (datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "2026-03"),  # 23:59 on 31 March in Paris
    (datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "2026-11"),  # 00:30 on 1 November (winter time since 25 October)
    (datetime(2026, 10, 31, 22, 59, tzinfo=UTC), "2026-10"),
])
@SQLITE_ONLY
def test_the_joining_month_is_the_paris_month_across_daylight_saving_changes(session: Session, joined: datetime, first_month: str) -> None:
    household_id = _joined(session, joined)
    settings = make_settings()
    for month in ("2026-03", "2026-04", "2026-10", "2026-11"):
        allowances.allocate(session, month=month, settings=settings)
    session.commit()
    assert _credited_months(session, household_id)[0] == first_month
    assert Month.of(joined, PARIS) == Month.parse(first_month)


def _world_leaving(session: Session, staff: str, *, blocked_at: datetime) -> World:
    world = make_world(session, balance_cents=10_000)
    session.execute(update(Household).where(Household.id == world.household_id)  # type: ignore[arg-type]
                    .values(created_at=blocked_at - timedelta(days=40)))
    members.leave_household(session, household_id=world.household_id, end_date=members.today_in_paris(blocked_at), by=staff,
                            now=blocked_at)
    session.commit()
    return world


@SQLITE_ONLY
def test_leaving_mid_month_keeps_that_months_allowance_and_stops_the_next(session: Session, staff: str) -> None:
    household_id = _joined(session, datetime(2026, 1, 10, tzinfo=UTC))
    members.leave_household(session, household_id=household_id, end_date=date(2026, 4, 15), by=staff,
                            now=datetime(2026, 4, 15, 9, 0, tzinfo=UTC))
    settings = make_settings()
    for month in ("2026-03", "2026-04", "2026-05", "2026-06"):
        allowances.allocate(session, month=month, settings=settings)
    session.commit()
    assert _credited_months(session, household_id) == ["2026-03", "2026-04"]
    with pytest.raises(Conflict):  # a second click does not move the date
        members.leave_household(session, household_id=household_id, end_date=date(2026, 5, 1), by=staff)
    assert_ledger_invariants(session)


@SQLITE_ONLY
def test_leaving_blocks_the_cards_through_the_sync_and_refuses_a_new_card(session: Session, staff: str) -> None:
    world = _world_leaving(session, staff, blocked_at=utcnow())
    card = card_service.get_card(session, uid_hex=world.uid.hex())
    assert (card.status, card.block_reason) == ("blocked", "left") and card.blocked_version is not None
    with pytest.raises(Conflict):
        card_service.issue_card(session, household_id=world.household_id, uid_hex="04aabbccddeeff")
    [event] = audit.events(session, action_prefix="household.leave")
    assert event.actor == STAFF and json.loads(event.detail or "{}")["cards_blocked"] is True


@SQLITE_ONLY
def test_a_future_end_date_blocks_the_cards_only_when_it_comes(session: Session, staff: str) -> None:
    world = make_world(session)
    now = utcnow()
    end = members.today_in_paris(now) + timedelta(days=20)
    members.leave_household(session, household_id=world.household_id, end_date=end, by=staff, now=now)
    assert card_service.get_card(session, uid_hex=world.uid.hex()).status == "active"
    assert members.apply_departures(session, settings=make_settings(), now=now + timedelta(days=1)).cards_blocked == []
    just_before = datetime.combine(end, time(0, 0), tzinfo=PARIS) - timedelta(minutes=1)
    assert members.apply_departures(session, settings=make_settings(), now=just_before).cards_blocked == []
    report = members.apply_departures(session, settings=make_settings(), now=just_before + timedelta(minutes=2))
    assert report.cards_blocked == [world.household_id]
    session.expire_all()
    assert card_service.get_card(session, uid_hex=world.uid.hex()).status == "blocked"


@pytest.mark.parametrize(("end", "eve", "day"), [
    (date(2026, 3, 29), datetime(2026, 3, 28, 22, 59, tzinfo=UTC), datetime(2026, 3, 28, 23, 0, tzinfo=UTC)),  # still UTC+1 at midnight
    (date(2026, 10, 25), datetime(2026, 10, 24, 21, 59, tzinfo=UTC), datetime(2026, 10, 24, 22, 0, tzinfo=UTC)),  # UTC+2 at midnight
])
@SQLITE_ONLY
def test_the_cards_are_blocked_at_paris_midnight_of_the_end_date_on_the_days_the_clocks_change(
    session: Session, staff: str, end: date, eve: datetime, day: datetime,
) -> None:
    household_id = _joined(session, datetime(2026, 1, 5, tzinfo=UTC))
    uid = "04a1b2c3d4e5f6"
    card_service.issue_card(session, household_id=household_id, uid_hex=uid)
    members.leave_household(session, household_id=household_id, end_date=end, by=staff, now=eve - timedelta(days=3))
    assert members.apply_departures(session, settings=make_settings(), now=eve).cards_blocked == []
    assert members.apply_departures(session, settings=make_settings(), now=day).cards_blocked == [household_id]
    session.expire_all()
    card = card_service.get_card(session, uid_hex=uid)
    assert card.status == "blocked" and card.block_reason == "left"


@SQLITE_ONLY
def test_the_keep_policy_leaves_the_balance_on_the_account(session: Session, staff: str) -> None:
    world = _world_leaving(session, staff, blocked_at=utcnow() - timedelta(days=10))
    report = members.apply_departures(session, settings=make_settings(leaving_balance=LeavingBalance.KEEP))
    session.commit()
    assert report.returned_cents == 0 and _balance(session, world.household_id) == 10_000


def _balance(session: Session, household_id: int) -> int:
    session.expire_all()
    return household_service.household_balance_cents(session, household_id=household_id)


def _fund(session: Session) -> int:
    return ledger.balance_cents(session, code=ledger.Account.ALLOWANCE_FUND)


def test_the_balance_goes_back_to_the_fund_only_after_the_offline_age_limit_and_once(session: Session, staff: str) -> None:
    settings = make_settings(offline_max_age_s=3 * 86_400, sync_clock_window_s=300)
    blocked_at = utcnow() - timedelta(days=1)
    world = _world_leaving(session, staff, blocked_at=blocked_at)
    fund_before = _fund(session)
    early = members.apply_departures(session, settings=settings, now=blocked_at + timedelta(days=3))
    assert early.returned_cents == 0 and early.waiting[0][0] == world.household_id
    assert _balance(session, world.household_id) == 10_000
    due = blocked_at + timedelta(days=3, seconds=300)
    assert members.apply_departures(session, settings=settings, now=due).returned_cents == 10_000
    assert members.apply_departures(session, settings=settings, now=due + timedelta(days=1)).returned_cents == 0
    session.commit()
    assert _balance(session, world.household_id) == 0 and _fund(session) == fund_before + 10_000
    assert ledger.find_transfer(session, reference=f"leave:{world.household_id}") is not None
    assert_ledger_invariants(session)


def _upload(session: Session, world: World, record: bytes) -> str:
    result = ingest.ingest_batch(session, terminal_id=world.terminal_id, raw_records=[record], settings=make_settings())
    session.commit()
    return result.results[0].status


@SQLITE_ONLY
def test_a_record_signed_before_leaving_and_uploaded_after_settles_against_the_balance(session: Session, staff: str) -> None:
    settings = make_settings()
    blocked_at = utcnow() - timedelta(days=10)  # the wait is over
    world = _world_leaving(session, staff, blocked_at=blocked_at)
    signed = world.chain.pay(world.uid, 3_000, time=int((blocked_at - timedelta(hours=2)).timestamp()))
    assert _upload(session, world, signed) == RecordStatus.ACCEPTED
    members.apply_departures(session, settings=settings)
    session.commit()
    assert _balance(session, world.household_id) == 0
    assert ledger.balance_cents(session, code=ledger.vendor_payable_code(world.vendor_id)) == 3_000
    assert_ledger_invariants(session)


def test_a_record_uploaded_after_the_balance_went_back_is_covered_by_what_was_returned(session: Session, staff: str) -> None:
    settings = make_settings()
    blocked_at = utcnow() - timedelta(days=10)
    neighbour = _world_leaving(session, staff, blocked_at=blocked_at)  # household 1: leave:11 is not one of its own
    for _ in range(9):
        _world_leaving(session, staff, blocked_at=blocked_at)
    world = _world_leaving(session, staff, blocked_at=blocked_at)
    assert (neighbour.household_id, world.household_id) == (1, 11)
    members.apply_departures(session, settings=settings)
    session.commit()
    fund_after_return = _fund(session)
    signed = world.chain.pay(world.uid, 4_000, time=int((blocked_at - timedelta(hours=1)).timestamp()))
    assert _upload(session, world, signed) == RecordStatus.ACCEPTED
    assert _balance(session, world.household_id) == -4_000  # until the next step
    report = members.apply_departures(session, settings=settings)
    session.commit()
    assert report.covered_cents == 4_000 and _balance(session, world.household_id) == 0
    assert _fund(session) == fund_after_return - 4_000
    for minutes in (30, 20, 10):  # 150 € signed before leaving, 100 € given back: 50 € stay owed
        late = neighbour.chain.pay(neighbour.uid, 5_000, time=int((blocked_at - timedelta(minutes=minutes)).timestamp()))
        assert _upload(session, neighbour, late) == RecordStatus.ACCEPTED
    members.apply_departures(session, settings=settings)
    session.commit()
    assert _balance(session, neighbour.household_id) == -5_000 and _balance(session, world.household_id) == 0
    assert ledger.find_transfer(session, reference=f"leave:{world.household_id}:2") is not None
    assert_ledger_invariants(session)


def test_erasure_after_the_retention_period_leaves_amounts_and_the_ledger_intact(session: Session, staff: str) -> None:
    staff_account(session, "admin@caisse.test")
    draw = sortition.create_draw(session, title="Entrée", quotas={**dict.fromkeys(sortition.STRATA, 0), (1, 1): 1},
                                 closing_date=date(2026, 1, 31), by=STAFF)
    assert draw.id is not None
    sortition.register_volunteer(session, draw_id=draw.id, name="Awa Diop", contact="awa@exemple.fr", income_quartile=1,
                                 birth_date=date(2000, 5, 1), household_size=3, shops="marché des Aubes", by=STAFF)
    sortition.register_volunteer(session, draw_id=draw.id, name="Bruno Petit", contact="06 11 22 33 44", income_quartile=1,
                                 birth_date=date(2001, 5, 1), household_size=1, by=STAFF)
    sortition.publish_seed(session, draw_id=draw.id, phrase="graine", by=STAFF)
    sortition.run_draw(session, draw_id=draw.id, by=STAFF)
    [volunteer] = [v for v in sortition.volunteers_of(session, draw_id=draw.id) if v.selected]
    [waiting] = [v for v in sortition.volunteers_of(session, draw_id=draw.id) if not v.selected]
    personal = [volunteer.name, volunteer.contact or "", waiting.name, waiting.contact or ""]
    assert volunteer.id is not None
    household_id = sortition.accept_invitation(session, volunteer_id=volunteer.id, zone="Aubes", by=STAFF)
    joined = utcnow() - timedelta(days=90)
    session.execute(update(Household).where(Household.id == household_id).values(created_at=joined))  # type: ignore[arg-type]
    audit.record(session, actor=STAFF, action="household.edit", subject=f"household:{household_id}",
                 detail={"name": {"before": volunteer.name, "after": volunteer.name}})
    household_service.credit_household(session, household_id=household_id, amount_cents=5_000)
    left = joined + timedelta(days=30)
    # The draw was made on the day the household left: its other volunteers are erased with it.
    session.execute(update(SortitionDraw).where(SortitionDraw.id == draw.id).values(created_at=left))  # type: ignore[arg-type]
    members.leave_household(session, household_id=household_id, end_date=members.today_in_paris(left), by=STAFF, now=left)
    members.apply_departures(session, settings=make_settings(), now=left + timedelta(days=10))
    session.commit()
    exported = members.personal_data(session, volunteer_id=volunteer.id, by=STAFF)
    assert volunteer.name in members.personal_data_json(exported) and str(volunteer.contact) in members.personal_data_csv(exported)
    journal_before = session.execute(select(LedgerTransfer.reference, LedgerTransfer.amount_cents)).all()

    settings = make_settings(retention_months=24)
    end = members.today_in_paris(left)
    two_years_on = datetime(end.year + 2, end.month, 1, 12, tzinfo=UTC)  # the end date's month, 24 months later
    assert members.erase_former_members(session, settings=settings, now=two_years_on).households == []
    report = members.erase_former_members(session, settings=settings, by="admin@caisse.test", now=two_years_on + timedelta(days=31))
    session.commit()
    assert report.households == [household_id] and sorted(report.volunteers) == sorted([volunteer.id, waiting.id])
    household = session.get(Household, household_id)
    assert household is not None and household.name == f"Foyer #{household_id}"
    session.refresh(volunteer)
    session.refresh(waiting)
    assert (volunteer.name, volunteer.contact, volunteer.birth_date, volunteer.shops) == \
        (f"Volontaire {draw.id}-{volunteer.number}", None, None, None)
    assert (waiting.name, waiting.contact) == (f"Volontaire {draw.id}-{waiting.number}", None)
    texts = " ".join(e.detail or "" for e in audit.events(session, limit=1_000))
    assert not [text for text in personal if text in texts]
    named_export = sortition.export_csv(session, draw_id=draw.id, with_names=True)
    assert not [text for text in personal if text in named_export]
    assert session.execute(select(LedgerTransfer.reference, LedgerTransfer.amount_cents)).all() == journal_before
    assert sortition.verify_draw(session, draw_id=draw.id)
    assert audit.events(session, action_prefix="personal_data.erase")[0].actor == "admin@caisse.test"
    assert_ledger_invariants(session)


@SQLITE_ONLY
def test_a_leaving_date_before_joining_or_by_an_unknown_account_is_refused(session: Session, staff: str) -> None:
    household_id = _joined(session, datetime(2026, 5, 3, tzinfo=UTC))
    with pytest.raises(InvalidInput):
        members.leave_household(session, household_id=household_id, end_date=date(2026, 4, 30), by=staff)
    with pytest.raises(InvalidInput):
        members.leave_household(session, household_id=household_id, end_date=date(2026, 5, 30), by="inconnu@caisse.test")
    session.expire_all()
    assert session.get(Household, household_id).left_on is None  # type: ignore[union-attr]


@SQLITE_ONLY
def test_the_member_commands_leave_apply_export_and_erase_in_french(engine, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from caisse.cli.main import app
    from caisse.db import session_factory

    monkeypatch.setenv("CAISSE_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "test-admin-token")
    with session_factory(engine)() as session:
        staff_account(session, STAFF)
        household_id = _joined(session, datetime(2026, 1, 5, tzinfo=UTC))
    runner = CliRunner()
    help_text = runner.invoke(app, ["membre", "--help"]).output
    assert "Foyers membres" in help_text and "appliquer-departs" in help_text
    left = runner.invoke(app, ["membre", "partir", str(household_id), "--date", "2026-02-10", "--by", STAFF])
    assert left.exit_code == 0 and "Départ du foyer" in left.stderr
    again = runner.invoke(app, ["membre", "partir", str(household_id), "--date", "2026-02-10", "--by", STAFF])
    assert again.exit_code == 1 and "Traceback" not in again.output
    assert runner.invoke(app, ["membre", "appliquer-departs"]).exit_code == 0
    exported = runner.invoke(app, ["membre", "donnees", "--foyer", str(household_id), "--format", "csv", "--by", STAFF])
    assert exported.exit_code == 0 and "Famille Martin" in exported.stdout
    erased = runner.invoke(app, ["membre", "effacer-anciens"], env={"CAISSE_RETENTION_MONTHS": "1"})
    assert erased.exit_code == 0 and "1 foyer(s)" in erased.stderr
    with session_factory(engine)() as session:
        assert session.get(Household, household_id).name == f"Foyer #{household_id}"  # type: ignore[union-attr]


def test_the_departures_invariant_flags_an_allowance_after_leaving_and_a_cover_above_the_return(session: Session, staff: str) -> None:
    from caisse.models import AllowanceMonth
    from caisse.reports import invariants

    household_id = _joined(session, datetime(2026, 1, 5, tzinfo=UTC))
    members.leave_household(session, household_id=household_id, end_date=date(2026, 4, 15), by=staff,
                            now=datetime(2026, 4, 1, tzinfo=UTC))
    allowances.allocate(session, month="2026-04", settings=make_settings())
    assert invariants.departures(session) == []
    fund = ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND, kind=ledger.AccountKind.ALLOWANCE_FUND)
    member = ledger.ensure_account(session, code=ledger.member_code(household_id), kind=ledger.AccountKind.MEMBER)
    ledger.post_transfer(session, debit=fund, credit=member, amount_cents=10_000, kind=ledger.TransferKind.ALLOWANCE,
                         reference=f"allowance:{household_id}:2026-05")  # as a buggy allocation would
    session.add(AllowanceMonth(month="2026-05"))
    ledger.post_transfer(session, debit=fund, credit=member, amount_cents=500, kind=ledger.TransferKind.DEPARTURE_COVER,
                         reference=f"leave:{household_id}")  # a cover with nothing returned
    session.flush()
    found = invariants.departures(session)
    assert len(found) == 2 and f"allowance:{household_id}:2026-05" in found[0] and "5,00 €" in found[1]
