"""Flows for the committee (caisse.reports.flows): where the money is spent, by vendor kind and by
neighbourhood, month over month; the share reaching producers; active members per vendor."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse.config import Settings
from caisse.console.charts import Chart, Series
from caisse.console.deps import DbSession, require_page
from caisse.console.routes.budget import period, whole_euros
from caisse.console.templating import render
from caisse.errors import InvalidInput, french
from caisse.models import VendorKind
from caisse.money import euros
from caisse.reports import flows

router = APIRouter(prefix="/flows", dependencies=[Depends(require_page("flows"))])
DEFAULT_MONTHS = 6
KIND_LABELS: dict[str, str] = {VendorKind.PRODUCER: "Producteurs", VendorKind.MARKET_STALL: "Étals de marché", VendorKind.SHOP: "Commerces",
               VendorKind.EPICERIE: "Épiceries", VendorKind.COOPERATIVE: "Coopératives", VendorKind.BAKERY: "Boulangeries",
               VendorKind.OTHER: "Autres"}


@router.get("")
def flows_page(request: Request, session: DbSession, du: str = "", au: str = "") -> Response:
    settings: Settings = request.app.state.settings
    first, last = period(du, au, timezone=settings.settlement_timezone, months=DEFAULT_MONTHS)
    try:
        result = flows.flows(session, first=first, last=last, timezone=settings.settlement_timezone)
    except InvalidInput as error:
        return render(request, "flows/index.html", title="Flux", error=french(error), du=du, au=au, result=None, charts=[])
    return render(request, "flows/index.html", title="Flux", error=None, du=first, au=last, result=result,
                  charts=charts(result))


def charts(result: flows.Flows) -> list[tuple[Chart, str]]:
    months = result.months

    def spending(chart_id: str, title: str, description: str, breakdown: dict[str, tuple[int, ...]],
                 labels: dict[str, str] | None = None) -> tuple[Chart, str]:
        series = [Series((labels or {}).get(key, key), values) for key, values in breakdown.items()]
        return Chart(chart_id, title, description, months, series or [Series("Total", result.total_cents)],
                     value_format=euros, axis_format=whole_euros), "bars"

    share = [Series("Part des producteurs", result.producer_share_bp)]  # no point for a month without spending
    return [
        spending("flux-type", "Dépenses par type de commerce", "Euros dépensés par les membres chaque mois, par type de commerce.",
                 result.by_vendor_kind, KIND_LABELS),
        (Chart("flux-producteurs", "Part des dépenses qui va aux producteurs",
               "Pourcentage des dépenses du mois payé directement à des producteurs.", months, share,
               value_format=percent), "lines"),
        spending("flux-quartier-commerce", "Dépenses par quartier du commerce", "Où l'argent est dépensé : euros par quartier"
                 " du commerçant, chaque mois.", result.by_vendor_zone),
        spending("flux-quartier-foyer", "Dépenses par quartier d'habitation", "Qui dépense : euros par quartier où vivent les"
                 " foyers, chaque mois.", result.by_household_zone),
        (Chart("flux-membres", "Foyers actifs", "Nombre de foyers ayant payé au moins une fois dans le mois.", months,
               [Series("Foyers actifs", result.active_members)]), "lines"),
    ]


def percent(basis_points: int) -> str:
    """1234 -> '12,3 %', exact from integers (the half rounds up)."""
    tenths = (basis_points + 5) // 10
    return f"{tenths // 10},{tenths % 10} %"
