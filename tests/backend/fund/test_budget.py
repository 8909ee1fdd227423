"""The budget rebuilt from the ledger (docs/settlement.md, "Budget: the reconciliation identity"):
a rejected payment is not spent, a void belongs to its payment's month, manual credits count,
every difference with the ledger is listed, and hypothesis checks the figures of random months of
payments, voids, holds, rejections, releases, credits, contributions, fees and settlement runs
against a model kept apart from the database."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.config import Settings
from caisse.db import session_factory
from caisse.fund import service as fund
from caisse.ingest import review
from caisse.members import households as household_service
from caisse.settlement import runs as settlement
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import PG_SCHEMA, make_settings

PARIS = ZoneInfo("Europe/Paris")

pytestmark = pytest.mark.usefixtures("deciders")  # review decisions name active console accounts


def _local(day: str, hour: int = 12, minute: int = 0) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=PARIS).timestamp()) + hour * 3600 + minute * 60


def _record_id(session: Session, market: Market, index: int, seq: int) -> int:
    return session.execute(text("SELECT id FROM transaction_record WHERE terminal_id = :t AND seq = :s"),
                           {"t": market.chains[index].terminal_id, "s": seq}).scalar_one()


@pytest.fixture
def rules(settings: Settings, tmp_path: Path) -> Settings:
    return make_settings(str(settings.database_url), settlement_dir=str(tmp_path))


def test_a_void_after_midnight_belongs_to_its_payment_month(session: Session, rules: Settings) -> None:
    """Tapped at 23:58 on 31 January, voided at 00:01 on 1 February: January spent nothing,
    February did not spend a negative amount."""
    market = Market(session, rules)
    market.pay(0, 1_500, time=_local("2026-01-31", 23, 58))
    market.upload(0, [market.chains[0].void(1, time=_local("2026-02-01", 0, 1))])
    january, february = fund.budgets(session, months=["2026-01", "2026-02"], settings=rules)
    assert (january.payments_cents, january.voids_cents, january.spent_cents) == (1_500, 1_500, 0)
    assert (february.payments_cents, february.voids_cents, february.spent_cents) == (0, 0, 0)
    assert january.reconciled and february.reconciled, january.differences


def test_a_payment_rejected_in_review_is_given_back_not_spent(session: Session, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 2_000, time=_local("2026-01-10"))
    market.pay(0, 700, time=_local("2026-01-11"))
    market.pay(1, 300, time=_local("2026-01-12"))
    review.hold(session, record_ids=[_record_id(session, market, 0, 1), _record_id(session, market, 1, 1)], reason="carte suspecte")
    review.reject(session, record_id=_record_id(session, market, 0, 1), by="claire@caisse.test")
    session.commit()
    january = fund.budget(session, month="2026-01", settings=rules)
    assert (january.payments_cents, january.rejected_cents, january.spent_cents) == (3_000, 2_000, 1_000)
    assert january.held_cents == 300  # still waiting for a person: spent by the household, not payable yet
    assert january.reconciled, january.differences


def test_a_manual_credit_is_in_the_budget_and_the_households_balance(session: Session, rules: Settings) -> None:
    household = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
    assert household.id is not None
    household_service.credit_household(session, household_id=household.id, amount_cents=4_321, reference="geste-du-comité")
    session.commit()
    month = datetime.now(PARIS).strftime("%Y-%m")
    result = fund.budget(session, month=month, settings=rules)
    assert (result.credits_cents, result.allowances_cents) == (4_321, 0)
    assert result.members_balance_cents == 4_321 and result.reconciled, result.differences


def test_every_difference_is_listed_and_the_command_says_no_difference_only_without_any(
    session: Session, rules: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000, time=_local("2026-01-05"))
    # 2,50 € moved from the vendor's account to the household's behind the journal: every sum is zero.
    session.execute(text("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 250 WHERE kind = 'member'"))
    session.execute(text("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents - 250"
                         " WHERE code = 'vendor_payable:' || :v"), {"v": market.vendor_ids[0]})
    session.commit()
    january = fund.budget(session, month="2026-01", settings=rules)
    session.commit()
    assert not january.reconciled
    assert january.differences == (
        "soldes des foyers : 9990,00 € au budget, 9992,50 € sur leurs comptes (écart 2,50 €)",
        "dû aux commerçants, retenu compris : 10,00 € au budget, 7,50 € sur leurs comptes (écart -2,50 €)",
        "commerçant 1 : compte à payer 7,50 €, enregistrements 10,00 € (écart -2,50 €)",
    )
    url = str(rules.database_url)
    monkeypatch.setenv("CAISSE_DATABASE_URL", url if url.startswith("sqlite") else f"{url}?options=-csearch_path%3D{PG_SCHEMA}")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "test-admin-token")
    shown = CliRunner().invoke(app, ["budget", "--month", "2026-01"])
    assert shown.exit_code == 1
    assert "aucun écart" not in shown.output
    for difference in january.differences:
        assert f"Écart avec le grand livre : {difference}" in shown.stderr


# Hypothesis: random months against a model of what should be there --------------------------

BOUNDARIES = [_local(day, 23, 58) for day in ("2026-01-31", "2026-02-28", "2026-03-31")]
MONTHS = ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04"]
_run_dates = itertools.count()  # one settlement date per run, across examples (a date is settled once)
_references = itertools.count()  # contribution and fee references, unique across examples

moments = st.one_of(st.sampled_from(BOUNDARIES), st.integers(_local("2026-01-01", 0, 0), _local("2026-03-31", 23, 0)))
operations = st.lists(st.one_of(
    st.tuples(st.just("pay"), st.integers(0, 1), st.integers(1, 5_000), moments),
    st.tuples(st.just("void"), st.integers(0, 1), st.integers(0, 4)),  # how far back the payment is
    st.tuples(st.just("hold"), st.integers(0, 1), st.integers(0, 4)),
    st.tuples(st.just("reject"), st.integers(0, 1), st.integers(0, 4)),
    st.tuples(st.just("release"), st.integers(0, 1), st.integers(0, 4)),
    st.tuples(st.just("credit"), st.integers(1, 9_999)),
    st.tuples(st.just("contribute"), st.sampled_from(MONTHS[1:4]), st.integers(1, 9_999)),
    st.tuples(st.just("fee"), st.sampled_from(MONTHS[1:4]), st.integers(1, 999)),
    st.tuples(st.just("settle"), st.just(0)),
), min_size=1, max_size=18)


class Model:
    """What the budget must show for this example's operations, month by month (the database keeps
    earlier examples' books: the test compares differences before and after)."""

    def __init__(self) -> None:
        self.lines: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.payments: list[list[dict]] = [[], []]  # per terminal: seq, time, amount, accepted void, review

    def payment(self, index: int, back: int) -> dict | None:
        mine = self.payments[index]
        return mine[-1 - back] if back < len(mine) else None

    @staticmethod
    def month(at: int) -> str:
        return datetime.fromtimestamp(at, PARIS).strftime("%Y-%m")

    def add(self, line: str, month: str, cents: int) -> None:
        self.lines[line][month] += cents


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=operations)
def test_random_months_give_the_budget_the_model_expects_and_reconcile(
    session: Session, engine: Engine, rules: Settings, plan: list[tuple]
) -> None:
    before = {b.month: b for b in fund.budgets(session, months=MONTHS, settings=rules)}
    session.commit()
    market, model = Market(session, rules), Model()
    model.add("credits", datetime.now(PARIS).strftime("%Y-%m"), 1_000_000)  # the market's household credit
    for operation, *args in plan:
        if operation == "pay":
            index, amount, at = args
            market.pay(index, amount, time=at)
            model.payments[index].append({"index": index, "seq": len(market.chains[index].records), "time": at,
                                          "amount": amount, "voided": False, "review": None, "settled": False})
            model.add("payments", model.month(at), amount)
        elif operation == "void" and (payment := model.payment(*args)) is not None:
            index = args[0]
            market.upload(index, [market.chains[index].void(payment["seq"], time=payment["time"] + 180)])
            if not payment["voided"]:  # a payment voided (or rejected) before: refused, unknown_payment
                payment["voided"] = True
                model.add("voids", model.month(payment["time"]), payment["amount"])
                if payment["review"] == "held":
                    model.add("held", model.month(payment["time"]), -payment["amount"])
        elif operation == "hold" and (payment := model.payment(*args)) is not None:
            held = review.hold(session, record_ids=[_record_id(session, market, args[0], payment["seq"])], reason="vérifier")
            session.commit()
            assert held == (payment["review"] is None and not payment["settled"])
            if held:
                payment["review"] = "held"
                model.add("held", model.month(payment["time"]), 0 if payment["voided"] else payment["amount"])
        elif operation in ("reject", "release") and (payment := model.payment(*args)) is not None:
            if payment["review"] != "held":
                continue
            decide = review.reject if operation == "reject" else review.release
            decide(session, record_id=_record_id(session, market, args[0], payment["seq"]), by="claire@caisse.test")
            session.commit()
            payment["review"] = operation + "ed" if operation == "reject" else "released"
            model.add("held", model.month(payment["time"]), 0 if payment["voided"] else -payment["amount"])
            if operation == "reject" and not payment["voided"]:
                payment["voided"] = True
                model.add("rejected", model.month(payment["time"]), payment["amount"])
        elif operation == "credit":
            household_service.credit_household(session, household_id=_household(session, market), amount_cents=args[0])
            session.commit()
            model.add("credits", datetime.now(PARIS).strftime("%Y-%m"), args[0])
        elif operation == "contribute":
            month, amount = args
            fund.record_contribution(session, household_id=_household(session, market), month=month, amount_cents=amount,
                                     settings=rules, reference=f"c{next(_references)}")
            session.commit()
            model.add("contributions", month, amount)
        elif operation == "fee":
            month, amount = args
            fund.record_fee(session, month=month, amount_cents=amount, memo="banque", reference=f"f{next(_references)}")
            session.commit()
            model.add("fees", month, amount)
        elif operation == "settle":
            run_date = date(2026, 1, 1) + timedelta(days=next(_run_dates))
            session.commit()  # the run opens its own sessions: SQLite has one writer at a time
            result = settlement.settle(session_factory(engine), run_date=run_date, settings=rules)
            model.add("payouts", run_date.strftime("%Y-%m"), result.paid_cents)
            for payment in model.payments[0] + model.payments[1]:
                payment["settled"] = payment["settled"] or _settled(session, market, payment)
            session.commit()
    after = fund.budgets(session, months=MONTHS, settings=rules)
    fields = {"payments": "payments_cents", "voids": "voids_cents", "rejected": "rejected_cents", "held": "held_cents",
              "contributions": "contributions_cents", "fees": "fees_cents", "payouts": "payouts_cents"}
    for budget in after:
        assert budget.reconciled, budget.differences
        assert 0 <= budget.held_cents <= budget.spent_cents, budget
        for line, name in fields.items():
            assert getattr(budget, name) - getattr(before[budget.month], name) == model.lines[line][budget.month], (line, budget)
        spent = model.lines["payments"][budget.month] - model.lines["voids"][budget.month] - model.lines["rejected"][budget.month]
        assert budget.spent_cents - before[budget.month].spent_cents == spent
    # The closing balances of the last month are what the accounts hold today.
    now = fund.budget(session, month="2099-12", settings=rules)
    accounts = dict(session.execute(text(
        "SELECT CASE WHEN code LIKE 'member:%' THEN 'member' WHEN code LIKE 'vendor_payable:%' OR code LIKE 'vendor_held:%'"
        " THEN 'vendor' ELSE code END AS p,"
        " SUM(credits_posted_cents - debits_posted_cents) FROM ledger_account GROUP BY p")).all())
    assert now.members_balance_cents == accounts["member"]
    assert now.vendors_owed_cents == accounts.get("vendor", 0)
    assert now.fund_balance_cents == accounts.get("fund", 0) - accounts.get("vendor_paid", 0)
    session.commit()


def _household(session: Session, market: Market) -> int:
    return session.execute(text("SELECT household_id FROM card WHERE uid = :u"), {"u": market.uid}).scalar_one()


def _settled(session: Session, market: Market, payment: dict) -> bool:
    return session.execute(text("SELECT COUNT(*) FROM settlement_item WHERE record_id = :r"),
                           {"r": _record_id(session, market, payment["index"], payment["seq"])}).scalar_one() == 1


def test_a_manual_credit_taken_back_leaves_its_month_and_the_books_reconcile(session: Session, rules: Settings) -> None:
    from caisse.ledger import corrections

    household = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
    assert household.id is not None
    household_service.credit_household(session, household_id=household.id, amount_cents=3_000, reference="geste")
    double = household_service.credit_household(session, household_id=household.id, amount_cents=3_000, reference="geste-bis")
    session.commit()
    corrections.reverse(session, reference=double.ledger_reference, by="claire@caisse.test", reason="saisi deux fois")
    session.commit()
    result = fund.budget(session, month=datetime.now(PARIS).strftime("%Y-%m"), settings=rules)
    assert (result.credits_cents, result.members_balance_cents) == (3_000, 3_000)
    assert result.reconciled, result.differences
