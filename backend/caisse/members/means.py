"""A household's means and size through time (docs/settlement.md, "Contributions by choice").

Each row of `household_means` holds, from its month on and until the household's next row: the
household's size, its means (an income quartile of the territory or a monthly income: the caisse
chooses which with `CAISSE_MEANS_KIND`, both are accepted) and the contribution it chose. The size
in force in a month is what the per_member allowance rule reads for that month (caisse.fund.allowances);
`household.members` is kept equal to the size in force this month. Recording the same household
and month again replaces that month's row; the audit log keeps what it was.
Nothing here commits: the caller does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlmodel import Session, col

from caisse import audit
from caisse.config import Settings, get_settings
from caisse.db import get_by_id
from caisse.errors import CaisseError, InvalidInput, french
from caisse.models import Household, HouseholdMeans
from caisse.money import parse_euros
from caisse.months import Month
from caisse.spreadsheet import Column, RowErrors, read_table
from caisse.staff import accounts

MAX_SIZE = 30  # a household larger than this is a typing error
MAX_INCOME_CENTS = 10_000_000  # 100 000 EUR a month
MAX_CONTRIBUTION_CENTS = 1_000_000  # 10 000 EUR a month


def record_means(
    session: Session, *, household_id: int, effective_month: str, size: int, income_quartile: int | None = None,
    monthly_income_cents: int | None = None, chosen_contribution_cents: int | None, by: str, os_user: str | None = None,
    settings: Settings | None = None,
) -> HouseholdMeans:
    """The household's size, means and chosen contribution from `effective_month` on (audited).

    Refused: an unknown household, a size outside 1..30, a quartile outside 1..4, no means at all,
    a chosen contribution below the caisse's floor (`contribution_minimum_cents`)."""
    settings = settings or get_settings()
    by = accounts.active_user(session, email=by).email
    period = Month.parse(effective_month)
    household = get_by_id(session, Household, household_id)
    if household is None:
        raise InvalidInput("household_not_found", f"no household {household_id}")
    _check(size=size, income_quartile=income_quartile, monthly_income_cents=monthly_income_cents,
           chosen_contribution_cents=chosen_contribution_cents, settings=settings)
    row = session.execute(select(HouseholdMeans).where(
        col(HouseholdMeans.household_id) == household_id, col(HouseholdMeans.effective_month) == str(period))).scalar_one_or_none()
    before = None if row is None else _fields(row)
    row = row or HouseholdMeans(household_id=household_id, effective_month=str(period), size=size, recorded_by=by)
    row.size, row.income_quartile, row.monthly_income_cents = size, income_quartile, monthly_income_cents
    row.chosen_contribution_cents, row.recorded_by = chosen_contribution_cents, by
    session.add(row)
    session.flush()
    now = means_at(session, household_id=household_id, month=str(current_month(settings)))
    if now is not None and household.members != now.size:
        household.members = now.size
        session.add(household)
        session.flush()
    audit.record(session, actor=by, action="household.means", subject=f"household:{household_id}",
                 detail={"month": str(period), "after": _fields(row), "before": before}, os_user=os_user)
    return row


def _check(*, size: int, income_quartile: int | None, monthly_income_cents: int | None,
           chosen_contribution_cents: int | None, settings: Settings) -> None:
    if not 1 <= size <= MAX_SIZE:
        raise InvalidInput("invalid_size", f"a household has 1 to {MAX_SIZE} members, not {size}")
    if income_quartile is None and monthly_income_cents is None:
        raise InvalidInput("means_missing", "give the income quartile or the monthly income")
    if income_quartile is not None and not 1 <= income_quartile <= 4:
        raise InvalidInput("invalid_quartile", f"the income quartile is 1 to 4, not {income_quartile}")
    if monthly_income_cents is not None and not 0 <= monthly_income_cents <= MAX_INCOME_CENTS:
        raise InvalidInput("invalid_amount", "the monthly income must be between 0 and 100 000 EUR")
    if chosen_contribution_cents is not None:
        if not 0 <= chosen_contribution_cents <= MAX_CONTRIBUTION_CENTS:
            raise InvalidInput("invalid_amount", "the chosen contribution must be between 0 and 10 000 EUR a month")
        if chosen_contribution_cents < settings.contribution_minimum_cents:
            raise InvalidInput("below_minimum",
                               f"the caisse's minimum contribution is {settings.contribution_minimum_cents} cents")


def _fields(row: HouseholdMeans) -> dict[str, int | None]:
    return {"size": row.size, "income_quartile": row.income_quartile, "monthly_income_cents": row.monthly_income_cents,
            "chosen_contribution_cents": row.chosen_contribution_cents}


def means_at(session: Session, *, household_id: int, month: str) -> HouseholdMeans | None:
    """The household's row in force in `month`: the latest effective in it or before; None if none."""
    return session.execute(
        select(HouseholdMeans).where(col(HouseholdMeans.household_id) == household_id,
                                     col(HouseholdMeans.effective_month) <= str(Month.parse(month)))
        .order_by(col(HouseholdMeans.effective_month).desc()).limit(1)
    ).scalar_one_or_none()


def history(session: Session, *, up_to: str | None = None) -> dict[int, list[HouseholdMeans]]:
    """Every household's rows (effective by `up_to` when given), oldest month first, in one query:
    no list of ids is sent, so it scales with the caisse whatever the database's parameter limit."""
    query = select(HouseholdMeans).order_by(col(HouseholdMeans.household_id), col(HouseholdMeans.effective_month))
    if up_to is not None:
        query = query.where(col(HouseholdMeans.effective_month) <= up_to)
    rows: dict[int, list[HouseholdMeans]] = {}
    for row in session.execute(query).scalars():
        rows.setdefault(row.household_id, []).append(row)
    return rows


def in_force(rows: list[HouseholdMeans], month: str) -> HouseholdMeans | None:
    """Of one household's rows (oldest first), the one in force in `month`."""
    found = None
    for row in rows:
        if row.effective_month > month:
            break
        found = row
    return found


def sizes_at(session: Session, *, month: str, household_ids: list[int]) -> dict[int, int]:
    """The size in force in `month` of each household that has means recorded by then."""
    wanted = set(household_ids)
    return {household_id: rows[-1].size for household_id, rows in history(session, up_to=month).items()
            if household_id in wanted}


def sync_current_sizes(session: Session, *, sizes: dict[int, int]) -> int:
    """`household.members` set to the size in force this month (`sizes`, from sizes_at) where it
    differs: a size recorded ahead for a month reaches the household when that month comes.
    Returns how many households changed."""
    current: dict[int, int] = {h: members for h, members in session.execute(select(col(Household.id), col(Household.members))).all()}
    changed = [(household_id, size) for household_id, size in sizes.items() if current.get(household_id, size) != size]
    for household_id, size in changed:
        session.execute(update(Household).where(col(Household.id) == household_id).values(members=size))
    return len(changed)


def current_month(settings: Settings, now: datetime | None = None) -> Month:
    """This month in the caisse's time zone."""
    zone = ZoneInfo(settings.settlement_timezone)
    return Month.of(now or datetime.now(zone), zone)


# Import from a spreadsheet ---------------------------------------------------------------------

COLUMNS = (
    Column("household", ("foyer", "numéro du foyer", "household_id")),
    Column("month", ("mois", "à partir du mois", "month")),
    Column("size", ("taille", "nombre de personnes", "personnes", "size")),
    Column("quartile", ("quartile de revenu", "quartile", "income_quartile"), required=False),
    Column("income", ("revenu mensuel", "revenu", "monthly_income"), required=False),
    Column("contribution", ("cotisation choisie", "cotisation", "chosen_contribution"), required=False),
)


@dataclass(slots=True)
class MeansImport:
    recorded: int = 0
    errors: RowErrors = field(default_factory=RowErrors)


def import_means(session: Session, *, data: bytes | str, by: str, os_user: str | None = None,
                 settings: Settings | None = None, skip_errors: bool = False) -> MeansImport:
    """Rows foyer;mois;taille;quartile de revenu|revenu mensuel;cotisation choisie (amounts in euros).
    Every row is checked first; with any bad row nothing is recorded unless `skip_errors`."""
    settings = settings or get_settings()
    by = accounts.active_user(session, email=by).email
    report = MeansImport()
    good: list[tuple[int, str, _Means]] = []
    households = set(session.execute(select(col(Household.id))).scalars())
    for row in read_table(data, COLUMNS):
        try:
            if not row["household"].isdigit() or int(row["household"]) not in households:
                raise InvalidInput("household_not_found", f"no household {row['household']!r}")
            if not row["size"].isdigit():
                raise InvalidInput("invalid_size", f"size {row['size']!r} is not a number of people")
            if row["quartile"] and row["quartile"] not in ("1", "2", "3", "4"):
                raise InvalidInput("invalid_quartile", f"quartile {row['quartile']!r} is not 1 to 4")
            month = str(Month.parse(row["month"]))
            fields = _Means(size=int(row["size"]), income_quartile=int(row["quartile"]) if row["quartile"] else None,
                            monthly_income_cents=parse_euros(row["income"], zero_allowed=True) if row["income"] else None,
                            chosen_contribution_cents=(parse_euros(row["contribution"], zero_allowed=True)
                                                       if row["contribution"] else None))
            _check(size=fields.size, income_quartile=fields.income_quartile, monthly_income_cents=fields.monthly_income_cents,
                   chosen_contribution_cents=fields.chosen_contribution_cents, settings=settings)
        except CaisseError as error:
            report.errors.add(row.line, french(error))
            continue
        good.append((int(row["household"]), month, fields))
    if report.errors and not skip_errors:
        return report
    for household_id, month, fields in good:
        record_means(session, household_id=household_id, effective_month=month, size=fields.size,
                     income_quartile=fields.income_quartile, monthly_income_cents=fields.monthly_income_cents,
                     chosen_contribution_cents=fields.chosen_contribution_cents, by=by, os_user=os_user, settings=settings)
        report.recorded += 1
    return report


@dataclass(frozen=True, slots=True)
class _Means:
    size: int
    income_quartile: int | None
    monthly_income_cents: int | None
    chosen_contribution_cents: int | None
