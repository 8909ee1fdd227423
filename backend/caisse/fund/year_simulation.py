"""A year of the fund, simulated on a scratch database through the real services (`caisse annee
simuler`): households with means across the four income quartiles, the contributions they choose
and pay (some months missed), twelve months of allowances, the State's matching, the costs
(software, bank fees, the payment platform's percentage, staff time) and donors' grants; then the
year's budget (caisse.fund.year_budget) read back from the ledger, reconciled.

Spending is not simulated: every allowance counts as spent (none expires). Seeded: the same
options give the same figures. The default costs are the orders of magnitude the
Montpellier caisse reported (4 000 EUR of software maintenance and 5 000 EUR of bank fees a year);
staff time and grants have no reported figure and are options.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.fund import allowances, costs
from caisse.fund import service as fund
from caisse.fund.contributions import behind
from caisse.fund.year_budget import YearBudget, year_budget
from caisse.members import households as household_service
from caisse.members import means
from caisse.models import Household, Role, UnspentPolicy
from caisse.months import Month
from caisse.staff import accounts

ACTOR = "simulation@caisse.invalid"


@dataclass(frozen=True, slots=True)
class YearConfig:
    households: int = 200
    year: int = 2026
    seed: int = 1
    missed_share_bp: int = 500  # each household misses a month's contribution with this chance
    software_cents_per_year: int = 400_000  # maintenance (Montpellier, 2023)
    bank_fees_cents_per_year: int = 500_000  # bank fees (Montpellier)
    staff_cents_per_month: int = 0  # staff time paid from the fund
    grants_cents_per_month: int = 0  # donors
    platform_fee_basis_points: int = 150  # the payment platform's percentage on contributions
    matching_basis_points: int = 5_000


@dataclass(frozen=True, slots=True)
class YearResult:
    config: YearConfig
    budget: YearBudget
    households_behind: int
    behind_cents: int
    reconciled: bool


def simulate_year(config: YearConfig) -> YearResult:
    with tempfile.TemporaryDirectory(prefix="caisse-annee-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'annee.db'}")
        try:
            upgrade(engine)
            # Spending is not simulated: every allowance counts as spent, none expires.
            settings = Settings(database_url=str(engine.url), matching_basis_points=config.matching_basis_points,
                                platform_fee_basis_points=config.platform_fee_basis_points, contribution_minimum_cents=100,
                                allowance_unspent=UnspentPolicy.CARRY_OVER, allowance_carry_over_cap_cents=100_000_000)
            with session_factory(engine)() as session:
                return _run(session, config, settings)
        finally:
            engine.dispose()


def _run(session: Session, config: YearConfig, settings: Settings) -> YearResult:
    rng = random.Random(config.seed)
    zone = ZoneInfo(settings.settlement_timezone)
    accounts.create_user(session, email=ACTOR, password=f"simulation-{rng.getrandbits(64):x}", role=Role.ADMIN)
    start = Month(config.year, 1)
    joined = start.starts_at(zone) - timedelta(days=1)  # registered the day before the year starts
    households = []
    for index in range(config.households):
        household = household_service.create_household(session, name=f"Foyer {index + 1}", members=1, zone="Métropole")
        assert household.id is not None
        quartile = index % 4 + 1  # as many households in each quartile, as the sortition drew them
        size = rng.choice((1, 1, 2, 2, 3, 4, 5, 6))
        suggested = settings.contribution_by_quartile_cents[quartile - 1]
        chosen = max(settings.contribution_minimum_cents, suggested * rng.choice((50, 80, 100, 100, 100, 120, 150)) // 100)
        means.record_means(session, household_id=household.id, effective_month=str(start), size=size, income_quartile=quartile,
                           chosen_contribution_cents=chosen, by=ACTOR, settings=settings)
        households.append((household.id, chosen))
    session.execute(update(Household).values(created_at=joined.astimezone(UTC)))
    for offset in range(12):
        month = start.shifted(offset)
        allowances.allocate(session, month=str(month), settings=settings)
        paid = 0
        for household_id, chosen in households:
            if chosen > 0 and rng.randrange(10_000) >= config.missed_share_bp:
                fund.record_contribution(session, household_id=household_id, month=str(month), amount_cents=chosen,
                                         settings=settings, reference=f"SIM-{month}-{household_id}")
                paid += chosen
        fund.record_matching(session, month=str(month), settings=settings)
        monthly_costs = {
            "plateforme": paid * settings.platform_fee_basis_points // 10_000,
            "logiciel": _twelfth(config.software_cents_per_year, offset),
            "banque": _twelfth(config.bank_fees_cents_per_year, offset),
            "personnel": config.staff_cents_per_month,
        }
        for category, cents in monthly_costs.items():
            if cents > 0:
                costs.record_cost(session, month=str(month), amount_cents=cents, category=category,
                                  memo=costs.CATEGORIES[category], reference=f"SIM-{category}", by=ACTOR)
        if config.grants_cents_per_month > 0:
            fund.record_grant(session, month=str(month), amount_cents=config.grants_cents_per_month,
                              source="Mécènes (simulation)", reference="SIM-don")
        session.commit()
    after = start.shifted(12).starts_at(zone)
    budget = year_budget(session, year=config.year, settings=settings, now=after)
    late = behind(session, month=str(start.shifted(11)), settings=settings)
    return YearResult(config=config, budget=budget, households_behind=len(late),
                      behind_cents=sum(d.behind_cents for d in late), reconciled=not budget.differences)


def _twelfth(yearly_cents: int, month_index: int) -> int:
    """A yearly amount by month, December taking the cents left over: the twelve add up to it."""
    return yearly_cents // 12 + (yearly_cents % 12 if month_index == 11 else 0)


def french_report(result: YearResult) -> list[str]:
    """The year's figures as staff read them."""
    from caisse.money import euros

    budget, config = result.budget, result.config
    lines = [f"Simulation de l'année {config.year} : {config.households} foyers (graine {config.seed})"]
    for label, line in budget.lines():
        lines.append(f"\n{label}" if line is None else f"  {label:<58}{euros(line.total_cents, grouped=True):>16} €")
    if budget.remaining() < 0:
        lines.append(f"  à trouver auprès de donateurs pour équilibrer l'année : {euros(-budget.remaining(), grouped=True)} €")
    lines.append(f"  foyers en retard de cotisation en décembre : {result.households_behind},"
                 f" pour {euros(result.behind_cents, grouped=True)} € (les allocations restent versées)")
    lines.append("  conforme au grand livre : " + ("oui" if result.reconciled else "non : " + " ; ".join(budget.differences)))
    return lines
