"""Sortition of new members by strata (docs/console.md, "Sortition").

Volunteers answer a questionnaire: income quartile (1 = lowest quarter of incomes .. 4), the
reference person's date of birth, household size, contact, where they shop. The age band (1..3)
is the age in completed years at the draw's closing date, by the draw's band scheme (`SCHEMES`;
a draw keeps its scheme, so an old one verifies as it was made). The 12 strata each have a number
of seats, typed or computed from the population's shares by largest remainder (`quotas_from_shares`).
A draw goes through three states:

    open    volunteers are registered (each gets the next public number 1, 2, 3, ...)
    sealed  the seed phrase is published: the list is frozen and seed = SHA-256(phrase)
    drawn   every volunteer has a rank in their stratum; the first `seats` ranks are selected

The order within a stratum is the volunteers sorted by SHA-256("{seed}:{number}") as lowercase
hexadecimal text, so anyone holding the published list (numbers and strata) and the phrase can
re-run the draw with a few lines of any language. A stratum with no more volunteers than seats
selects everyone and is reported with its shortfall, for targeted outreach.

After the draw the selected volunteers are invited; one who declines is replaced by the next of
their stratum's reserve in rank order (`decline_invitation`); one who accepts becomes a
household (`accept_invitation`). The audit entry of each staff action is written here.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from caisse import audit
from caisse.config import get_settings
from caisse.db import get_by_id
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.members import households as household_service
from caisse.members import means
from caisse.models import InvitationStatus, SortitionDraw, SortitionQuota, SortitionStatus, SortitionVolunteer, utcnow
from caisse.months import Month
from caisse.spreadsheet import Column, RowErrors, read_table
from caisse.staff import accounts

INCOME_QUARTILES = (1, 2, 3, 4)


@dataclass(frozen=True, slots=True)
class Scheme:
    """Age bands in completed years at the closing date, each (youngest, oldest or None)."""

    key: str
    bands: tuple[tuple[int, int | None], ...]
    labels: Mapping[int, str]

    def band_of(self, age: int) -> int | None:
        for band, (youngest, oldest) in enumerate(self.bands, start=1):
            if age >= youngest and (oldest is None or age <= oldest):
                return band
        return None


# The first draws declared a band (18-34, 35-59, 60+); the field report's strata count ages at
# the questionnaire's closing date: under 30, 30 to 60 inclusive, over 60.
SCHEME_2024 = "2024-18-34-35-59-60"
SCHEME_2026 = "2026-0-29-30-60-61"
SCHEMES = {
    SCHEME_2024: Scheme(SCHEME_2024, ((18, 34), (35, 59), (60, None)), {1: "18 à 34 ans", 2: "35 à 59 ans", 3: "60 ans et plus"}),
    SCHEME_2026: Scheme(SCHEME_2026, ((0, 29), (30, 60), (61, None)), {1: "moins de 30 ans", 2: "30 à 60 ans", 3: "61 ans et plus"}),
}
STRATA = tuple((quartile, band) for quartile in INCOME_QUARTILES for band in (1, 2, 3))
MAX_SEATS_PER_STRATUM = 10_000
MAX_VOLUNTEERS = 100_000
MAX_PHRASE_CHARS = 500
_SHARE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")  # a percentage or a count of people
MAX_HOUSEHOLD_SIZE = 30
MAX_REFERENCE_AGE = 120
MIN_REFERENCE_AGE = 16  # the questionnaire's reference person answers for a household
SELECTED, WAITING = "tiré au sort", "liste d'attente"  # the result column of the export
INVITATION_FR: dict[str, str] = {InvitationStatus.INVITED: "invité", InvitationStatus.ACCEPTED: "accepté", InvitationStatus.DECLINED: "refusé"}
# The volunteer import of a draw made before the questionnaire (scheme 2024): a declared band.
IMPORT_COLUMNS = ("nom", "contact", "quartile_revenu", "tranche_age")
# The questionnaire's columns, with the French headers staff may give them.
QUESTIONNAIRE_COLUMNS = (
    Column("name", ("nom", "nom du foyer")),
    Column("contact", ("contact", "téléphone ou e-mail", "telephone", "email"), required=False),
    Column("income_quartile", ("quartile_revenu", "quartile de revenu", "quartile")),
    Column("birth_date", ("date_naissance", "date de naissance")),
    Column("household_size", ("taille_foyer", "taille du foyer", "personnes")),
    Column("shops", ("commerces", "où faites-vous vos courses", "courses"), required=False),
)
LEGACY_COLUMNS = (
    Column("name", ("nom",)),
    Column("contact", ("contact",), required=False),
    Column("income_quartile", ("quartile_revenu", "quartile de revenu")),
    Column("age_band", ("tranche_age", "tranche d'âge")),
)

Stratum = tuple[int, int]  # (income quartile, age band)
_STATE_FR: dict[str, str] = {SortitionStatus.OPEN: "ouvert aux inscriptions", SortitionStatus.SEALED: "scellé (graine publiée)",
             SortitionStatus.DRAWN: "déjà tiré"}


@dataclass(frozen=True, slots=True)
class Entry:
    """What the draw reads of a volunteer: public, no personal data."""

    number: int
    stratum: Stratum


@dataclass(frozen=True, slots=True)
class Placement:
    rank: int  # 1 = first in the stratum's order
    selected: bool


@dataclass(frozen=True, slots=True)
class StratumResult:
    stratum: Stratum
    seats: int
    volunteers: int
    selected: int
    # Invited or accepted, once the draw's invitations exist (None before, or for a draw made
    # before invitations): a decline the reserve could not replace leaves a seat to fill.
    holding: int | None = None

    @property
    def shortfall(self) -> int:
        """Seats left empty: the stratum is undersubscribed when this is above zero."""
        return max(self.seats - self.volunteers, 0)

    @property
    def to_reach(self) -> int:
        """Seats outreach must fill: the shortfall, and the seats of declines the reserve could not replace."""
        return self.shortfall if self.holding is None else max(self.seats - self.holding, 0)

    @property
    def oversubscribed(self) -> bool:
        return self.volunteers > self.seats


def seed_of(phrase: str) -> str:
    """The seed: SHA-256 of the phrase's UTF-8 bytes, as 64 lowercase hex digits."""
    return hashlib.sha256(phrase.encode("utf-8")).hexdigest()


def draw_key(seed_hex: str, number: int) -> str:
    return hashlib.sha256(f"{seed_hex}:{number}".encode("ascii")).hexdigest()


def compute_draw(*, seed_hex: str, entries: Iterable[Entry], quotas: Mapping[Stratum, int]) -> dict[int, Placement]:
    """The draw itself, a pure function: volunteer number -> rank and selection."""
    by_stratum: dict[Stratum, list[int]] = {}
    for entry in entries:
        by_stratum.setdefault(entry.stratum, []).append(entry.number)
    placements: dict[int, Placement] = {}
    for stratum, numbers in by_stratum.items():
        seats = quotas.get(stratum, 0)
        ordered = sorted(numbers, key=lambda number: (draw_key(seed_hex, number), number))
        for rank, number in enumerate(ordered, start=1):
            placements[number] = Placement(rank=rank, selected=rank <= seats)
    return placements


def age_in_completed_years(birth_date: date, *, on: date) -> int:
    """Whole years lived on `on`: a birthday that day counts (born 29 February: on 1 March)."""
    return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))


def quotas_from_shares(shares: Mapping[Stratum, Fraction], total_seats: int) -> dict[Stratum, int]:
    """Seats per stratum proportional to the population's shares (percentages or counts), by
    largest remainder: each stratum gets the floor of its exact share, and the seats left go to
    the largest fractional parts, ties to the earlier stratum (quartile 1 band 1, quartile 1 band 2...)."""
    if set(shares) != set(STRATA):
        raise InvalidInput("invalid_shares", "il faut la part de population de chacune des 12 strates")
    if any(share < 0 for share in shares.values()) or sum(shares.values()) <= 0:
        raise InvalidInput("invalid_shares", "les parts de population sont positives ou nulles, et pas toutes nulles")
    if not 0 <= total_seats <= MAX_SEATS_PER_STRATUM:
        raise InvalidInput("invalid_seats", f"le nombre de places doit être entre 0 et {MAX_SEATS_PER_STRATUM}")
    whole = sum(shares.values())
    exact = {stratum: Fraction(total_seats) * shares[stratum] / whole for stratum in STRATA}
    quotas = {stratum: int(exact[stratum]) for stratum in STRATA}  # floor: the shares are >= 0
    left = total_seats - sum(quotas.values())
    by_remainder = sorted(STRATA, key=lambda stratum: (-(exact[stratum] - quotas[stratum]), STRATA.index(stratum)))
    for stratum in by_remainder[:left]:
        quotas[stratum] += 1
    return quotas


def parse_share(text: str) -> Fraction:
    """A share as staff type it: '12', '8,5', '8.5 %', '12 000' (a count). Plain decimals only:
    '1e999999' would be an integer too large to compute with."""
    cleaned = "".join(text.strip().removesuffix("%").replace(",", ".").split())  # spaces, NBSP, narrow NBSP
    if not _SHARE.fullmatch(cleaned):
        raise InvalidInput("invalid_shares", f"une part de population est un nombre positif (8,5 ou 12000), pas {text!r}")
    return Fraction(Decimal(cleaned))


def even_quotas(total_seats: int) -> dict[Stratum, int]:
    """`total_seats` spread over the 12 strata, the remainder to the lowest incomes first."""
    if not 0 <= total_seats <= MAX_SEATS_PER_STRATUM:
        raise InvalidInput("invalid_seats", f"le nombre de places doit être entre 0 et {MAX_SEATS_PER_STRATUM}")
    base, extra = divmod(total_seats, len(STRATA))
    return {stratum: base + (1 if index < extra else 0) for index, stratum in enumerate(STRATA)}


# Lifecycle ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Answers:
    """One volunteer's questionnaire. `age_band` is given only for a draw of scheme 2024 (declared);
    later ones compute it from `birth_date` at the closing date."""

    name: str
    contact: str | None
    income_quartile: int
    birth_date: date | None = None
    household_size: int | None = None
    shops: str | None = None
    age_band: int | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int
    errors: list[str]  # every bad row, "ligne N : ..." in French (skipped when asked, else nothing imported)


def create_draw(
    session: Session, *, title: str, by: str, quotas: Mapping[Stratum, int] | None = None,
    shares: Mapping[Stratum, Fraction] | None = None, total_seats: int | None = None,
    closing_date: date | None = None, os_user: str | None = None,
) -> SortitionDraw:
    """A new draw. With a closing date it uses the current band scheme (ages counted that day),
    without one the 2024 scheme (bands declared). Seats are typed (`quotas`) or computed from the
    population's shares and the total (`shares`, `total_seats`)."""
    title = title.strip()
    if not title or len(title) > 200:
        raise InvalidInput("invalid_title", "un tirage a besoin d'un titre de 1 à 200 caractères")
    if shares is not None:
        if total_seats is None:
            raise InvalidInput("invalid_seats", "indiquez le nombre total de places à répartir")
        quotas = quotas_from_shares(shares, total_seats)
    if quotas is None or set(quotas) != set(STRATA):
        raise InvalidInput("invalid_quotas", "il faut le nombre de places de chacune des 12 strates")
    for stratum, seats in quotas.items():
        if not 0 <= seats <= MAX_SEATS_PER_STRATUM:
            raise InvalidInput("invalid_seats", f"strate {stratum} : le nombre de places doit être entre 0 et {MAX_SEATS_PER_STRATUM}")
    scheme = SCHEME_2026 if closing_date is not None else SCHEME_2024
    draw = SortitionDraw(title=title, status=SortitionStatus.OPEN, created_by=by, scheme=scheme, closing_date=closing_date)
    session.add(draw)
    session.flush()
    assert draw.id is not None
    session.add_all(SortitionQuota(draw_id=draw.id, income_quartile=q, age_band=a, seats=quotas[(q, a)],
                                   population_share=None if shares is None else _share_text(shares[(q, a)]))
                    for q, a in STRATA)
    session.flush()
    audit.record(session, actor=by, action="sortition.create", subject=f"sortition:{draw.id}",
                 detail=_with_os_user({"title": draw.title, "seats": sum(quotas.values()), "scheme": scheme,
                                       "closing_date": closing_date}, os_user))
    return draw


def register_volunteer(
    session: Session, *, draw_id: int, name: str, contact: str | None, income_quartile: int, age_band: int | None = None,
    birth_date: date | None = None, household_size: int | None = None, shops: str | None = None, by: str | None = None,
) -> SortitionVolunteer:
    """One volunteer typed in (audited when `by`, the console account, is given)."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.OPEN, action="inscrire un volontaire")
    answers = Answers(name=name, contact=contact, income_quartile=income_quartile, birth_date=birth_date,
                      household_size=household_size, shops=shops, age_band=age_band)
    problem = _answers_problem(draw, answers)
    if problem is not None:
        raise InvalidInput("invalid_volunteer", problem)
    [volunteer] = _add_volunteers(session, draw=draw, answers=[answers])
    if by is not None:
        audit.record(session, actor=by, action="sortition.register", subject=f"sortition:{draw_id}", detail={"number": volunteer.number})
    return volunteer


def import_volunteers(session: Session, *, draw_id: int, content: str | bytes, skip_bad_rows: bool = False,
                      by: str | None = None, os_user: str | None = None) -> ImportReport:
    """The questionnaire's answers from a spreadsheet (caisse.spreadsheet: `;` or `,`, UTF-8 or
    Windows-1252, French headers). Every bad row is reported with its line number; with any, nothing
    is imported (InvalidInput listing them all) unless `skip_bad_rows`, then the good rows are."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.OPEN, action="inscrire des volontaires")
    legacy = draw.scheme == SCHEME_2024
    try:
        rows = read_table(content, LEGACY_COLUMNS if legacy else QUESTIONNAIRE_COLUMNS)
    except InvalidInput as error:  # the reader's French detail, under this import's code
        raise InvalidInput("invalid_import", error.detail) from None
    errors = RowErrors()
    good: list[Answers] = []
    for row in rows:
        answers, problem = _parse_answers(row.cells, legacy=legacy)
        problem = problem or (_answers_problem(draw, answers) if answers is not None else None)
        if problem is not None or answers is None:
            errors.add(row.line, problem or "ligne illisible")
        else:
            good.append(answers)
    if errors and not skip_bad_rows:
        raise InvalidInput("invalid_import", f"{len(errors.errors)} ligne(s) refusée(s), rien n'est importé : " + " ; ".join(errors.lines()))
    _add_volunteers(session, draw=draw, answers=good)
    if by is not None:
        audit.record(session, actor=by, action="sortition.import", subject=f"sortition:{draw_id}",
                     detail=_with_os_user({"count": len(good), "skipped_lines": [line for line, _ in errors.errors]}, os_user))
    return ImportReport(imported=len(good), errors=errors.lines())


def publish_seed(session: Session, *, draw_id: int, phrase: str, by: str, os_user: str | None = None) -> SortitionDraw:
    """Freeze the list and publish the seed. The phrase should be public and unknown when
    registration closed (a lottery result, a newspaper headline of a given day)."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.OPEN, action="publier la graine")
    phrase = phrase.strip()
    if not phrase or len(phrase) > MAX_PHRASE_CHARS:
        raise InvalidInput("invalid_seed_phrase", f"la phrase de la graine doit avoir de 1 à {MAX_PHRASE_CHARS} caractères")
    if _volunteer_count(session, draw_id=draw_id) == 0:
        raise Conflict("no_volunteers", "inscrivez des volontaires avant de publier la graine")
    draw.status, draw.seed_phrase, draw.seed_hex = SortitionStatus.SEALED, phrase, seed_of(phrase)
    draw.seed_published_by, draw.seed_published_at = by, utcnow()
    session.flush()
    audit.record(session, actor=by, action="sortition.seed", subject=f"sortition:{draw_id}",
                 detail=_with_os_user({"phrase": draw.seed_phrase, "seed": draw.seed_hex}, os_user))
    return draw


def run_draw(session: Session, *, draw_id: int, by: str, os_user: str | None = None) -> list[StratumResult]:
    """Rank every stratum from the seed; the selected volunteers are invited."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.SEALED, action="lancer le tirage")
    assert draw.seed_hex is not None, "a sealed draw has its seed"
    volunteers = volunteers_of(session, draw_id=draw_id)
    placements = compute_draw(seed_hex=draw.seed_hex, entries=[_entry(v) for v in volunteers], quotas=quotas_of(session, draw_id=draw_id))
    for volunteer in volunteers:
        volunteer.rank, volunteer.selected = placements[volunteer.number].rank, placements[volunteer.number].selected
        volunteer.invitation = InvitationStatus.INVITED if volunteer.selected else None
    draw.status, draw.drawn_by, draw.drawn_at = SortitionStatus.DRAWN, by, utcnow()
    session.flush()
    results = strata_results(session, draw_id=draw_id)
    audit.record(session, actor=by, action="sortition.draw", subject=f"sortition:{draw_id}",
                 detail=_with_os_user({"selected": sum(r.selected for r in results)}, os_user))
    return results


# Invitations -------------------------------------------------------------------------------------

def decline_invitation(session: Session, *, volunteer_id: int, by: str, os_user: str | None = None) -> SortitionVolunteer | None:
    """The volunteer declines: the next volunteer of the same stratum's reserve (lowest rank not
    yet invited) is invited instead, and returned; None when the reserve is empty (the stratum
    then needs outreach). The draw's result itself is unchanged, so it still verifies."""
    by = accounts.active_user(session, email=by).email
    volunteer = _invited(session, volunteer_id=volunteer_id, action="enregistrer un refus")
    volunteer.invitation, volunteer.invitation_decided_at = InvitationStatus.DECLINED, utcnow()
    replacement = next_in_reserve(session, draw_id=volunteer.draw_id, stratum=(volunteer.income_quartile, volunteer.age_band))
    if replacement is not None:
        replacement.invitation = InvitationStatus.INVITED
    session.flush()
    audit.record(session, actor=by, action="sortition.decline", subject=f"sortition:{volunteer.draw_id}",
                 detail=_with_os_user({"number": volunteer.number,
                                       "replaced_by": None if replacement is None else replacement.number}, os_user))
    return replacement


def accept_invitation(session: Session, *, volunteer_id: int, zone: str, by: str, members: int | None = None,
                      os_user: str | None = None) -> int:
    """The volunteer accepts: their household is created (name, members = household size, zone),
    linked to them, ready for its card. Returns the household's id. Nothing is typed twice."""
    by = accounts.active_user(session, email=by).email
    volunteer = _invited(session, volunteer_id=volunteer_id, action="enregistrer une acceptation")
    size = members if members is not None else volunteer.household_size
    if size is None or not 1 <= size <= MAX_HOUSEHOLD_SIZE:
        raise InvalidInput("invalid_members", f"indiquez la taille du foyer (1 à {MAX_HOUSEHOLD_SIZE} personnes)")
    if not zone.strip():
        raise InvalidInput("invalid_zone", "indiquez le quartier (zone) du foyer")
    household = household_service.create_household(session, name=volunteer.name, members=size, zone=zone)
    assert household.id is not None
    volunteer.invitation, volunteer.invitation_decided_at = InvitationStatus.ACCEPTED, utcnow()
    volunteer.household_id = household.id
    session.flush()
    # The questionnaire's answers are the household's first means: nothing is typed twice.
    zone_info = ZoneInfo(get_settings().settlement_timezone)
    means.record_means(session, household_id=household.id, size=size, income_quartile=volunteer.income_quartile,
                       effective_month=str(Month.of(household.created_at, zone_info)), chosen_contribution_cents=None,
                       by=by, os_user=os_user)
    audit.record(session, actor=by, action="sortition.accept", subject=f"household:{household.id}",
                 detail=_with_os_user({"draw": volunteer.draw_id, "number": volunteer.number, "members": size,
                                       "zone": household.zone}, os_user))
    return household.id


def next_in_reserve(session: Session, *, draw_id: int, stratum: Stratum) -> SortitionVolunteer | None:
    query = (select(SortitionVolunteer)
             .where(col(SortitionVolunteer.draw_id) == draw_id, col(SortitionVolunteer.income_quartile) == stratum[0],
                    col(SortitionVolunteer.age_band) == stratum[1], col(SortitionVolunteer.invitation).is_(None),
                    col(SortitionVolunteer.rank).is_not(None))
             .order_by(col(SortitionVolunteer.rank)).limit(1))
    return session.execute(query).scalar_one_or_none()


def get_volunteer(session: Session, *, volunteer_id: int) -> SortitionVolunteer:
    volunteer = get_by_id(session, SortitionVolunteer, volunteer_id)
    if volunteer is None:
        raise NotFound("volunteer_not_found", f"aucun volontaire n° {volunteer_id}")
    return volunteer


def _invited(session: Session, *, volunteer_id: int, action: str) -> SortitionVolunteer:
    """The invited volunteer, once its draw's row is locked: the answers of one draw queue, so two
    clicks on "décline" invite one replacement, and two declines in one stratum never pick the
    same one from the reserve."""
    volunteer = get_volunteer(session, volunteer_id=volunteer_id)
    get_by_id(session, SortitionDraw, volunteer.draw_id, for_update=True)
    session.refresh(volunteer)
    if volunteer.invitation != InvitationStatus.INVITED:
        answered: dict[str, str] = {InvitationStatus.ACCEPTED: "a déjà accepté", InvitationStatus.DECLINED: "a déjà refusé"}
        state = answered.get(volunteer.invitation or "", "n'est pas invité")
        raise Conflict("invitation_state", f"impossible d'{action} : le volontaire n° {volunteer.number} {state}")
    return volunteer


def verify_draw(session: Session, *, draw_id: int) -> bool:
    """Re-run a drawn draw from its published seed and compare with what is stored."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.DRAWN, action="vérifier le tirage")
    assert draw.seed_hex is not None
    volunteers = volunteers_of(session, draw_id=draw_id)
    again = compute_draw(seed_hex=draw.seed_hex, entries=[_entry(v) for v in volunteers], quotas=quotas_of(session, draw_id=draw_id))
    return all(again[v.number] == Placement(rank=v.rank or 0, selected=bool(v.selected)) for v in volunteers)


# Reading -----------------------------------------------------------------------------------------

def get_draw(session: Session, *, draw_id: int) -> SortitionDraw:
    draw = get_by_id(session, SortitionDraw, draw_id)
    if draw is None:
        raise NotFound("draw_not_found", f"aucun tirage n° {draw_id}")
    return draw


def list_draws(session: Session) -> list[SortitionDraw]:
    return list(session.execute(select(SortitionDraw).order_by(col(SortitionDraw.id).desc())).scalars())


def quotas_of(session: Session, *, draw_id: int) -> dict[Stratum, int]:
    rows = session.execute(select(SortitionQuota).where(col(SortitionQuota.draw_id) == draw_id)).scalars()
    return {(row.income_quartile, row.age_band): row.seats for row in rows}


def volunteers_of(session: Session, *, draw_id: int) -> list[SortitionVolunteer]:
    query = select(SortitionVolunteer).where(col(SortitionVolunteer.draw_id) == draw_id).order_by(col(SortitionVolunteer.number))
    return list(session.execute(query).scalars())


def strata_results(session: Session, *, draw_id: int) -> list[StratumResult]:
    """Per stratum: seats, volunteers, and how many the draw selected (0 before the draw)."""
    quotas = quotas_of(session, draw_id=draw_id)
    counts: dict[Stratum, list[int]] = {stratum: [0, 0, 0] for stratum in STRATA}
    volunteers = volunteers_of(session, draw_id=draw_id)
    for volunteer in volunteers:
        tally = counts[(volunteer.income_quartile, volunteer.age_band)]
        tally[0] += 1
        tally[1] += 1 if volunteer.selected else 0
        tally[2] += volunteer.invitation in (InvitationStatus.INVITED, InvitationStatus.ACCEPTED)
    invited = any(volunteer.invitation for volunteer in volunteers)
    return [StratumResult(stratum=s, seats=quotas.get(s, 0), volunteers=counts[s][0], selected=counts[s][1],
                          holding=counts[s][2] if invited else None) for s in STRATA]


def export_csv(session: Session, *, draw_id: int, with_names: bool) -> str:
    """The inputs and result, one volunteer a line, in French. Without names it is the public list
    anyone can re-run the draw from (volunteers appear by their number, a pseudonym); the band
    scheme, the stratum's population share and the invitation's outcome ride along."""
    draw = get_draw(session, draw_id=draw_id)
    quotas = quotas_of(session, draw_id=draw_id)
    shares = shares_of(session, draw_id=draw_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["numero", *(["nom", "contact"] if with_names else []), "quartile_revenu", "tranche_age",
                     "places_strate", "cle_sha256", "rang", "resultat", "bareme_ages", "part_population", "invitation"])
    for v in volunteers_of(session, draw_id=draw_id):
        key = draw_key(draw.seed_hex, v.number) if draw.seed_hex else ""
        outcome = "" if v.selected is None else (SELECTED if v.selected else WAITING)
        stratum = (v.income_quartile, v.age_band)
        writer.writerow([v.number, *([v.name, v.contact or ""] if with_names else []), v.income_quartile, v.age_band,
                         quotas.get(stratum, 0), key, v.rank or "", outcome, draw.scheme, shares.get(stratum) or "",
                         INVITATION_FR.get(v.invitation or "", "")])
    return out.getvalue()


def shares_of(session: Session, *, draw_id: int) -> dict[Stratum, str | None]:
    rows = session.execute(select(SortitionQuota).where(col(SortitionQuota.draw_id) == draw_id)).scalars()
    return {(row.income_quartile, row.age_band): row.population_share for row in rows}


def replay_export(content: str, *, phrase: str) -> list[str]:
    """Re-run a draw from its public export and the seed phrase alone, without the database:
    the lines whose key, rank or result differ (in French), none when the result is confirmed."""
    try:
        rows = list(csv.DictReader(io.StringIO(content)))
        entries = [Entry(number=int(r["numero"]), stratum=(int(r["quartile_revenu"]), int(r["tranche_age"]))) for r in rows]
        quotas = {entry.stratum: int(r["places_strate"]) for entry, r in zip(entries, rows, strict=True)}
    except (KeyError, ValueError) as error:
        raise InvalidInput("invalid_export", f"ce fichier n'est pas l'export public d'un tirage ({error})") from None
    seed = seed_of(phrase)
    again = compute_draw(seed_hex=seed, entries=entries, quotas=quotas)
    differences = []
    for entry, row in zip(entries, rows, strict=True):
        placement = again[entry.number]
        expected = (draw_key(seed, entry.number), str(placement.rank), SELECTED if placement.selected else WAITING)
        if (row["cle_sha256"], row["rang"], row["resultat"]) != expected:
            differences.append(f"volontaire {entry.number} : le fichier dit rang {row['rang'] or '—'} ({row['resultat'] or '—'}),"
                               f" le calcul donne rang {expected[1]} ({expected[2]})")
    return differences


# Helpers -----------------------------------------------------------------------------------------

def _draw_in(session: Session, *, draw_id: int, status: SortitionStatus, action: str) -> SortitionDraw:
    draw = get_draw(session, draw_id=draw_id)
    if draw.status != status:
        raise Conflict("draw_state", f"impossible de {action} : le tirage n° {draw_id} est {_STATE_FR[draw.status]}")
    return draw


def _volunteer_count(session: Session, *, draw_id: int) -> int:
    query = select(func.count()).select_from(SortitionVolunteer).where(col(SortitionVolunteer.draw_id) == draw_id)
    return int(session.execute(query).scalar_one())


def _answers_problem(draw: SortitionDraw, answers: Answers) -> str | None:
    """What is wrong with a volunteer's answers for this draw, in French; None when they are fine."""
    if not answers.name.strip() or len(answers.name.strip()) > 200:
        return "un nom est requis (200 caractères au plus)"
    if answers.contact is not None and len(answers.contact.strip()) > 200:
        return "le contact a 200 caractères au plus"
    if answers.income_quartile not in INCOME_QUARTILES:
        return "le quartile de revenu va de 1 à 4"
    if answers.shops is not None and len(answers.shops) > 500:
        return "les commerces tiennent en 500 caractères"
    if answers.household_size is not None and not 1 <= answers.household_size <= MAX_HOUSEHOLD_SIZE:
        return f"la taille du foyer va de 1 à {MAX_HOUSEHOLD_SIZE} personnes"
    if draw.scheme == SCHEME_2024:
        return None if answers.age_band in (1, 2, 3) else "la tranche d'âge va de 1 à 3"
    assert draw.closing_date is not None, "a questionnaire draw has its closing date"
    if answers.birth_date is None:
        return "la date de naissance de la personne de référence est requise (JJ/MM/AAAA)"
    if answers.household_size is None:
        return "la taille du foyer est requise"
    age = age_in_completed_years(answers.birth_date, on=draw.closing_date)
    if not MIN_REFERENCE_AGE <= age <= MAX_REFERENCE_AGE:
        return (f"la personne de référence aurait {age} ans à la clôture du {draw.closing_date:%d/%m/%Y} :"
                f" vérifiez la date de naissance")
    return None


def _band(draw: SortitionDraw, answers: Answers) -> int:
    if draw.scheme == SCHEME_2024:
        assert answers.age_band is not None
        return answers.age_band
    assert answers.birth_date is not None and draw.closing_date is not None
    band = SCHEMES[draw.scheme].band_of(age_in_completed_years(answers.birth_date, on=draw.closing_date))
    assert band is not None, "checked by _answers_problem"
    return band


def _add_volunteers(session: Session, *, draw: SortitionDraw, answers: list[Answers]) -> list[SortitionVolunteer]:
    """Register volunteers under the next public numbers, in one flush."""
    assert draw.id is not None
    last = session.execute(select(func.max(col(SortitionVolunteer.number))).where(col(SortitionVolunteer.draw_id) == draw.id)).scalar_one()
    if (last or 0) + len(answers) > MAX_VOLUNTEERS:
        raise Conflict("too_many_volunteers", f"un tirage compte au plus {MAX_VOLUNTEERS} volontaires")
    volunteers = [SortitionVolunteer(
        draw_id=draw.id, number=(last or 0) + offset, name=one.name.strip(), contact=(one.contact or "").strip() or None,
        income_quartile=one.income_quartile, age_band=_band(draw, one), birth_date=one.birth_date,
        household_size=one.household_size, shops=(one.shops or "").strip() or None)
        for offset, one in enumerate(answers, start=1)]
    session.add_all(volunteers)
    session.flush()
    return volunteers


def parse_date(text: str) -> date | None:
    """A date as staff type it: 31/12/1990, 31-12-1990 or 1990-12-31; None when unreadable."""
    text = text.strip()
    try:
        if len(text) == 10 and text[4] == "-":
            return date.fromisoformat(text)
        day, month, year = text.replace("-", "/").replace(".", "/").split("/")
        return date(int(year), int(month), int(day)) if len(year) == 4 else None
    except ValueError:
        return None


def _whole_number(text: str) -> int | None:
    value = text.strip()
    # ASCII digits only ('²' passes isdigit() but not int()), and few enough for an INTEGER column.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


def _parse_answers(cells: Mapping[str, str], *, legacy: bool) -> tuple[Answers | None, str | None]:
    quartile = _whole_number(cells.get("income_quartile", ""))
    if quartile is None:
        return None, f"le quartile de revenu est un nombre de 1 à 4, pas {cells.get('income_quartile', '')!r}"
    if legacy:
        band = _whole_number(cells.get("age_band", ""))
        if band is None:
            return None, f"la tranche d'âge est un nombre de 1 à 3, pas {cells.get('age_band', '')!r}"
        return Answers(name=cells.get("name", ""), contact=cells.get("contact") or None, income_quartile=quartile, age_band=band), None
    birth = parse_date(cells.get("birth_date", ""))
    if birth is None:
        return None, f"date de naissance illisible {cells.get('birth_date', '')!r} (JJ/MM/AAAA)"
    size = _whole_number(cells.get("household_size", ""))
    if size is None:
        return None, f"la taille du foyer est un nombre entier, pas {cells.get('household_size', '')!r}"
    return Answers(name=cells.get("name", ""), contact=cells.get("contact") or None, income_quartile=quartile,
                   birth_date=birth, household_size=size, shops=cells.get("shops") or None), None


def _share_text(share: Fraction) -> str:
    return str(Decimal(share.numerator) / Decimal(share.denominator))[:24]


def _with_os_user(detail: dict[str, object], os_user: str | None) -> dict[str, object]:
    return {**detail, "os_user": os_user} if os_user else detail


def _entry(volunteer: SortitionVolunteer) -> Entry:
    return Entry(number=volunteer.number, stratum=(volunteer.income_quartile, volunteer.age_band))
