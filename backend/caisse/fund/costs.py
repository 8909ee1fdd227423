"""The caisse's running costs, by category: software, bank fees, the payment platform's percentage
on contributions, staff time, other (docs/settlement.md, "The year's budget").

A cost is a fee of the fund (caisse.fund.service, `fund -> expense:fees`) with its category kept beside
the ledger transfer, by reference (`fee_category`). The payment platform's fee that
`fund.import_contributions` posts for each file is a `plateforme` cost by its reference; any fee
recorded without a category is `autre`. Nothing here commits: the caller does.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import Session

from caisse.errors import Conflict, InvalidInput
from caisse.fund import service as fund
from caisse.ledger import postings as ledger
from caisse.ledger.corrections import reversed_sql
from caisse.models import FeeCategory
from caisse.months import Month
from caisse.staff import accounts

# Stored code -> what staff read.
CATEGORIES = {
    "logiciel": "Logiciel (développement, maintenance, hébergement)",
    "banque": "Frais bancaires",
    "plateforme": "Plateforme de paiement (pourcentage sur les cotisations)",
    "personnel": "Temps de travail (animation, gestion)",
    "autre": "Autres frais",
}


def record_cost(session: Session, *, month: str, amount_cents: int, category: str, memo: str, reference: str, by: str,
                os_user: str | None = None) -> bool:
    """A cost paid from the fund, with its category (audited by fund.record_fee: an active console
    account). False when this reference was recorded already with the same body; another body is
    refused (`reference_reused`)."""
    accounts.active_user(session, email=by)  # a person, never the system: costs are typed by staff
    if category not in CATEGORIES:
        raise InvalidInput("invalid_category", f"the category is one of {', '.join(CATEGORIES)}, not {category!r}")
    period = Month.parse(month)
    posted = ledger.user_reference(f"fee:{period}", reference)
    known = session.get(FeeCategory, posted)
    if known is not None and known.category != category:
        raise Conflict("reference_reused", f"reference {reference!r} was recorded as {known.category}")
    # fund.record_fee posts the fee and writes its audit entry (fund.fee); the category is kept beside it.
    created = fund.record_fee(session, month=str(period), amount_cents=amount_cents, memo=f"{memo} ({category})",
                              reference=reference, by=by, os_user=os_user)
    if known is None:
        session.add(FeeCategory(reference=posted, category=category))
        session.flush()
    return created


def by_category(session: Session, *, months: Iterable[str]) -> dict[str, dict[str, int]]:
    """Fees by month and category, reversed ones left out: {month: {category: cents}}."""
    wanted = sorted({str(Month.parse(m)) for m in months})
    result: dict[str, dict[str, int]] = {m: {} for m in wanted}
    if not wanted:
        return result
    rows = session.execute(text(
        "SELECT substr(t.reference, 5, 7) AS month, CASE WHEN c.category IS NOT NULL THEN c.category"
        " WHEN t.reference LIKE 'fee:%:import:%' THEN 'plateforme' ELSE 'autre' END AS category, SUM(t.amount_cents)"
        " FROM ledger_transfer t LEFT JOIN fee_category c ON c.reference = t.reference"
        f" WHERE t.kind = 'fee' AND substr(t.reference, 5, 7) >= :first AND substr(t.reference, 5, 7) <= :last"
        f" AND NOT {reversed_sql('t.reference')} GROUP BY 1, 2"), {"first": wanted[0], "last": wanted[-1]})
    for month, category, cents in rows:
        if month in result:
            result[month][category] = result[month].get(category, 0) + int(cents)
    return result
