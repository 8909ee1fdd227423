"""Monthly allowances: rules, pro rata, unspent money, idempotency, closed months."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlmodel import Session

from caisse.errors import Conflict, InvalidInput
from caisse.fund import allowances
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import Contribution, Household, LedgerTransfer
from caisse.months import Month
from caisse.staff.accounts import SYSTEM
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import STAFF_EMAIL, staff_in_database
from tests.fixtures.database import make_settings

EARLY = datetime(2026, 1, 1, tzinfo=UTC)


def _household(session: Session, *, members: int = 1, joined: datetime = EARLY) -> int:
    household = household_service.create_household(session, name="Famille Martin", members=members, zone="Nord")
    assert household.id is not None
    session.execute(update(Household).where(Household.id == household.id).values(created_at=joined))  # type: ignore[arg-type]
    session.commit()
    return household.id


def _balance(session: Session, household_id: int) -> int:
    return household_service.household_balance_cents(session, household_id=household_id)


def test_the_flat_rule_credits_every_household_the_same_amount(session: Session) -> None:
    a, b = _household(session, members=1), _household(session, members=5)
    report = allowances.allocate(session, month="2026-03", settings=make_settings(allowance_rule="flat", allowance_flat_cents=10_000))
    session.commit()
    assert (report.credited_households, report.credited_cents) == (2, 20_000)
    assert (_balance(session, a), _balance(session, b)) == (10_000, 10_000)
    assert_ledger_invariants(session)


def test_the_per_member_rule_adds_an_amount_per_extra_member(session: Session) -> None:
    single, family = _household(session, members=1), _household(session, members=4)
    rules = make_settings(allowance_rule="per_member", allowance_base_cents=15_000, allowance_per_extra_member_cents=7_500)
    allowances.allocate(session, month="2026-03", settings=rules)
    session.commit()
    assert (_balance(session, single), _balance(session, family)) == (15_000, 15_000 + 3 * 7_500)


def test_the_average_rule_shares_the_months_contributions_rounded_down(session: Session) -> None:
    a, b, c = _household(session), _household(session), _household(session)
    for household_id, amount in ((a, 1_000), (b, 5_000), (c, 1)):
        session.add(Contribution(household_id=household_id, month="2026-03", amount_cents=amount, reference=f"c{household_id}"))
    session.add(Contribution(household_id=a, month="2026-02", amount_cents=99_999, reference="other-month"))
    session.commit()
    report = allowances.allocate(session, month="2026-03", settings=make_settings(allowance_rule="average_contribution"))
    session.commit()
    assert report.credited_cents == 3 * (6_001 // 3)
    assert _balance(session, a) == 2_000


def test_a_household_joining_mid_month_gets_the_days_left_when_pro_rata_is_on(session: Session) -> None:
    joined = _household(session, joined=datetime(2026, 4, 21, 15, 0, tzinfo=UTC))  # 10 of 30 days left
    allowances.allocate(session, month="2026-04", settings=make_settings(allowance_flat_cents=10_000))
    session.commit()
    assert _balance(session, joined) == 10_000 * 10 // 30


def test_without_pro_rata_a_mid_month_joiner_gets_the_full_amount(session: Session) -> None:
    joined = _household(session, joined=datetime(2026, 4, 21, tzinfo=UTC))
    allowances.allocate(session, month="2026-04", settings=make_settings(allowance_flat_cents=10_000, allowance_pro_rata=False))
    session.commit()
    assert _balance(session, joined) == 10_000


def test_a_household_registered_after_the_month_gets_nothing_for_it(session: Session) -> None:
    _household(session, joined=datetime(2026, 5, 1, tzinfo=UTC))
    report = allowances.allocate(session, month="2026-04", settings=make_settings())
    assert report.credited_households == 0


def test_allocating_twice_credits_once_and_reports_it(session: Session) -> None:
    a = _household(session)
    rules = make_settings(allowance_flat_cents=10_000)
    allowances.allocate(session, month="2026-03", settings=rules)
    session.commit()
    b = _household(session)
    again = allowances.allocate(session, month="2026-03", settings=rules)
    session.commit()
    assert (again.credited_households, again.already_credited) == (1, 1)
    assert (_balance(session, a), _balance(session, b)) == (10_000, 10_000)
    changed = allowances.allocate(session, month="2026-03", settings=make_settings(allowance_flat_cents=12_000))
    assert changed.credited_households == 0 and sorted(changed.differing) == [(a, 10_000, 12_000), (b, 10_000, 12_000)]
    assert_ledger_invariants(session)


def test_unspent_money_above_the_cap_returns_to_the_fund(session: Session) -> None:
    a = _household(session)
    rules = make_settings(allowance_flat_cents=10_000, allowance_unspent="carry_over", allowance_carry_over_cap_cents=3_000)
    allowances.allocate(session, month="2026-03", settings=rules)
    session.commit()
    report = allowances.allocate(session, month="2026-04", settings=rules)
    session.commit()
    assert (report.expired_households, report.expired_cents) == (1, 7_000)
    assert _balance(session, a) == 3_000 + 10_000
    expiry = ledger.find_transfer(session, reference=allowances.expiry_reference(a, Month.parse("2026-04")))
    assert expiry is not None and expiry.kind == ledger.TransferKind.EXPIRY
    assert_ledger_invariants(session)


def test_unspent_money_expires_entirely_under_the_expire_policy(session: Session) -> None:
    a = _household(session)
    rules = make_settings(allowance_flat_cents=10_000, allowance_unspent="expire")
    allowances.allocate(session, month="2026-03", settings=rules)
    session.commit()
    allowances.allocate(session, month="2026-04", settings=rules)
    session.commit()
    assert _balance(session, a) == 10_000
    assert ledger.balance_cents(session, code=ledger.Account.ALLOWANCE_FUND) == -10_000


def test_a_closed_month_is_refused(session: Session) -> None:
    _household(session)
    allowances.allocate(session, month="2026-03", settings=make_settings())
    allowances.close_month(session, month="2026-03")
    session.commit()
    with pytest.raises(Conflict) as refused:
        allowances.allocate(session, month="2026-03", settings=make_settings())
    assert refused.value.code == "month_closed"


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "march", "2026-00"])
def test_a_malformed_month_is_refused(session: Session, month: str) -> None:
    with pytest.raises(InvalidInput):
        allowances.allocate(session, month=month, settings=make_settings())


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    months=st.lists(st.sampled_from(["2026-01", "2026-02", "2026-03"]), min_size=1, max_size=4),
    unspent=st.sampled_from(["carry_over", "expire"]),
    cap=st.integers(0, 20_000),
)
def test_allocations_keep_the_ledger_balanced_and_credit_once_per_month(
    session: Session, months: list[str], unspent: str, cap: int
) -> None:
    rules = make_settings(allowance_unspent=unspent, allowance_carry_over_cap_cents=cap)
    _household(session)
    for month in months:
        allowances.allocate(session, month=month, settings=rules)
        session.commit()
        assert_ledger_invariants(session)
    credits = session.execute(select(LedgerTransfer.reference).where(LedgerTransfer.kind == ledger.TransferKind.ALLOWANCE)).scalars().all()  # type: ignore[arg-type]
    assert len(credits) == len(set(credits))


def test_the_allocate_command_is_idempotent_and_refuses_a_closed_month(cli_database: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from caisse.cli.main import app

    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_ALLOWANCE_FLAT_CENTS", "10000")
    staff_in_database(f"sqlite:///{tmp_path / 'cli.db'}", STAFF_EMAIL)
    runner = CliRunner()
    assert runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "2", "--zone", "Sud"]).exit_code == 0
    first = runner.invoke(app, ["allocate", "--month", "2030-01", "--by", STAFF_EMAIL])
    assert (first.exit_code, first.stdout.strip()) == (0, "10000")
    second = runner.invoke(app, ["allocate", "--month", "2030-01", "--by", STAFF_EMAIL])
    assert (second.exit_code, second.stdout.strip()) == (0, "0")
    assert "déjà crédités : 1" in second.stderr
    assert runner.invoke(app, ["close-month", "2030-01", "--by", STAFF_EMAIL]).exit_code == 0
    refused = runner.invoke(app, ["allocate", "--month", "2030-01", "--by", STAFF_EMAIL])
    assert refused.exit_code == 1 and "month_closed" in refused.stderr


# Rules in the table (allowance_rule): in force from their month, settings only as the default ------

def test_a_rule_applies_from_its_month_on_and_earlier_months_keep_the_previous_one(session: Session) -> None:
    defaults = make_settings(allowance_rule="flat", allowance_flat_cents=10_000)
    household = _household(session, members=3)
    allowances.set_rule(session, effective_month="2026-04", by=SYSTEM, settings=defaults, rule="per_member",
                        base_cents=15_000, per_extra_member_cents=7_500)
    allowances.set_rule(session, effective_month="2026-06", by=SYSTEM, settings=defaults, base_cents=12_000)
    session.commit()
    credited = {month: allowances.allocate(session, month=month, settings=defaults).credited_cents
                for month in ("2026-03", "2026-04", "2026-05", "2026-06")}
    session.commit()
    assert credited == {"2026-03": 10_000, "2026-04": 30_000, "2026-05": 30_000, "2026-06": 27_000}
    june = allowances.rule_in_force(session, month="2026-07", settings=defaults)
    assert (june.rule, june.base_cents, june.per_extra_member_cents, june.effective_month) == ("per_member", 12_000, 7_500, "2026-06")
    assert _balance(session, household) > 0
    assert_ledger_invariants(session)


def test_the_unspent_policy_and_cap_come_from_the_rule_in_force(session: Session) -> None:
    defaults = make_settings(allowance_flat_cents=10_000, allowance_unspent="carry_over", allowance_carry_over_cap_cents=5_000)
    household = _household(session)
    allowances.allocate(session, month="2026-03", settings=defaults)
    allowances.set_rule(session, effective_month="2026-04", by=SYSTEM, settings=defaults, carry_over_cap_cents=2_000)
    report = allowances.allocate(session, month="2026-04", settings=defaults)
    session.commit()
    assert (report.expired_cents, _balance(session, household)) == (8_000, 2_000 + 10_000)


def test_allocating_twice_under_a_rule_credits_once(session: Session) -> None:
    defaults = make_settings()
    _household(session)
    allowances.set_rule(session, effective_month="2026-03", by=SYSTEM, settings=defaults, flat_cents=8_000, pro_rata=False)
    first = allowances.allocate(session, month="2026-03", settings=defaults)
    second = allowances.allocate(session, month="2026-03", settings=defaults)
    session.commit()
    assert (first.credited_cents, second.credited_cents, second.already_credited, second.differing) == (8_000, 0, 1, [])


def test_a_rule_cannot_start_in_a_month_already_allocated(session: Session) -> None:
    defaults = make_settings()
    _household(session)
    allowances.allocate(session, month="2026-05", settings=defaults)
    session.commit()
    for month in ("2026-05", "2026-04"):
        with pytest.raises(Conflict) as refused:
            allowances.set_rule(session, effective_month=month, by=SYSTEM, settings=defaults, flat_cents=1)
        assert refused.value.code == "month_allocated"
    allowances.set_rule(session, effective_month="2026-06", by=SYSTEM, settings=defaults, flat_cents=1)


@pytest.mark.parametrize("changes", [{"rule": "weekly"}, {"unspent": "donate"}, {"flat_cents": -1}, {"carry_over_cap_cents": -5}])
def test_a_malformed_rule_is_refused_and_nothing_is_recorded(session: Session, changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        allowances.set_rule(session, effective_month="2026-04", by=SYSTEM, settings=make_settings(), **changes)  # type: ignore[arg-type]
    assert allowances.list_rules(session) == []


def test_setting_a_rule_again_for_the_same_month_replaces_it(session: Session) -> None:
    defaults = make_settings()
    allowances.set_rule(session, effective_month="2026-04", by=SYSTEM, settings=defaults, flat_cents=9_000)
    allowances.set_rule(session, effective_month="2026-04", by=SYSTEM, settings=defaults, flat_cents=9_500)
    [rule] = allowances.list_rules(session)
    assert (rule.effective_month, rule.flat_cents) == ("2026-04", 9_500)


def test_the_allowance_rule_commands_set_and_show_it_in_french(cli_database: str, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from caisse.cli.main import app

    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    staff_in_database(f"sqlite:///{tmp_path / 'cli.db'}", STAFF_EMAIL)
    runner = CliRunner()
    default = runner.invoke(app, ["allowance-rule", "show", "--month", "2030-01"])
    assert default.exit_code == 0 and "réglages par défaut" in default.stdout
    set_ = runner.invoke(app, ["allowance-rule", "set", "--from", "2030-02", "--by", STAFF_EMAIL, "--rule", "per_member",
                               "--base", "150", "--per-extra-member", "75,00", "--no-pro-rata", "--unspent", "expire"])
    assert set_.exit_code == 0, set_.output
    assert "150,00 EUR plus 75,00 EUR par membre supplémentaire, sans prorata" in set_.stderr
    shown = runner.invoke(app, ["allowance-rule", "show", "--month", "2030-03"])
    assert "depuis 2030-02" in shown.stdout and "reliquat rendu au fonds" in shown.stdout
    assert runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "3", "--zone", "Sud"]).exit_code == 0
    assert runner.invoke(app, ["allocate", "--month", "2030-02", "--by", STAFF_EMAIL]).stdout.strip() == "30000"
    refused = runner.invoke(app, ["allowance-rule", "set", "--from", "2030-02", "--by", STAFF_EMAIL, "--flat", "10,001"])
    assert refused.exit_code == 1
    nothing_extra = runner.invoke(app, ["allowance-rule", "set", "--from", "2030-03", "--by", STAFF_EMAIL, "--per-extra-member", "0"])
    assert nothing_extra.exit_code == 0, nothing_extra.output  # a rule's amount may be zero, unlike a payment's
    assert "150,00 EUR plus 0,00 EUR par membre supplémentaire" in nothing_extra.stderr
