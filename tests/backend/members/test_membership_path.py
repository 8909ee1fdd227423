"""From the volunteers' questionnaire to paid allowances, typing nothing twice: the path a caisse
team takes at the start of a year (docs/guide/adhesion.md), through the services the console and
the CLI call."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from fractions import Fraction

import time_machine
from sqlalchemy import select
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.fund import allowances
from caisse.ledger import postings as ledger
from caisse.members import means, sortition
from caisse.members.sortition import STRATA
from caisse.models import Card, Household, SortitionVolunteer
from caisse.months import Month
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import staff_account
from tests.fixtures.database import make_settings

STAFF = "coordination@caisse.test"
CLOSING = date(2026, 3, 15)
# Population shares per stratum (quartile 1..4 x under 30, 30-60, over 60), as staff type them.
SHARES = ["6", "11", "8", "5", "12", "8", "6", "13", "7", "5", "12", "7"]
BIRTHS = {1: "02/05/2000", 2: "15/03/1980", 3: "15/03/1960"}  # 25, 46 and 66 on the closing date


def _questionnaire(rng: random.Random, count: int) -> bytes:
    """What staff export from their form tool: Excel's Windows-1252, `;`, French headers."""
    lines = ["Nom;Contact;Quartile de revenu;Date de naissance;Taille du foyer;Où faites-vous vos courses"]
    for n in range(1, count + 1):
        quartile, band = STRATA[rng.randrange(len(STRATA))]
        lines.append(f"Foyer Émile {n};emile{n}@exemple.fr;{quartile};{BIRTHS[band]};{rng.randint(1, 5)};marché des Arceaux")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def test_volunteers_become_households_with_cards_and_allowances_without_retyping(session: Session) -> None:
    staff_account(session, STAFF)
    shares = {stratum: sortition.parse_share(text) for stratum, text in zip(STRATA, SHARES, strict=True)}
    assert sum(shares.values()) == Fraction(100)
    draw = sortition.create_draw(session, title="Entrée 2026", shares=shares, total_seats=12, closing_date=CLOSING, by=STAFF)
    assert draw.id is not None
    content = _questionnaire(random.Random(2026), 60)
    report = sortition.import_volunteers(session, draw_id=draw.id, content=content, by=STAFF)
    assert (report.imported, report.errors) == (60, [])
    sortition.publish_seed(session, draw_id=draw.id, phrase="Tirage public du 20 mars 2026", by=STAFF)
    results = sortition.run_draw(session, draw_id=draw.id, by=STAFF)
    assert sum(r.seats for r in results) == 12
    assert sum(r.selected for r in results) + sum(r.shortfall for r in results) == 12

    # One invited household declines; the next of its stratum is invited in its place.
    volunteers = sortition.volunteers_of(session, draw_id=draw.id)
    invited = [v for v in volunteers if v.invitation == "invited"]
    declining = next(v for v in invited if sortition.next_in_reserve(session, draw_id=draw.id, stratum=(v.income_quartile, v.age_band)))
    assert declining.id is not None
    replacement = sortition.decline_invitation(session, volunteer_id=declining.id, by=STAFF)
    assert replacement is not None and (replacement.income_quartile, replacement.age_band) == (declining.income_quartile, declining.age_band)

    accepted: dict[int, SortitionVolunteer] = {}
    with time_machine.travel(datetime(2026, 3, 31, 21, 30, tzinfo=UTC), tick=False):  # 23:30 in Paris: still March
        for volunteer in session.execute(select(SortitionVolunteer).where(SortitionVolunteer.invitation == "invited")).scalars().all():  # type: ignore[arg-type]
            assert volunteer.id is not None
            accepted[sortition.accept_invitation(session, volunteer_id=volunteer.id, zone="Figuerolles", by=STAFF)] = volunteer
    assert len(accepted) == len(invited)
    for number, household_id in enumerate(sorted(accepted), start=1):
        card_service.issue_card(session, household_id=household_id, uid_hex=f"04a1b2c3d4e5{number:02x}", by=STAFF)
    session.commit()

    for household_id, volunteer in accepted.items():
        household = session.get(Household, household_id)
        assert household is not None and (household.name, household.members) == (volunteer.name, volunteer.household_size)
        first = means.means_at(session, household_id=household_id, month="2026-04")
        assert first is not None and (first.size, first.income_quartile) == (volunteer.household_size, volunteer.income_quartile)
    assert len(session.execute(select(Card.household_id)).scalars().all()) == len(accepted)

    settings = make_settings()
    for month in ("2026-03", "2026-04"):
        allowances.allocate(session, month=month, settings=settings, by=STAFF)
    session.commit()
    for household_id in accepted:  # joined on 31 March in Paris: one day of March pro rata, then 100 MonA
        march, april = (ledger.find_transfer(session, reference=allowances.allowance_reference(household_id, Month.parse(m)))
                        for m in ("2026-03", "2026-04"))
        assert march is not None and april is not None
        assert (march.amount_cents, april.amount_cents) == (10_000 // 31, 10_000)
        assert ledger.balance_cents(session, code=ledger.member_code(household_id)) == 10_000 // 31 + 10_000
    assert_ledger_invariants(session)
