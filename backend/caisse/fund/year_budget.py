"""The fund's year as the caisse budgets it (docs/settlement.md, "The year's budget"): allowances
(100 MonA x households x months at Montpellier), contributions, the State's matching, donors'
grants, the costs by category, and what remains. Months before the current one (Paris time) are
read from the ledger (caisse.fund.service.budgets, reconciled; caisse.fund.costs for the categories); the
current month and the rest of the year are a forecast from today's households:

- allowances: each household registered now, by the rule in force that month and its size;
- contributions: the sum of the contributions households chose (caisse.members.means);
- matching: the contributions forecast times the matching rate;
- grants: none (a grant counts when it is received);
- costs: the payment platform's percentage on the contributions forecast; each other category
  at its monthly average over the months of the year already read (none before any).

What remains = contributions + matching + grants - allowances + unspent allowance returned to the
fund (caisse.fund.allowances' expiry; none forecast) - costs. Allowances are what households were
credited (monthly and by hand): what the caisse commits to pay vendors in euros.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.errors import InvalidInput
from caisse.fund import costs
from caisse.fund import service as fund
from caisse.fund.allowances import monthly_amount_cents, rule_in_force
from caisse.members import means
from caisse.models import Household
from caisse.months import Month

INCOME = (("contributions", "Cotisations des foyers"), ("matching", "Abondement de l'État"), ("grants", "Dons et subventions"))
ALLOWANCES = ("allowances", "Allocations créditées aux foyers")
EXPIRED = ("expired", "Reliquats non dépensés revenus au fonds (en déduction)")


@dataclass(slots=True)
class YearLine:
    key: str
    label: str
    actual_cents: int = 0
    forecast_cents: int = 0

    @property
    def total_cents(self) -> int:
        return self.actual_cents + self.forecast_cents


@dataclass(slots=True)
class YearBudget:
    year: int
    actual_months: list[str]
    forecast_months: list[str]
    households: int  # registered now: what the forecast is made of
    income: list[YearLine]
    allowances: YearLine
    expired: YearLine  # negative: unspent allowance back in the allowance fund
    costs: list[YearLine]
    differences: tuple[str, ...] = ()  # the ledger's, from caisse.fund.service.budgets
    by_month: list[tuple[str, bool, dict[str, int]]] = field(default_factory=list)  # (month, actual?, {key: cents})

    def _sum(self, lines: list[YearLine], attribute: str) -> int:
        return sum(getattr(line, attribute) for line in lines)

    def remaining(self, attribute: str = "total_cents") -> int:
        return (self._sum(self.income, attribute) - getattr(self.allowances, attribute) - getattr(self.expired, attribute)
                - self._sum(self.costs, attribute))

    def lines(self) -> list[tuple[str, YearLine | None]]:
        """Every line in reading order, with section titles (None)."""
        totals = [YearLine("income_total", "Total des recettes", self._sum(self.income, "actual_cents"),
                           self._sum(self.income, "forecast_cents")),
                  YearLine("costs_total", "Total des frais", self._sum(self.costs, "actual_cents"),
                           self._sum(self.costs, "forecast_cents")),
                  YearLine("remaining", "Reste (recettes − allocations nettes − frais)", self.remaining("actual_cents"),
                           self.remaining("forecast_cents"))]
        return [("Recettes", None), *((line.label, line) for line in self.income), (totals[0].label, totals[0]),
                ("Dépenses", None), (self.allowances.label, self.allowances), (self.expired.label, self.expired),
                *((line.label, line) for line in self.costs),
                (totals[1].label, totals[1]), ("Solde", None), (totals[2].label, totals[2])]


def year_budget(session: Session, *, year: int, settings: Settings, now: datetime | None = None,
                known: Sequence[fund.Budget] = ()) -> YearBudget:
    """The year's budget; `known` months already read with fund.budgets (the console's period) are
    not read again, since a pass over the journal is the slow part."""
    if not 2000 <= year <= 2100:
        raise InvalidInput("invalid_year", f"a year is 2000 to 2100, not {year}")
    zone = ZoneInfo(settings.settlement_timezone)
    current = Month.of(now or datetime.now(zone), zone)
    months = [Month(year, m) for m in range(1, 13)]
    actual = [str(m) for m in months if m < current]
    forecast = [str(m) for m in months if not m < current]
    income = [YearLine(key, label) for key, label in INCOME]
    allowances, expired = YearLine(*ALLOWANCES), YearLine(*EXPIRED)
    cost_lines = {key: YearLine(key, label) for key, label in costs.CATEGORIES.items()}
    result = YearBudget(year=year, actual_months=actual, forecast_months=forecast, households=0, income=income,
                        allowances=allowances, expired=expired, costs=list(cost_lines.values()))
    if actual:
        read = {book.month: book for book in known if book.month in actual}
        missing = [month for month in actual if month not in read]
        read |= {book.month: book for book in (fund.budgets(session, months=missing, settings=settings) if missing else [])}
        books = [read[month] for month in actual]
        fees = costs.by_category(session, months=actual)
        result.differences = books[0].differences
        for book in books:
            month = {"contributions": book.contributions_cents, "matching": book.matching_cents, "grants": book.grants_cents,
                     "allowances": book.allowances_cents + book.credits_cents, "expired": -book.expired_cents,
                     **fees[book.month]}
            result.by_month.append((book.month, True, month))
    if forecast:
        monthly = _forecast(session, months=[Month.parse(m) for m in forecast], settings=settings, result=result)
        result.by_month += [(m, False, figures) for m, figures in monthly]
    for _, is_actual, figures in result.by_month:
        attribute = "actual_cents" if is_actual else "forecast_cents"
        for line in [*income, allowances, expired, *cost_lines.values()]:
            setattr(line, attribute, getattr(line, attribute) + figures.get(line.key, 0))
    return result


def _forecast(session: Session, *, months: list[Month], settings: Settings,
              result: YearBudget) -> list[tuple[str, dict[str, int]]]:
    households = session.execute(select(col(Household.id), col(Household.members))).all()
    result.households = len(households)
    history = means.history(session)
    averages = {key: 0 for key in costs.CATEGORIES}
    if result.by_month:
        for key in averages:
            averages[key] = sum(figures.get(key, 0) for _, _, figures in result.by_month) // len(result.by_month)
    forecast = []
    zone = ZoneInfo(settings.settlement_timezone)
    for month in months:
        rule = rule_in_force(session, month=str(month), settings=settings)
        in_force = [(members, means.in_force(history.get(household_id, []), str(month))) for household_id, members in households]
        contributions = sum(row.chosen_contribution_cents or 0 for _, row in in_force if row is not None)
        average = contributions // len(households) if households else 0
        # A full month for each household already there: joined at the month's start.
        allowances = sum(monthly_amount_cents(rule=rule, members=row.size if row else members, joined=month.starts_at(zone),
                                              month=month, average_contribution_cents=average) for members, row in in_force)
        figures = {"contributions": contributions, "matching": contributions * settings.matching_basis_points // 10_000,
                   "allowances": allowances, **{key: cents for key, cents in averages.items() if key != "plateforme"},
                   "plateforme": contributions * settings.platform_fee_basis_points // 10_000}
        forecast.append((str(month), figures))
    return forecast
