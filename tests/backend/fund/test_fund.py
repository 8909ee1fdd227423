"""Contributions, CSV import, matching funds, grants, fees, and the budget reconciled with the ledger."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import session_factory
from caisse.errors import MESSAGES, Conflict, InvalidInput
from caisse.fund import allowances
from caisse.fund import service as fund
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import Contribution, Household, LedgerTransfer, SettlementRun, TransactionRecord
from caisse.money import parse_euros
from caisse.settlement import runs as settlement
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import STAFF_EMAIL, staff_in_database
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import make_settings


def _households(session: Session, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        household = household_service.create_household(session, name="Famille Petit", members=2, zone="Est")
        assert household.id is not None
        session.execute(update(Household).where(Household.id == household.id).values(created_at=datetime(2025, 12, 1, tzinfo=UTC)))  # type: ignore[arg-type]
        ids.append(household.id)
    session.commit()
    return ids


@pytest.mark.parametrize(("text", "cents"), [("12,50", 1250), ("12.5", 1250), ("0.01", 1), ("1 000,00", 100_000), ("7", 700)])
def test_euros_are_parsed_exactly_to_cents(text: str, cents: int) -> None:
    assert parse_euros(text) == cents


@pytest.mark.parametrize("text", ["12,505", "-3", "0", "abc", "1e3", "NaN", "", "2000000"])
def test_a_malformed_or_out_of_range_amount_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_euros(text)


@given(st.decimals(min_value="0.01", max_value="999999.99", places=2))
def test_any_two_decimal_amount_round_trips_through_cents(amount) -> None:  # type: ignore[no-untyped-def]
    assert parse_euros(str(amount).replace(".", ",")) == int(amount * 100)


def test_the_suggested_contribution_follows_the_income_brackets_and_the_minimum() -> None:
    rules = make_settings(contribution_brackets=[(100_000, 1_000), (200_000, 3_000)], contribution_above_brackets_cents=8_000)
    assert [fund.suggested_contribution_cents(income_cents=i, settings=rules) for i in (50_000, 100_001, 900_000)] == [1_000, 3_000, 8_000]
    floor = make_settings(contribution_brackets=[(100_000, 1_000)], contribution_minimum_cents=2_000)
    assert fund.suggested_contribution_cents(income_cents=0, settings=floor) == 2_000


def test_a_contribution_is_recorded_once_per_reference(session: Session) -> None:
    [h] = _households(session, 1)
    rules = make_settings()
    assert fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=3_000, settings=rules, reference="r1")
    assert not fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=3_000, settings=rules, reference="r1")
    with pytest.raises(Conflict):
        fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=3_100, settings=rules, reference="r1")
    with pytest.raises(InvalidInput):
        fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=500, settings=make_settings(contribution_minimum_cents=1_000))
    session.commit()
    assert ledger.balance_cents(session, code=ledger.Account.FUND) == 3_000
    assert_ledger_invariants(session)


def test_an_import_with_errors_reports_them_by_line_and_imports_nothing(session: Session) -> None:
    [h] = _households(session, 1)
    content = (
        "household_id;month;amount_eur;reference\n"
        f"{h};2026-01;25,00;p1\n"
        f"999;2026-01;25,00;p2\n"
        f"{h};2026-13;25,00;p3\n"
        f"{h};2026-01;25,001;p4\n"
        f"{h};2026-01;10,00;p1\n"
        f"x;2026-01;10,00;p5\n"
    )
    report = fund.import_contributions(session, content=content, settings=make_settings())
    assert [line for line, _ in report.errors] == [3, 4, 5, 6, 7]
    assert [error.code for _, error in report.errors] == [
        "household_not_found", "invalid_month", "invalid_amount", "duplicate_reference", "invalid_household_id"]
    assert "already on line 2" in report.errors[3][1].detail
    assert report.imported == 0
    assert session.execute(select(func.count()).select_from(Contribution)).scalar_one() == 0
    skipped = fund.import_contributions(session, content=content, settings=make_settings(), skip_errors=True)
    assert (skipped.imported, skipped.imported_cents) == (1, 2_500)


def test_a_staff_sheet_saved_by_excel_imports_like_the_platforms_file(session: Session) -> None:
    """Windows-1252, French headers in another order, a blank line, `;` and decimal commas: the
    same contributions as the platform's UTF-8 file; bad lines keep their line numbers."""
    a, b = _households(session, 2)
    sheet = (f"Référence;Foyer;Mois;Montant\r\nvirement-é1;{a};2026-01;30,00\r\n\r\n"
             f"virement-é2;{b};2026-01;12,35\r\nvirement-é3;{b};janvier;5\r\n").encode("cp1252")
    refused = fund.import_contributions(session, content=sheet, settings=make_settings())
    assert [(line, error.code) for line, error in refused.errors] == [(5, "invalid_month")]
    assert session.execute(select(func.count()).select_from(Contribution)).scalar_one() == 0
    report = fund.import_contributions(session, content=sheet, settings=make_settings(), skip_errors=True)
    assert (report.imported, report.imported_cents) == (2, 4_235)
    references = set(session.execute(select(Contribution.reference)).scalars())
    assert references == {"contribution:import:virement-é1", "contribution:import:virement-é2"}


def test_importing_the_same_file_twice_imports_once_and_charges_the_platform_fee_once(session: Session) -> None:
    a, b = _households(session, 2)
    content = f"household_id,month,amount_eur,reference\n{a},2026-01,30.00,p1\n{b},2026-01,12.35,p2\n"
    rules = make_settings(platform_fee_basis_points=150)  # 1.5 %
    first = fund.import_contributions(session, content=content, settings=rules)
    second = fund.import_contributions(session, content=content, settings=rules)
    session.commit()
    assert (first.imported, first.imported_cents, first.fee_cents) == (2, 4_235, 64)  # 63.525 -> 64
    assert (second.imported, second.already) == (0, 2)
    assert ledger.balance_cents(session, code=ledger.Account.FUND) == 4_235 - 64
    assert_ledger_invariants(session)


def test_matching_funds_add_a_percentage_and_top_up_after_late_contributions(session: Session) -> None:
    [h] = _households(session, 1)
    rules = make_settings(matching_basis_points=5_000)
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=3_001, settings=rules, reference="a")
    assert fund.record_matching(session, month="2026-01", settings=rules) == 1_500
    assert fund.record_matching(session, month="2026-01", settings=rules) == 0
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=1_000, settings=rules, reference="b")
    assert fund.record_matching(session, month="2026-01", settings=rules) == 500
    session.commit()
    assert_ledger_invariants(session)


def test_the_budget_is_exact_to_the_cent_and_reconciled_with_the_ledger(
    session: Session, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rules = make_settings(str(settings.database_url), settlement_dir=str(tmp_path), matching_basis_points=2_500,
                          allowance_flat_cents=10_000)
    market = Market(session, rules)  # one household credited 10 000 EUR by hand, two vendors
    others = _households(session, 2)
    for index, household_id in enumerate(others):
        fund.record_contribution(session, household_id=household_id, month="2026-01", amount_cents=2_001 + index, settings=rules,
                                 reference=f"c{index}")
    fund.record_contribution(session, household_id=others[0], month="2026-02", amount_cents=9_999, settings=rules, reference="feb")
    fund.record_matching(session, month="2026-01", settings=rules)
    fund.record_grant(session, month="2026-01", amount_cents=50_000, source="Fondation de France", reference="g1")
    fund.record_fee(session, month="2026-01", amount_cents=350, memo="frais bancaires", reference="bank-jan")
    fund.record_fee(session, month="2026-02", amount_cents=99, memo="frais bancaires", reference="bank-feb")
    allowances.allocate(session, month="2026-01", settings=rules)
    session.commit()
    market.pay(0, 1_234)
    market.pay(1, 766)
    market.upload(1, [market.chains[1].void(1)])
    settlement.settle(session_factory(engine), run_date=date(2026, 1, 1), settings=rules)
    result = fund.budget(session, month="2026-01", settings=rules)
    assert result.contributions_cents == 4_003
    assert result.matching_cents == 4_003 * 2_500 // 10_000
    assert (result.grants_cents, result.fees_cents) == (50_000, 350)
    assert result.allowances_cents == 2 * 10_000  # the market's household registered after January
    assert (result.spent_cents, result.payouts_cents) == (1_234, 1_234)
    assert result.fund_balance_cents == 4_003 + 1_000 + 50_000 - 350 - 1_234
    assert result.reconciled, result.differences
    february = fund.budget(session, month="2026-02", settings=rules)
    assert february.fund_balance_cents == result.fund_balance_cents + 9_999 - 99
    assert_ledger_invariants(session)


def test_the_fund_commands_import_a_file_and_print_a_reconciled_budget(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app

    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    staff_in_database(f"sqlite:///{tmp_path / 'cli.db'}", STAFF_EMAIL)
    runner = CliRunner()
    assert runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "2", "--zone", "Sud"]).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("household_id;month;amount_eur;reference\n1;2030-01;20,00;a\n1;2030-01;vingt;b\n", encoding="utf-8")
    refused = runner.invoke(app, ["fund", "import", str(bad), "--by", STAFF_EMAIL])
    assert refused.exit_code == 1 and refused.stdout.strip() == "0"
    assert f"ligne 3 : {MESSAGES['invalid_amount']}" in refused.stderr
    assert runner.invoke(app, ["fund", "import", str(bad), "--skip-errors", "--by", STAFF_EMAIL]).stdout.strip() == "1"
    contribute = ["fund", "contribute", "--household", "1", "--month", "2030-01", "--amount", "5,05", "--by", STAFF_EMAIL]
    assert runner.invoke(app, contribute).exit_code == 0
    fee = ["fund", "fee", "--month", "2030-01", "--amount", "0,10", "--memo", "banque", "--reference", "f", "--by", STAFF_EMAIL]
    assert "Frais enregistrés pour 2030-01 : banque." in runner.invoke(app, fee).stderr
    assert "rien de changé" in runner.invoke(app, fee).stderr  # the same reference again: posted once
    shown = runner.invoke(app, ["budget", "--month", "2030-01"])
    assert shown.exit_code == 0, shown.output
    assert "25,05 EUR" in shown.stdout and "24,95 EUR" in shown.stdout and "Rapproché" in shown.stderr


def test_the_budgets_of_a_period_equal_each_month_alone_and_the_journal_read_by_hand(
    session: Session, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    rules = make_settings(str(settings.database_url), settlement_dir=str(tmp_path), matching_basis_points=3_300,
                          allowance_flat_cents=7_000)
    zone = ZoneInfo(rules.settlement_timezone)
    rng = random.Random(5)
    market = Market(session, rules)
    others = _households(session, 3)
    for index in range(14):  # December to May, some months empty, one household twice in a month
        month = rng.choice(["2025-12", "2026-01", "2026-01", "2026-02", "2026-04", "2026-05"])
        fund.record_contribution(session, household_id=rng.choice(others), month=month, amount_cents=rng.randint(1_000, 9_999),
                                 settings=rules, reference=f"c{index}")
    for month in ("2026-01", "2026-02", "2026-04"):
        fund.record_matching(session, month=month, settings=rules)
        fund.record_grant(session, month=month, amount_cents=rng.randint(1, 90_000), source="Ville", reference="a-2026-03")
        fund.record_fee(session, month=month, amount_cents=rng.randint(1, 999), memo="frais", reference=month)
    fund.record_fee(session, month="2026-05", amount_cents=77, memo="frais", reference="mai")
    for month in ("2026-01", "2026-02"):
        allowances.allocate(session, month=month, settings=rules)
    session.commit()
    for index, day in enumerate(["2026-01-05", "2026-01-31", "2026-02-01", "2026-02-20", "2026-03-10", "2026-04-02"]):
        local_midnight = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=zone)
        market.pay(index % 2, rng.randint(1, 5_000), time=int(local_midnight.timestamp()))  # the boundaries of local months
    market.upload(0, [market.chains[0].void(1)])
    for run_date in (date(2026, 2, 1), date(2026, 3, 31)):
        settlement.settle(session_factory(engine), run_date=run_date, settings=rules)
    months = ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]
    together = fund.budgets(session, months=months, settings=rules)
    assert together == [fund.budget(session, month=m, settings=rules) for m in months]
    assert together == [_budget_by_hand(session, month=m, zone=zone) for m in months]
    assert fund.budgets(session, months=["2026-02", "2026-01"], settings=rules) == [together[3], together[2]]
    assert {b.payouts_cents > 0 for b in together} == {True, False} and all(b.spent_cents != 0 for b in together[2:6])
    assert together[3].expired_cents > 0 and together[3].allowances_cents > 0


def _budget_by_hand(session: Session, *, month: str, zone: ZoneInfo) -> fund.Budget:
    """The budget read row by row in Python (docs/settlement.md, "Budget"): every transfer's month
    from its reference, the register or its run; a manual credit by the local day it was posted;
    payments by the local month of the tap, voids and rejections by their payment's."""
    transfers = session.execute(select(LedgerTransfer.reference, LedgerTransfer.kind, LedgerTransfer.amount_cents,
                                       LedgerTransfer.created_at)).all()
    registered = dict(session.execute(select(Contribution.reference, Contribution.month)).all())  # type: ignore[arg-type]
    runs = {run.id: str(run.run_date)[:7] for run in session.execute(select(SettlementRun)).scalars()}
    records = {(r.terminal_id, r.seq): r for r in session.execute(select(TransactionRecord)).scalars()}

    def local(at: int) -> str:
        return datetime.fromtimestamp(at, zone).strftime("%Y-%m")

    def of(reference: str, kind: str, created_at: datetime) -> tuple[str, str]:
        """(budget line, month) of one transfer."""
        parts = reference.split(":")
        if kind == "allowance":
            monthly = parts[0] == "allowance" and len(parts) == 3
            return ("allowances", parts[2]) if monthly else ("credits", _local(created_at, zone))
        if kind == "allowance_expiry":
            return "expired", parts[2]
        if kind == "contribution":
            return "contributions", registered[reference]
        if kind in ("matching", "grant", "fee"):
            return {"matching": "matching", "grant": "grants", "fee": "fees"}[kind], parts[1]
        if kind == "settlement":
            return "payouts", runs[int(parts[1])]
        return "", ""  # payments, voids, holds, releases, rejections: read from the records below

    lines: dict[str, dict[str, int]] = {}

    def add(line: str, at: str, cents: int) -> None:
        lines.setdefault(line, {}).setdefault(at, 0)
        lines[line][at] += cents

    for reference, kind, cents, created_at in transfers:
        add(*of(reference, kind, created_at), cents)
    for record in records.values():
        if record.status != "accepted":
            continue
        payment = record if record.kind == 1 else records[record.terminal_id, record.ref_seq]
        at = local(payment.time)
        if record.kind == 1:
            add("payments", at, record.amount_cents)
            if record.review == "rejected":  # given back to the household
                add("rejected", at, record.amount_cents)
            elif record.review == "held" and not record.voided:
                add("held", at, record.amount_cents)
            continue
        # A void refunds, unless it or its payment was rejected, or it is held on its own (its
        # payment not held: the refund waits for the decision; docs/ledger.md, "Holds and review").
        alone = record.review == "held" and payment.review != "held"
        if (record.review or payment.review) != "rejected" and not alone:
            add("voids", at, record.amount_cents)
        if alone:
            add("held", at, record.amount_cents)

    def of_month(line: str, up_to: bool = False) -> int:
        return sum(cents for at, cents in lines.get(line, {}).items() if (at <= month if up_to else at == month))

    def spent(up_to: bool = False) -> int:
        return of_month("payments", up_to) - of_month("voids", up_to) - of_month("rejected", up_to)

    return fund.Budget(
        month=month, contributions_cents=of_month("contributions"), matching_cents=of_month("matching"),
        grants_cents=of_month("grants"), fees_cents=of_month("fees"), allowances_cents=of_month("allowances"),
        credits_cents=of_month("credits"), expired_cents=of_month("expired"), payments_cents=of_month("payments"),
        voids_cents=of_month("voids"), rejected_cents=of_month("rejected"), spent_cents=spent(), held_cents=of_month("held"),
        payouts_cents=of_month("payouts"),
        fund_balance_cents=sum(of_month(line, True) for line in ("contributions", "matching", "grants"))
        - of_month("fees", True) - of_month("payouts", True),
        members_balance_cents=of_month("allowances", True) + of_month("credits", True) - of_month("expired", True) - spent(True),
        vendors_owed_cents=spent(True) - of_month("payouts", True), reconciled=True, differences=())


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).strftime("%Y-%m")


def test_a_budget_names_its_differences_with_the_ledger_in_french(session: Session) -> None:
    [h] = _households(session, 1)
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=2_500, settings=make_settings(), reference="r")
    session.add(Contribution(household_id=h, month="2026-01", amount_cents=1_000, reference="contribution:sans-écriture"))
    session.commit()
    [result] = fund.budgets(session, months=["2026-01"], settings=make_settings())
    assert not result.reconciled
    assert result.differences == ("cotisations de 2026-01 : 35,00 € au registre, 25,00 € au grand livre",)
