"""Sortition of new members by strata (docs/console.md, "Sortition").

Volunteers register with their income quartile (1 = lowest quarter of incomes .. 4) and age band
(1..3); the 12 strata each have a number of seats. A draw goes through three states:

    open    volunteers are registered (each gets the next public number 1, 2, 3, ...)
    sealed  the seed phrase is published: the list is frozen and seed = SHA-256(phrase)
    drawn   every volunteer has a rank in their stratum; the first `seats` ranks are selected

The order within a stratum is the volunteers sorted by SHA-256("{seed}:{number}") as lowercase
hexadecimal text, so anyone holding the published list (numbers and strata) and the phrase can
re-run the draw with a few lines of any language. A stratum with no more volunteers than seats
selects everyone and is reported with its shortfall, for targeted outreach.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session

from caisse.db import get_by_id
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.models import SortitionDraw, SortitionQuota, SortitionStatus, SortitionVolunteer, utcnow

INCOME_QUARTILES = (1, 2, 3, 4)
AGE_BANDS = {1: "18 à 34 ans", 2: "35 à 59 ans", 3: "60 ans et plus"}
STRATA = tuple((quartile, band) for quartile in INCOME_QUARTILES for band in AGE_BANDS)
MAX_SEATS_PER_STRATUM = 10_000
MAX_VOLUNTEERS = 100_000
MAX_PHRASE_CHARS = 500
SELECTED, WAITING = "tiré au sort", "liste d'attente"  # the result column of the export
# French column names of the volunteer import (one volunteer a line), in this order.
IMPORT_COLUMNS = ("nom", "contact", "quartile_revenu", "tranche_age")

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

    @property
    def shortfall(self) -> int:
        """Seats left empty: the stratum is undersubscribed when this is above zero."""
        return max(self.seats - self.volunteers, 0)

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


def even_quotas(total_seats: int) -> dict[Stratum, int]:
    """`total_seats` spread over the 12 strata, the remainder to the lowest incomes first."""
    if not 0 <= total_seats <= MAX_SEATS_PER_STRATUM:
        raise InvalidInput("invalid_seats", f"le nombre de places doit être entre 0 et {MAX_SEATS_PER_STRATUM}")
    base, extra = divmod(total_seats, len(STRATA))
    return {stratum: base + (1 if index < extra else 0) for index, stratum in enumerate(STRATA)}


# Lifecycle ---------------------------------------------------------------------------------------

def create_draw(session: Session, *, title: str, quotas: Mapping[Stratum, int], by: str) -> SortitionDraw:
    title = title.strip()
    if not title or len(title) > 200:
        raise InvalidInput("invalid_title", "un tirage a besoin d'un titre de 1 à 200 caractères")
    if set(quotas) != set(STRATA):
        raise InvalidInput("invalid_quotas", "il faut le nombre de places de chacune des 12 strates")
    for stratum, seats in quotas.items():
        if not 0 <= seats <= MAX_SEATS_PER_STRATUM:
            raise InvalidInput("invalid_seats", f"strate {stratum} : le nombre de places doit être entre 0 et {MAX_SEATS_PER_STRATUM}")
    draw = SortitionDraw(title=title, status=SortitionStatus.OPEN, created_by=by)
    session.add(draw)
    session.flush()
    assert draw.id is not None
    session.add_all(SortitionQuota(draw_id=draw.id, income_quartile=q, age_band=a, seats=quotas[(q, a)]) for q, a in STRATA)
    session.flush()
    return draw


def register_volunteer(
    session: Session, *, draw_id: int, name: str, contact: str | None, income_quartile: int, age_band: int
) -> SortitionVolunteer:
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.OPEN, action="inscrire un volontaire")
    return _add_volunteer(session, draw=draw, name=name, contact=contact, stratum=(income_quartile, age_band))


def import_volunteers(session: Session, *, draw_id: int, content: str) -> int:
    """CSV lines `nom,contact,quartile_revenu,tranche_age` (a header line is optional). All or
    nothing: the first bad line raises with its number and nothing is registered."""
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.OPEN, action="inscrire des volontaires")
    reader = csv.reader(io.StringIO(content))
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if rows and [cell.strip().lower() for cell in rows[0][1]] == list(IMPORT_COLUMNS):
        rows = rows[1:]
    parsed = [_parse_line(row, line=line) for line, row in rows]
    for name, contact, stratum in parsed:
        _add_volunteer(session, draw=draw, name=name, contact=contact, stratum=stratum)
    return len(parsed)


def publish_seed(session: Session, *, draw_id: int, phrase: str, by: str) -> SortitionDraw:
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
    return draw


def run_draw(session: Session, *, draw_id: int, by: str) -> list[StratumResult]:
    draw = _draw_in(session, draw_id=draw_id, status=SortitionStatus.SEALED, action="lancer le tirage")
    assert draw.seed_hex is not None, "a sealed draw has its seed"
    volunteers = volunteers_of(session, draw_id=draw_id)
    placements = compute_draw(seed_hex=draw.seed_hex, entries=[_entry(v) for v in volunteers], quotas=quotas_of(session, draw_id=draw_id))
    for volunteer in volunteers:
        volunteer.rank, volunteer.selected = placements[volunteer.number].rank, placements[volunteer.number].selected
    draw.status, draw.drawn_by, draw.drawn_at = SortitionStatus.DRAWN, by, utcnow()
    session.flush()
    return strata_results(session, draw_id=draw_id)


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
    return list(session.execute(select(SortitionDraw).order_by(SortitionDraw.id.desc())).scalars())  # type: ignore[union-attr]


def quotas_of(session: Session, *, draw_id: int) -> dict[Stratum, int]:
    rows = session.execute(select(SortitionQuota).where(SortitionQuota.draw_id == draw_id)).scalars()  # type: ignore[arg-type]
    return {(row.income_quartile, row.age_band): row.seats for row in rows}


def volunteers_of(session: Session, *, draw_id: int) -> list[SortitionVolunteer]:
    query = select(SortitionVolunteer).where(SortitionVolunteer.draw_id == draw_id).order_by(SortitionVolunteer.number)  # type: ignore[arg-type]
    return list(session.execute(query).scalars())


def strata_results(session: Session, *, draw_id: int) -> list[StratumResult]:
    """Per stratum: seats, volunteers, and how many the draw selected (0 before the draw)."""
    quotas = quotas_of(session, draw_id=draw_id)
    counts: dict[Stratum, list[int]] = {stratum: [0, 0] for stratum in STRATA}
    for volunteer in volunteers_of(session, draw_id=draw_id):
        tally = counts[(volunteer.income_quartile, volunteer.age_band)]
        tally[0] += 1
        tally[1] += 1 if volunteer.selected else 0
    return [StratumResult(stratum=s, seats=quotas.get(s, 0), volunteers=counts[s][0], selected=counts[s][1]) for s in STRATA]


def export_csv(session: Session, *, draw_id: int, with_names: bool) -> str:
    """The result, one volunteer a line, in French. Without names it is the public list anyone
    can re-run the draw from."""
    draw = get_draw(session, draw_id=draw_id)
    quotas = quotas_of(session, draw_id=draw_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["numero", *(["nom", "contact"] if with_names else []), "quartile_revenu", "tranche_age",
                     "places_strate", "cle_sha256", "rang", "resultat"])
    for v in volunteers_of(session, draw_id=draw_id):
        key = draw_key(draw.seed_hex, v.number) if draw.seed_hex else ""
        outcome = "" if v.selected is None else (SELECTED if v.selected else WAITING)
        writer.writerow([v.number, *([v.name, v.contact or ""] if with_names else []), v.income_quartile, v.age_band,
                         quotas.get((v.income_quartile, v.age_band), 0), key, v.rank or "", outcome])
    return out.getvalue()


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
    query = select(func.count()).select_from(SortitionVolunteer).where(SortitionVolunteer.draw_id == draw_id)  # type: ignore[arg-type]
    return int(session.execute(query).scalar_one())


def _add_volunteer(session: Session, *, draw: SortitionDraw, name: str, contact: str | None, stratum: Stratum) -> SortitionVolunteer:
    name, contact = name.strip(), (contact or "").strip() or None
    if not name or len(name) > 200 or (contact is not None and len(contact) > 200):
        raise InvalidInput("invalid_volunteer", "un volontaire a besoin d'un nom (et d'un contact) d'au plus 200 caractères")
    if stratum not in STRATA:
        raise InvalidInput("invalid_stratum", "le quartile de revenu va de 1 à 4 et la tranche d'âge de 1 à 3")
    assert draw.id is not None
    last = session.execute(select(func.max(SortitionVolunteer.number)).where(SortitionVolunteer.draw_id == draw.id)).scalar_one()  # type: ignore[arg-type]
    if (last or 0) >= MAX_VOLUNTEERS:
        raise Conflict("too_many_volunteers", f"un tirage compte au plus {MAX_VOLUNTEERS} volontaires")
    volunteer = SortitionVolunteer(draw_id=draw.id, number=(last or 0) + 1, name=name, contact=contact,
                                   income_quartile=stratum[0], age_band=stratum[1])
    session.add(volunteer)
    session.flush()
    return volunteer


def _parse_line(row: list[str], *, line: int) -> tuple[str, str | None, Stratum]:
    cells = [cell.strip() for cell in row]
    if len(cells) != len(IMPORT_COLUMNS):
        raise InvalidInput("invalid_import", f"ligne {line} : {len(IMPORT_COLUMNS)} colonnes attendues ({', '.join(IMPORT_COLUMNS)})")
    name, contact, quartile, band = cells
    if not (quartile.isdecimal() and band.isdecimal()) or (int(quartile), int(band)) not in STRATA:
        raise InvalidInput("invalid_import", f"ligne {line} : le quartile de revenu va de 1 à 4 et la tranche d'âge de 1 à 3")
    if not name or len(name) > 200 or len(contact) > 200:
        raise InvalidInput("invalid_import", f"ligne {line} : un nom est requis (200 caractères au plus)")
    return name, contact or None, (int(quartile), int(band))


def _entry(volunteer: SortitionVolunteer) -> Entry:
    return Entry(number=volunteer.number, stratum=(volunteer.income_quartile, volunteer.age_band))
