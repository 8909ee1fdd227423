"""Contributions by choice: means and size history, the indicative scale and the floor, due against
received, the allowance kept whatever is owed, the State's matching claim against the ledger,
months cut at midnight in Paris across the clock changes, records and contributions that arrive
after their month is closed, the year's budget and its costs."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pypdf
import pytest
import time_machine
from sqlalchemy import func, select, update
from sqlmodel import Session

from caisse import audit
from caisse.config import MeansKind
from caisse.errors import Conflict, InvalidInput
from caisse.fund import allowances, contributions, costs, matching_claim
from caisse.fund import service as fund
from caisse.fund.year_budget import year_budget
from caisse.ledger import corrections
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.members import means
from caisse.members import service as members
from caisse.models import AllowanceMonth, Contribution, Household, LedgerTransfer, Role, TransactionRecord
from caisse.money import euros
from caisse.months import Month
from caisse.staff import accounts
from tests.backend.audit import assert_ledger_invariants
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import make_settings

STAFF = "claire@caisse.test"


def _create_staff(session: Session, monkeypatch: pytest.MonkeyPatch) -> str:
    """An active console account, hashed at the lowest cost (the recommended one is tested in tests/console)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)))
    accounts.create_user(session, email=STAFF, password="mot-de-passe-tres-long", role=Role.TREASURER)
    session.commit()
    return STAFF


@pytest.fixture
def staff(session: Session, monkeypatch: pytest.MonkeyPatch) -> str:
    return _create_staff(session, monkeypatch)


def _household(session: Session, joined: datetime, *, members: int = 2, name: str = "Famille Petit") -> int:
    household = household_service.create_household(session, name=name, members=members, zone="Est")
    assert household.id is not None
    session.execute(update(Household).where(Household.id == household.id).values(created_at=joined))  # type: ignore[arg-type]
    session.commit()
    return household.id


# Means, scale and floor ---------------------------------------------------------------------------

def test_the_indicative_scale_reads_the_means_the_caisse_chose_and_never_goes_below_the_floor(session: Session, staff: str) -> None:
    h = _household(session, datetime(2026, 1, 1, tzinfo=UTC))
    by_quartile = make_settings(contribution_by_quartile_cents=[500, 2_000, 4_000, 9_000], contribution_minimum_cents=1_000)
    row = means.record_means(session, household_id=h, effective_month="2026-01", size=3, income_quartile=1,
                             monthly_income_cents=250_000, chosen_contribution_cents=1_000, by=staff, settings=by_quartile)
    assert contributions.indicative_cents(row, settings=by_quartile) == 1_000  # 5 EUR on the scale, floor 10 EUR
    row.income_quartile = 4
    assert contributions.indicative_cents(row, settings=by_quartile) == 9_000
    by_income = make_settings(means_kind=MeansKind.INCOME, contribution_brackets=[(100_000, 1_500), (300_000, 4_500)],
                              contribution_above_brackets_cents=8_000)
    assert contributions.indicative_cents(row, settings=by_income) == 4_500  # 2 500 EUR a month
    row.monthly_income_cents = None
    assert contributions.indicative_cents(row, settings=by_income) is None  # the scale's means are not recorded


def test_means_are_refused_below_the_floor_or_out_of_range_and_nothing_is_written(session: Session, staff: str) -> None:
    h = _household(session, datetime(2026, 1, 1, tzinfo=UTC))
    floor = make_settings(contribution_minimum_cents=1_000)
    bad = [dict(size=2, income_quartile=2, chosen_contribution_cents=999),  # below the floor
           dict(size=0, income_quartile=2, chosen_contribution_cents=1_000), dict(size=31, income_quartile=2, chosen_contribution_cents=1_000),
           dict(size=2, income_quartile=5, chosen_contribution_cents=1_000), dict(size=2, chosen_contribution_cents=1_000),
           dict(size=2, monthly_income_cents=-1, chosen_contribution_cents=1_000)]
    for fields in bad:
        with pytest.raises(InvalidInput):
            means.record_means(session, household_id=h, effective_month="2026-01", by=staff, settings=floor, **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not an active console account"):
        means.record_means(session, household_id=h, effective_month="2026-01", size=2, income_quartile=2,
                           chosen_contribution_cents=1_000, by="quelqu'un", settings=floor)
    with pytest.raises(InvalidInput):
        means.record_means(session, household_id=h + 1, effective_month="2026-01", size=2, income_quartile=2,
                           chosen_contribution_cents=1_000, by=staff, settings=floor)
    session.commit()
    assert means.means_at(session, household_id=h, month="2030-01") is None
    assert audit.events(session, action_prefix="household.") == []


def test_the_size_history_gives_each_month_its_allowance_and_the_household_its_current_size(session: Session, staff: str) -> None:
    rules = make_settings(allowance_rule="per_member", allowance_base_cents=15_000, allowance_per_extra_member_cents=7_500)
    h = _household(session, datetime(2025, 12, 1, tzinfo=UTC), members=1)
    means.record_means(session, household_id=h, effective_month="2026-01", size=2, income_quartile=2,
                       chosen_contribution_cents=2_000, by=staff, os_user="claire", settings=rules)
    means.record_means(session, household_id=h, effective_month="2026-03", size=4, income_quartile=1,
                       chosen_contribution_cents=1_000, by=staff, settings=rules)
    session.commit()
    assert means.means_at(session, household_id=h, month="2025-12") is None
    assert means.means_at(session, household_id=h, month="2026-02").size == 2  # type: ignore[union-attr]
    assert means.means_at(session, household_id=h, month="2027-06").size == 4  # type: ignore[union-attr]
    assert session.get(Household, h).members == 4  # type: ignore[union-attr]  # today is after March 2026
    for month in ("2025-12", "2026-02", "2026-03"):
        allowances.allocate(session, month=month, settings=rules)
    session.commit()
    credited = dict(session.execute(select(LedgerTransfer.reference, LedgerTransfer.amount_cents)
                                    .where(LedgerTransfer.kind == "allowance")).all())  # type: ignore[arg-type]
    # December: no means yet, the household's size (4 now); February: 2; March: 4.
    assert credited == {f"allowance:{h}:2025-12": 37_500, f"allowance:{h}:2026-02": 22_500, f"allowance:{h}:2026-03": 37_500}
    # A size recorded ahead reaches the household when its month is allocated as the current one.
    means.record_means(session, household_id=h, effective_month="2026-04", size=1, income_quartile=1,
                       chosen_contribution_cents=1_000, by=staff, settings=rules)
    session.execute(update(Household).where(Household.id == h).values(members=4))  # type: ignore[arg-type]
    with time_machine.travel(datetime(2026, 4, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris")), tick=False):
        allowances.allocate(session, month="2026-04", settings=rules)
    session.commit()
    session.refresh(household := session.get(Household, h))  # type: ignore[arg-type]
    assert household.members == 1  # type: ignore[union-attr]
    [_, later, first] = audit.events(session, action_prefix="household.means")
    assert '"os_user": "claire"' in (first.detail or "") and '"before": null' in (first.detail or "")
    # Recording the same month again replaces it, and the audit keeps what it was.
    means.record_means(session, household_id=h, effective_month="2026-03", size=5, income_quartile=1,
                       chosen_contribution_cents=1_000, by=staff, settings=rules)
    assert means.means_at(session, household_id=h, month="2026-03").size == 5  # type: ignore[union-attr]
    assert '"size": 4' in (audit.events(session, action_prefix="household.means")[0].detail or "")


def test_a_means_file_with_one_bad_line_records_nothing_and_names_the_line(session: Session, staff: str) -> None:
    h1 = _household(session, datetime(2026, 1, 1, tzinfo=UTC))
    h2 = _household(session, datetime(2026, 1, 1, tzinfo=UTC))
    rules = make_settings(contribution_minimum_cents=500)
    content = ("Foyer;Mois;Nombre de personnes;Quartile de revenu;Cotisation choisie\n"
               f"{h1};2026-01;3;2;12,50\n{h2};2026-01;2;7;10\n9999;2026-01;2;1;10\n").encode("cp1252")
    report = means.import_means(session, data=content, by=staff, settings=rules)
    assert report.recorded == 0 and [line for line, _ in report.errors.errors] == [3, 4]
    assert "quartile" in report.errors.lines()[0].lower()
    assert means.means_at(session, household_id=h1, month="2026-01") is None
    report = means.import_means(session, data=content, by=staff, settings=rules, skip_errors=True)
    assert report.recorded == 1
    assert means.means_at(session, household_id=h1, month="2026-01").chosen_contribution_cents == 1_250  # type: ignore[union-attr]


# Due and received ---------------------------------------------------------------------------------

def test_dues_count_the_joining_month_pro_rata_a_changed_choice_and_cover_the_oldest_months_first(
    session: Session, staff: str
) -> None:
    rules = make_settings()
    # 2026-01-15 23:30 UTC is January 16 in Paris: 16 days of 31 due in January.
    h = _household(session, datetime(2026, 1, 15, 23, 30, tzinfo=UTC))
    on_time = _household(session, datetime(2025, 12, 1, tzinfo=UTC), name="Famille Martin")
    means.record_means(session, household_id=h, effective_month="2026-01", size=2, income_quartile=2,
                       chosen_contribution_cents=3_100, by=staff, settings=rules)
    means.record_means(session, household_id=h, effective_month="2026-03", size=2, income_quartile=1,
                       chosen_contribution_cents=2_000, by=staff, settings=rules)
    means.record_means(session, household_id=on_time, effective_month="2025-12", size=1, income_quartile=3,
                       chosen_contribution_cents=1_000, by=staff, settings=rules)
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=1_600, settings=rules, reference="jan")
    fund.record_contribution(session, household_id=h, month="2026-02", amount_cents=1_000, settings=rules, reference="feb")
    fund.record_contribution(session, household_id=h, month="2026-02", amount_cents=500, settings=rules, reference="typo")
    for month in ("2025-12", "2026-01", "2026-02", "2026-03"):
        fund.record_contribution(session, household_id=on_time, month=month, amount_cents=1_000, settings=rules, reference=f"m{month}")
    session.commit()
    corrections.reverse(session, reference="contribution:typo", by=staff, reason="saisie en double")
    session.commit()
    rows = {row.household_id: row for row in contributions.dues(session, month="2026-03", settings=rules)}
    late = rows[h]
    assert (late.due_cents, late.received_cents) == (1_600 + 3_100 + 2_000, 2_600)  # the reversed 5 EUR is not received
    assert (late.behind_cents, late.months_behind, late.first_month_behind) == (4_100, 2, "2026-02")
    assert (late.chosen_cents, late.indicative_cents, late.joined_month) == (2_000, 1_000, "2026-01")
    assert (rows[on_time].behind_cents, rows[on_time].months_behind) == (0, 0)
    assert [row.household_id for row in contributions.behind(session, month="2026-03", settings=rules)] == [h]
    # As of January the household is up to date: February's due is not counted yet.
    assert contributions.dues(session, month="2026-01", settings=rules)[-1].behind_cents == 0
    # A household that joins after the month asked for owes nothing for it and is not listed.
    assert h not in {row.household_id for row in contributions.dues(session, month="2025-12", settings=rules)}


def test_a_household_that_left_owes_nothing_after_its_leaving_month(session: Session, staff: str) -> None:
    rules = make_settings()
    h = _household(session, datetime(2025, 12, 1, tzinfo=UTC))
    means.record_means(session, household_id=h, effective_month="2025-12", size=2, income_quartile=2,
                       chosen_contribution_cents=1_000, by=staff, settings=rules)
    members.leave_household(session, household_id=h, end_date=date(2026, 2, 10), by=staff,
                            now=datetime(2026, 2, 1, tzinfo=UTC))
    session.commit()
    [row] = [r for r in contributions.dues(session, month="2026-06", settings=rules) if r.household_id == h]
    assert (row.due_cents, row.months_behind, row.first_month_behind) == (3_000, 3, "2025-12")  # December to February


def test_a_household_behind_keeps_its_whole_allowance(session: Session, staff: str) -> None:
    rules = make_settings(allowance_flat_cents=10_000)
    behind = _household(session, datetime(2025, 12, 1, tzinfo=UTC))
    paid = _household(session, datetime(2025, 12, 1, tzinfo=UTC))
    for h in (behind, paid):
        means.record_means(session, household_id=h, effective_month="2025-12", size=2, income_quartile=4,
                           chosen_contribution_cents=8_000, by=staff, settings=rules)
    for month in ("2025-12", "2026-01"):
        fund.record_contribution(session, household_id=paid, month=month, amount_cents=8_000, settings=rules, reference=f"p{month}")
        allowances.allocate(session, month=month, settings=rules)
    session.commit()
    assert contributions.behind(session, month="2026-01", settings=rules)[0].behind_cents == 16_000
    assert ledger.balance_cents(session, code=ledger.member_code(behind)) == ledger.balance_cents(session, code=ledger.member_code(paid))
    assert ledger.balance_cents(session, code=ledger.member_code(behind)) == 15_000  # 100 + 100, the cap on the carry-over is 50


# The matching claim -------------------------------------------------------------------------------

def test_the_matching_claim_adds_up_with_the_ledger_and_its_files_are_safe(session: Session, staff: str, tmp_path: Path) -> None:
    rules = make_settings(matching_basis_points=5_000, platform_fee_basis_points=150)
    households = [_household(session, datetime(2025, 12, 1, tzinfo=UTC)) for _ in range(3)]
    fund.record_contribution(session, household_id=households[0], month="2026-03", amount_cents=2_501, settings=rules, reference="=SUM(A1)")
    fund.record_contribution(session, household_id=households[1], month="2026-03", amount_cents=1_000, settings=rules, reference="double")
    fund.record_contribution(session, household_id=households[1], month="2026-04", amount_cents=7_000, settings=rules, reference="avril")
    report = fund.import_contributions(session, content=f"household_id;month;amount_eur;reference\n{households[2]};2026-03;33,33;PF-1\n",
                                       settings=rules)
    assert report.imported == 1
    session.commit()
    corrections.reverse(session, reference="contribution:double", by=staff, reason="saisie en double")
    fund.record_matching(session, month="2026-03", settings=rules)
    session.commit()
    claim = matching_claim.claim(session, month="2026-03", settings=rules)
    # Recomputed from the ledger's transfers alone: the month's contributions not reversed, its matching.
    reversed_ids = {int(r.split(":")[1]) for r in session.execute(select(LedgerTransfer.reference)
                                                                   .where(LedgerTransfer.kind == "reversal")).scalars()}
    march = session.execute(select(LedgerTransfer.id, LedgerTransfer.amount_cents).join(
        Contribution, Contribution.reference == LedgerTransfer.reference).where(  # type: ignore[arg-type]
        LedgerTransfer.kind == "contribution", Contribution.month == "2026-03")).all()  # type: ignore[arg-type]
    assert claim.contributions_cents == sum(cents for tid, cents in march if tid not in reversed_ids) == 2_501 + 3_333
    matched = session.execute(select(func.sum(LedgerTransfer.amount_cents)).where(
        LedgerTransfer.kind == "matching", LedgerTransfer.reference.like("matching:2026-03:%"))).scalar_one()  # type: ignore[attr-defined]
    assert claim.matching_cents == claim.matching_posted_cents == matched == (2_501 + 3_333) // 2
    assert [line.reference for line in claim.lines] == ["=SUM(A1)", "PF-1"]
    csv_path, pdf_path = matching_claim.write(claim, tmp_path / "demandes", caisse_name="Caisse de Montpellier")
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[2][1] == "'=SUM(A1)" and rows[2][3] == "25,01"  # a formula stays text; a decimal comma
    assert rows[-3][-1] == "58,34" and rows[-2][-1] == "29,17"
    text_of_pdf = "".join(page.extract_text() for page in pypdf.PdfReader(pdf_path).pages)
    assert "58,34" in text_of_pdf and "29,17" in text_of_pdf and "PF-1" in text_of_pdf and "50 %" in text_of_pdf
    assert matching_claim.claim(session, month="2026-04", settings=rules).contributions_cents == 7_000


def test_a_long_claim_turns_pages_and_keeps_every_line_and_the_total() -> None:
    from datetime import date

    lines = [matching_claim.ClaimLine(n, f"PF-{n:04d}", date(2026, 3, 1 + n % 28), 1_000 + n) for n in range(150)]
    claim = matching_claim.MatchingClaim(month="2026-03", basis_points=3_333, lines=lines, matching_posted_cents=0)
    pages = pypdf.PdfReader(io.BytesIO(matching_claim.pdf_bytes(claim, caisse_name="Caisse d'Œrsted"))).pages
    text_of_pdf = "".join(page.extract_text() for page in pages)
    assert len(pages) >= 3 and all(f"PF-{n:04d}" in text_of_pdf for n in range(150))
    total = sum(line.amount_cents for line in lines)
    assert euros(total) in text_of_pdf and euros(total * 3_333 // 10_000) in text_of_pdf and "33,33 %" in text_of_pdf


# Months in Paris time -----------------------------------------------------------------------------

@pytest.mark.parametrize(("instant", "month"), [
    (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "2026-03"),  # March 29 00:30, before the clocks go forward
    (datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "2026-03"),  # March 31 23:59 summer time
    (datetime(2026, 3, 31, 22, 0, tzinfo=UTC), "2026-04"),  # April 1 00:00 summer time
    (datetime(2026, 10, 31, 22, 59, tzinfo=UTC), "2026-10"),  # October 31 23:59 winter time
    (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), "2026-11"),  # November 1 00:00
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "2027-01"),
])
def test_a_month_ends_at_midnight_in_paris_on_both_sides_of_the_clock_changes(instant: datetime, month: str) -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Paris")
    assert str(Month.of(instant, zone)) == month
    period = Month.parse(month)
    assert period.starts_at(zone) <= instant < period.ends_at(zone)


def test_allowances_and_dues_cut_the_month_at_midnight_in_paris(session: Session, staff: str) -> None:
    rules = make_settings(allowance_flat_cents=31_000)
    march_last = _household(session, datetime(2026, 3, 31, 21, 30, tzinfo=UTC))  # 23:30 on March 31 in Paris
    april_first = _household(session, datetime(2026, 3, 31, 22, 30, tzinfo=UTC))  # 00:30 on April 1 in Paris
    october_last = _household(session, datetime(2026, 10, 31, 22, 30, tzinfo=UTC))  # 23:30 on October 31
    november_first = _household(session, datetime(2026, 10, 31, 23, 30, tzinfo=UTC))  # 00:30 on November 1
    for month in ("2026-03", "2026-04", "2026-10", "2026-11"):
        allowances.allocate(session, month=month, settings=rules)
    session.commit()
    credited = dict(session.execute(select(LedgerTransfer.reference, LedgerTransfer.amount_cents)
                                    .where(LedgerTransfer.kind == "allowance")).all())  # type: ignore[arg-type]
    assert credited[f"allowance:{march_last}:2026-03"] == 1_000  # one day of 31
    assert f"allowance:{april_first}:2026-03" not in credited and credited[f"allowance:{april_first}:2026-04"] == 31_000
    assert credited[f"allowance:{october_last}:2026-10"] == 1_000
    assert f"allowance:{november_first}:2026-10" not in credited and credited[f"allowance:{november_first}:2026-11"] == 31_000
    joined = {row.household_id: row.joined_month for row in contributions.dues(session, month="2026-11", settings=rules)}
    assert joined == {march_last: "2026-03", april_first: "2026-04", october_last: "2026-10", november_first: "2026-11"}


def test_payments_are_budgeted_in_their_paris_month_across_the_clock_change(session: Session) -> None:
    rules = make_settings()
    market = Market(session, rules)
    before = int(datetime(2026, 3, 31, 21, 59, tzinfo=UTC).timestamp())  # 23:59 March 31, summer time
    after = int(datetime(2026, 3, 31, 22, 0, tzinfo=UTC).timestamp())  # April 1 00:00
    market.pay(0, 700, time=before)
    market.pay(0, 300, time=after)
    [march, april] = fund.budgets(session, months=["2026-03", "2026-04"], settings=rules)
    assert (march.payments_cents, april.payments_cents) == (700, 300)


# Closed months --------------------------------------------------------------------------------------

def test_a_record_arriving_after_its_month_is_closed_is_counted_in_the_month_it_arrived(session: Session) -> None:
    rules = make_settings()
    market = Market(session, rules)
    tapped = int(datetime(2026, 3, 20, 10, 0, tzinfo=UTC).timestamp())
    market.pay(0, 1_000, time=tapped)  # arrived on March 25: before the closing
    market.pay(0, 400, time=tapped + 60)  # arrived on April 3: after
    market.upload(0, [market.chains[0].void(2, time=tapped + 120)])  # its void, on April 3 too
    market.pay(1, 250, time=tapped)  # arrived on May 2, April closed meanwhile: counted in May
    arrivals = {(market.chains[0].terminal_id, 1): datetime(2026, 3, 25, tzinfo=UTC),
                (market.chains[0].terminal_id, 2): datetime(2026, 4, 3, 9, 0, tzinfo=UTC),
                (market.chains[0].terminal_id, 3): datetime(2026, 4, 3, 9, 0, tzinfo=UTC),
                (market.chains[1].terminal_id, 1): datetime(2026, 5, 2, 9, 0, tzinfo=UTC)}
    for (terminal, seq), arrived in arrivals.items():
        session.execute(update(TransactionRecord).where(TransactionRecord.terminal_id == terminal, TransactionRecord.seq == seq)  # type: ignore[arg-type]
                        .values(received_at=arrived))
    session.add(AllowanceMonth(month="2026-03", closed_at=datetime(2026, 4, 2, 8, 0, tzinfo=UTC)))
    session.add(AllowanceMonth(month="2026-04", closed_at=datetime(2026, 5, 1, 8, 0, tzinfo=UTC)))
    session.commit()
    [march, april, may] = fund.budgets(session, months=["2026-03", "2026-04", "2026-05"], settings=rules)
    assert (march.payments_cents, march.voids_cents, march.spent_cents) == (1_000, 0, 1_000)
    assert (april.payments_cents, april.voids_cents, april.spent_cents) == (400, 400, 0)
    assert may.payments_cents == 250
    assert march.reconciled and may.reconciled, march.differences
    assert_ledger_invariants(session)


def test_a_contribution_for_a_closed_month_is_counted_in_the_next_open_month_once(session: Session) -> None:
    rules = make_settings()
    h = _household(session, datetime(2026, 1, 1, tzinfo=UTC))
    fund.record_contribution(session, household_id=h, month="2026-03", amount_cents=1_500, settings=rules, reference="mars")
    allowances.close_month(session, month="2026-03")
    allowances.close_month(session, month="2026-04")
    assert fund.record_contribution(session, household_id=h, month="2026-03", amount_cents=2_000, settings=rules, reference="tard")
    assert not fund.record_contribution(session, household_id=h, month="2026-03", amount_cents=2_000, settings=rules, reference="tard")
    with pytest.raises(Conflict):
        fund.record_contribution(session, household_id=h, month="2026-03", amount_cents=2_100, settings=rules, reference="tard")
    session.commit()
    assert session.execute(select(Contribution.month).where(Contribution.reference == "contribution:tard")).scalar_one() == "2026-05"
    assert matching_claim.claim(session, month="2026-03", settings=rules).contributions_cents == 1_500
    assert matching_claim.claim(session, month="2026-05", settings=rules).contributions_cents == 2_000
    assert fund.budget(session, month="2026-05", settings=rules).reconciled


# The year's budget and its costs ----------------------------------------------------------------------

def test_the_year_budget_reads_past_months_from_the_ledger_and_forecasts_the_rest(session: Session, staff: str) -> None:
    rules = make_settings(allowance_flat_cents=10_000, matching_basis_points=5_000, platform_fee_basis_points=200)
    households = [_household(session, datetime(2025, 12, 1, tzinfo=UTC)) for _ in range(2)]
    for h, chosen in zip(households, (2_000, 6_000), strict=True):
        means.record_means(session, household_id=h, effective_month="2026-01", size=2, income_quartile=2,
                           chosen_contribution_cents=chosen, by=staff, settings=rules)
    for month in ("2026-01", "2026-02"):
        allowances.allocate(session, month=month, settings=rules)
        fund.record_contribution(session, household_id=households[0], month=month, amount_cents=2_000, settings=rules,
                                 reference=f"c{month}")
        fund.record_matching(session, month=month, settings=rules)
    assert costs.record_cost(session, month="2026-01", amount_cents=33_333, category="logiciel", memo="maintenance",
                             reference="F-1", by=staff)
    assert not costs.record_cost(session, month="2026-01", amount_cents=33_333, category="logiciel", memo="maintenance",
                                 reference="F-1", by=staff)
    with pytest.raises(InvalidInput):
        costs.record_cost(session, month="2026-01", amount_cents=100, category="cadeaux", memo="?", reference="F-2", by=staff)
    fund.record_fee(session, month="2026-02", amount_cents=500, memo="sans catégorie", reference="F-3")
    fund.record_grant(session, month="2026-02", amount_cents=100_000, source="Fondation", reference="G-1")
    session.commit()
    result = year_budget(session, year=2026, settings=rules, now=datetime(2026, 3, 10, tzinfo=UTC))
    assert result.actual_months == ["2026-01", "2026-02"] and len(result.forecast_months) == 10
    lines = {line.key: line for _, line in result.lines() if line is not None}
    assert (lines["allowances"].actual_cents, lines["allowances"].forecast_cents) == (40_000, 10 * 20_000)
    assert (lines["contributions"].actual_cents, lines["contributions"].forecast_cents) == (4_000, 10 * 8_000)
    assert (lines["matching"].actual_cents, lines["matching"].forecast_cents) == (2_000, 10 * 4_000)
    assert (lines["grants"].actual_cents, lines["grants"].forecast_cents) == (100_000, 0)
    assert (lines["logiciel"].actual_cents, lines["logiciel"].forecast_cents) == (33_333, 10 * (33_333 // 2))
    assert (lines["autre"].actual_cents, lines["plateforme"].forecast_cents) == (500, 10 * 160)
    # February gave back what each household held beyond the 50 EUR it may carry over.
    assert (lines["expired"].actual_cents, lines["expired"].forecast_cents) == (-2 * 5_000, 0)
    assert lines["remaining"].total_cents == (4_000 + 80_000 + 2_000 + 40_000 + 100_000 - 40_000 - 200_000 + 10_000
                                              - 33_333 - 10 * 16_666 - 500 - 10 * 250 - 1_600)
    assert result.differences == ()
    [fee] = audit.events(session, subjects=["month:2026-01"], action_prefix="fund.fee")
    assert fee.actor == staff and '"reference": "fee:2026-01:F-1"' in (fee.detail or "") and "(logiciel)" in (fee.detail or "")
    # The console passes the months it read for its period: the same year, without reading them again.
    known = fund.budgets(session, months=["2025-11", "2025-12", "2026-01"], settings=rules)
    again = year_budget(session, year=2026, settings=rules, now=datetime(2026, 3, 10, tzinfo=UTC), known=known)
    assert [(line.key, line.actual_cents, line.forecast_cents) for _, line in again.lines() if line] == [
        (line.key, line.actual_cents, line.forecast_cents) for _, line in result.lines() if line]


# Command line ------------------------------------------------------------------------------------------

def test_the_commands_record_means_list_who_is_behind_write_the_claim_and_simulate_a_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app
    from caisse.db import make_engine, session_factory, upgrade

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_CONTRIBUTION_MINIMUM_CENTS", "500")
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as session:
        _create_staff(session, monkeypatch)
        h = _household(session, datetime(2026, 1, 1, tzinfo=UTC), name="Famille Roux")
    engine.dispose()
    runner = CliRunner()
    base = ["cotisations", "moyens", str(h), "--mois", "2026-01", "--taille", "3", "--quartile", "2", "--by", STAFF]
    refused = runner.invoke(app, [*base, "--cotisation", "4,99"])
    assert refused.exit_code == 1 and "minimum" in refused.stderr and "Traceback" not in refused.output
    assert runner.invoke(app, [*base, "--cotisation", "20,00"]).exit_code == 0
    assert runner.invoke(app, ["fund", "contribute", "--household", str(h), "--month", "2026-01", "--amount", "20", "--by", STAFF]).exit_code == 0
    late = runner.invoke(app, ["cotisations", "retards", "--mois", "2026-03"])
    assert late.exit_code == 0 and f"{h}\tFamille Roux\t20,00\t25,00\t60,00\t20,00\t40,00\t2\t2026-02" in late.stdout
    assert "Les allocations restent versées en entier." in late.stderr
    assert runner.invoke(app, ["fund", "match", "--month", "2026-01", "--by", STAFF]).exit_code == 0
    written = runner.invoke(app, ["cotisations", "demande-abondement", "--mois", "2026-01", "--dossier", str(tmp_path / "d")])
    assert written.exit_code == 0 and "abondement demandé 10,00 EUR" in written.stderr
    assert (tmp_path / "d" / "demande-abondement-2026-01.pdf").read_bytes().startswith(b"%PDF")
    cost = ["annee", "frais", "--mois", "2026-01", "--montant", "12,34", "--categorie", "banque", "--libelle", "tenue de compte",
            "--reference", "B1", "--by", STAFF]
    assert runner.invoke(app, cost).exit_code == 0
    year = runner.invoke(app, ["annee", "budget", "--annee", "2026"])
    assert year.exit_code == 0, year.output
    assert re.search(r"Frais bancaires\s+12,34\s+\S+\s+", year.stdout)
    simulated = runner.invoke(app, ["annee", "simuler", "--foyers", "8", "--graine", "3"])
    assert simulated.exit_code == 0, simulated.output
    figures = {label.strip(): int(amount.replace("\u202f", "").replace(",", ""))
               for label, amount in re.findall(r"^  (\S.*?)\s{2,}(-?[\d\u202f]+,\d\d) €$", simulated.stdout, re.M)}
    assert figures["Allocations créditées aux foyers"] == 8 * 10_000 * 12
    assert 0 <= figures["Cotisations des foyers"] // 2 - figures["Abondement de l'État"] <= 12  # 50 %, rounded down each month
    assert figures["Reste (recettes − allocations nettes − frais)"] == (
        figures["Total des recettes"] - figures["Allocations créditées aux foyers"] - figures["Total des frais"])
    assert "conforme au grand livre : oui" in simulated.stdout
