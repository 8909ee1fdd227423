"""Budget for the committee, month by month (caisse.fund.service.budgets): contributions, matching funds,
grants, allowances and manual credits, spending (voids and rejections deducted), payouts, the
closing balances, and every difference with the ledger. Aggregates only."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse.config import Settings
from caisse.console.charts import Chart, Series
from caisse.console.deps import DbSession, require_page
from caisse.console.templating import render
from caisse.errors import InvalidInput, french
from caisse.fund import service as fund
from caisse.fund import year_budget
from caisse.money import euros
from caisse.months import Month
from caisse.reports import flows

router = APIRouter(prefix="/budget", dependencies=[Depends(require_page("budget"))])
DEFAULT_MONTHS = 12

# (field of fund.Budget, French label): what comes in, then what goes out.
INCOME = (("contributions_cents", "Cotisations"), ("matching_cents", "Abondements"), ("grants_cents", "Subventions"))
OUTGOINGS = (("allowances_cents", "Allocations versées"), ("credits_cents", "Crédits manuels"),
             ("spent_cents", "Dépenses des membres"), ("payouts_cents", "Virements aux commerçants"), ("fees_cents", "Frais"))
# Shown in the table only: what makes up spending, and the closing balances.
DETAILS = (("voids_cents", "Annulations"), ("rejected_cents", "Rejets après vérification"),
           ("held_cents", "Dont retenus"), ("members_balance_cents", "Solde des foyers"),
           ("vendors_owed_cents", "Dû aux commerçants"))


@router.get("")
def budget(request: Request, session: DbSession, du: str = "", au: str = "", annee: str = "") -> Response:
    settings: Settings = request.app.state.settings
    first, last = period(du, au, timezone=settings.settlement_timezone, months=DEFAULT_MONTHS)
    try:
        wanted = _year(annee, settings=settings)
        months = [str(m) for m in flows.month_span(first=first, last=last)]
    except InvalidInput as error:
        return render(request, "budget/index.html", title="Budget", error=french(error), du=du, au=au, rows=[], charts=[],
                      year=None, annee=annee)
    rows = fund.budgets(session, months=months, settings=settings)
    # The period's months read above are not read again for the year (by default they cover it).
    year = year_budget.year_budget(session, year=wanted, settings=settings, known=rows)
    charts = [
        (Chart("budget-flux", "Entrées et sorties par mois", "Cotisations, abondements et subventions reçus ; allocations,"
               " dépenses et virements, en euros, mois par mois.", months,
               [Series(label, [getattr(row, key) for row in rows]) for key, label in INCOME + OUTGOINGS],
               value_format=euros, axis_format=whole_euros), "bars"),
        (Chart("budget-solde", "Solde du fonds en fin de mois", "Euros détenus par la caisse à la fin de chaque mois.", months,
               [Series("Solde du fonds", [row.fund_balance_cents for row in rows])], value_format=euros, axis_format=whole_euros),
         "lines"),
    ]
    views = (("Entrées", INCOME), ("Sorties", OUTGOINGS), ("Soldes et détail", DETAILS))
    return render(request, "budget/index.html", title="Budget", error=None, du=first, au=last, rows=rows, charts=charts,
                  views=views, differences=rows[0].differences if rows else (), year=year,
                  annee=str(year.year), matching_rate=f"{euros(settings.matching_basis_points)} %".replace(",00 %", " %"))


def _year(text: str, *, settings: Settings) -> int:
    """The fund's year asked for (caisse.fund.year_budget): this year by default."""
    if text and not (text.isdigit() and len(text) == 4):
        raise InvalidInput("invalid_year", f"a year is written with four digits, not {text!r}")
    if text and not 2000 <= int(text) <= 2100:
        raise InvalidInput("invalid_year", f"a year is 2000 to 2100, not {text}")
    return int(text) if text else datetime.now(ZoneInfo(settings.settlement_timezone)).year


def period(first: str, last: str, *, timezone: str, months: int) -> tuple[str, str]:
    """The months asked for, or the `months` months ending with the current one."""
    if first and last:
        return first, last
    now = Month.parse(datetime.now(ZoneInfo(timezone)).strftime("%Y-%m"))
    index = now.year * 12 + now.month - 1 - (months - 1)
    return first or f"{index // 12:04d}-{index % 12 + 1:02d}", last or str(now)


def whole_euros(cents: int) -> str:
    """Axis labels: whole euros with grouped thousands (the ticks are round)."""
    return euros(cents, grouped=True).removesuffix(",00") + " €"
