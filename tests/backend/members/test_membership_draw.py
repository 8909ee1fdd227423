"""The questionnaire's draw (caisse.members.sortition, scheme 2026): age bands at the closing date,
quotas from population shares by largest remainder, invitations and their reserve."""

from __future__ import annotations

import csv
import io
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session

from caisse import audit
from caisse.errors import Conflict, InvalidInput
from caisse.members import means, sortition
from caisse.members.sortition import SCHEME_2024, SCHEME_2026, SCHEMES, STRATA, age_in_completed_years, quotas_from_shares
from caisse.models import Household, SortitionVolunteer
from tests.backend.factories import staff_account

CLOSING = date(2026, 3, 15)
# Page and command logic, and paths with no SQL of their own: SQLite only; the SQL paths run on both.
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
STAFF = "coordination@caisse.test"


def _staff(session: Session) -> str:
    staff_account(session, STAFF)
    return STAFF


def _band_on_closing(birth: date) -> int | None:
    return SCHEMES[SCHEME_2026].band_of(age_in_completed_years(birth, on=CLOSING))


@pytest.mark.parametrize(("birth", "band"), [
    (date(1996, 3, 16), 1),  # 29 the day after the closing date: still under 30
    (date(1996, 3, 15), 2),  # 30 on the closing date itself
    (date(1965, 3, 16), 2),  # 60 until the day after
    (date(1965, 3, 15), 3),  # 61 on the closing date
    (date(1966, 3, 15), 2),  # 60 that day: "30 to 60 inclusive"
    (date(1997, 3, 14), 1),
])
def test_age_bands_count_completed_years_at_the_closing_date(birth: date, band: int) -> None:
    assert _band_on_closing(birth) == band


def test_a_birthday_on_29_february_is_reached_on_1_march_in_a_common_year() -> None:
    born = date(1996, 2, 29)
    assert age_in_completed_years(born, on=date(2026, 2, 28)) == 29
    assert age_in_completed_years(born, on=date(2026, 3, 1)) == 30


def test_the_old_scheme_keeps_its_bands() -> None:
    old = SCHEMES[SCHEME_2024]
    assert [old.band_of(age) for age in (18, 34, 35, 59, 60, 90)] == [1, 1, 2, 2, 3, 3]


def test_largest_remainder_gives_the_leftover_seats_to_the_largest_remainders_ties_in_stratum_order() -> None:
    shares = dict.fromkeys(STRATA, Fraction(1))  # 12 equal shares, 14 seats: 2 left over, all tied
    quotas = quotas_from_shares(shares, 14)
    assert [quotas[s] for s in STRATA] == [2, 2] + [1] * 10  # quartile 1 band 1, then quartile 1 band 2
    shares[(4, 3)] = Fraction(3, 2)  # 5 seats: 0.4 each, 0.6 for the last stratum, the largest remainder
    quotas = quotas_from_shares(shares, 5)
    assert [quotas[s] for s in STRATA] == [1, 1, 1, 1] + [0] * 7 + [1]


def test_percentages_and_counts_give_the_same_quotas() -> None:
    percentages = [sortition.parse_share(text) for text in ("8,5", "12", "5.5 %", "9", "10", "4", "7", "11", "6", "8", "10", "9")]
    counts = [share * 1000 for share in percentages]
    assert quotas_from_shares(dict(zip(STRATA, percentages, strict=True)), 40) == \
        quotas_from_shares(dict(zip(STRATA, counts, strict=True)), 40)
    assert sortition.parse_share("12\u202f000") == 12_000 and sortition.parse_share(" 8,5 % ") == Fraction(17, 2)
    for text in ("douze", "1e999999", "-3", "NaN", "Infinity", ""):
        with pytest.raises(InvalidInput):
            sortition.parse_share(text)
    with pytest.raises(InvalidInput):
        quotas_from_shares(dict.fromkeys(STRATA, Fraction(0)), 10)


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=12, max_size=12).filter(any),
       st.integers(min_value=0, max_value=2_000))
def test_quotas_sum_to_the_seats_and_each_is_the_floor_or_ceiling_of_its_exact_share(shares: list[int], seats: int) -> None:
    table = {stratum: Fraction(share) for stratum, share in zip(STRATA, shares, strict=True)}
    quotas = quotas_from_shares(table, seats)
    assert sum(quotas.values()) == seats
    for stratum in STRATA:
        exact = Fraction(seats) * table[stratum] / sum(table.values())
        assert quotas[stratum] in (exact.numerator // exact.denominator, -(-exact.numerator // exact.denominator))


QUESTIONNAIRE = (
    "Nom;Contact;Quartile de revenu;Date de naissance;Taille du foyer;Commerces\n"
    + "".join(f"Volontaire {n};v{n}@exemple.fr;1;16/03/1996;{n};marché\n" for n in range(1, 6))  # quartile 1, under 30
    + "Awa Diop;;4;15/03/1965;1;\n"  # 61 on the closing date
)


def _questionnaire_draw(session: Session, *, seats: dict[tuple[int, int], int] | None = None) -> int:
    quotas = seats or {**dict.fromkeys(STRATA, 0), (1, 1): 2, (4, 3): 1}
    draw = sortition.create_draw(session, title="Entrée 2026", quotas=quotas, closing_date=CLOSING, by=STAFF)
    assert draw.id is not None and draw.scheme == SCHEME_2026
    return draw.id


@SQLITE_ONLY
def test_the_questionnaire_is_imported_with_french_headers_and_bands_computed_at_closing(session: Session) -> None:
    draw_id = _questionnaire_draw(session)
    report = sortition.import_volunteers(session, draw_id=draw_id, content=QUESTIONNAIRE.encode("cp1252"), by=STAFF)
    assert report.imported == 6 and report.errors == []
    awa = sortition.volunteers_of(session, draw_id=draw_id)[5]
    assert (awa.name, awa.income_quartile, awa.age_band, awa.household_size, awa.birth_date) == ("Awa Diop", 4, 3, 1, date(1965, 3, 15))


def test_a_bad_questionnaire_reports_every_bad_row_and_imports_nothing_unless_asked_to_skip(session: Session) -> None:
    draw_id = _questionnaire_draw(session)
    content = QUESTIONNAIRE + "Bob;;5;01/01/1980;2;\nChloé;;2;31/02/1980;2;\nDan;;2;01/01/2020;2;\nEve;;2;01/01/1980;zéro;\n"
    with pytest.raises(InvalidInput) as raised:
        sortition.import_volunteers(session, draw_id=draw_id, content=content)
    assert [f"ligne {n} :" in raised.value.detail for n in (8, 9, 10, 11)] == [True] * 4
    assert "ligne 7 :" not in raised.value.detail
    assert session.execute(select(func.count()).select_from(SortitionVolunteer)).scalar_one() == 0
    report = sortition.import_volunteers(session, draw_id=draw_id, content=content, skip_bad_rows=True)
    assert report.imported == 6 and len(report.errors) == 4


def _drawn_with_reserve(session: Session) -> int:
    """Stratum (1, 1): 5 volunteers for 2 seats, so a reserve of 3; stratum (4, 3): 1 for 1."""
    _staff(session)
    draw_id = _questionnaire_draw(session)
    sortition.import_volunteers(session, draw_id=draw_id, content=QUESTIONNAIRE)
    sortition.publish_seed(session, draw_id=draw_id, phrase="Loto du 14 mars", by=STAFF)
    sortition.run_draw(session, draw_id=draw_id, by=STAFF)
    return draw_id


def _by_rank(session: Session, draw_id: int) -> list[SortitionVolunteer]:
    volunteers = [v for v in sortition.volunteers_of(session, draw_id=draw_id) if (v.income_quartile, v.age_band) == (1, 1)]
    return sorted(volunteers, key=lambda v: v.rank or 0)


def test_a_decline_invites_the_next_of_the_same_stratum_in_rank_order_and_the_draw_still_verifies(session: Session) -> None:
    draw_id = _drawn_with_reserve(session)
    first, second, third, fourth, fifth = _by_rank(session, draw_id)
    assert [v.invitation for v in (first, second, third)] == ["invited", "invited", None]
    assert first.id is not None and third.id is not None
    replacement = sortition.decline_invitation(session, volunteer_id=first.id, by=STAFF)
    assert replacement is not None and replacement.id == third.id
    with pytest.raises(Conflict):  # a second click on "refuse" invites nobody else
        sortition.decline_invitation(session, volunteer_id=first.id, by=STAFF)
    assert fourth.invitation is None
    assert sortition.decline_invitation(session, volunteer_id=third.id, by=STAFF).id == fourth.id  # type: ignore[union-attr]
    assert sortition.verify_draw(session, draw_id=draw_id)  # the draw's result is unchanged
    events = audit.events(session, action_prefix="sortition.decline")
    assert [e.detail for e in events][-1] == f'{{"number": {first.number}, "replaced_by": {third.number}}}'


@SQLITE_ONLY
def test_a_decline_with_an_empty_reserve_invites_nobody(session: Session) -> None:
    draw_id = _drawn_with_reserve(session)
    [awa] = [v for v in sortition.volunteers_of(session, draw_id=draw_id) if v.income_quartile == 4]
    assert awa.id is not None
    assert sortition.decline_invitation(session, volunteer_id=awa.id, by=STAFF) is None
    results = {r.stratum: r for r in sortition.strata_results(session, draw_id=draw_id)}
    assert (results[(4, 3)].shortfall, results[(4, 3)].to_reach) == (0, 1)  # its seat is now for outreach
    assert results[(1, 1)].to_reach == 0
    with pytest.raises(InvalidInput):  # not an active console account
        sortition.decline_invitation(session, volunteer_id=awa.id, by="quelqu'un")


@SQLITE_ONLY
def test_accepting_creates_the_household_from_the_answers_without_retyping(session: Session) -> None:
    draw_id = _drawn_with_reserve(session)
    first = _by_rank(session, draw_id)[0]
    assert first.id is not None
    household_id = sortition.accept_invitation(session, volunteer_id=first.id, zone="Celleneuve", by=STAFF)
    household = session.get(Household, household_id)
    assert household is not None and (household.name, household.members, household.zone) == (first.name, first.household_size, "Celleneuve")
    assert first.household_id == household_id and first.invitation == "accepted"
    first_means = means.means_at(session, household_id=household_id, month="2099-01")
    assert first_means is not None and (first_means.size, first_means.income_quartile) == (first.household_size, first.income_quartile)
    with pytest.raises(Conflict):
        sortition.accept_invitation(session, volunteer_id=first.id, zone="Celleneuve", by=STAFF)
    assert session.execute(select(func.count()).select_from(Household)).scalar_one() == 1


@SQLITE_ONLY
def test_the_public_export_keeps_the_scheme_and_invitations_without_names(session: Session) -> None:
    draw_id = _drawn_with_reserve(session)
    first = _by_rank(session, draw_id)[0]
    assert first.id is not None
    sortition.decline_invitation(session, volunteer_id=first.id, by=STAFF)
    export = sortition.export_csv(session, draw_id=draw_id, with_names=False)
    rows = list(csv.DictReader(io.StringIO(export)))
    assert {r["bareme_ages"] for r in rows} == {SCHEME_2026} and "Volontaire" not in export and "Awa" not in export
    assert sorted(r["invitation"] for r in rows) == ["", "", "invité", "invité", "invité", "refusé"]
    assert sortition.replay_export(export, phrase="Loto du 14 mars") == []


@SQLITE_ONLY
def test_the_draw_commands_import_decline_and_accept_in_french(engine, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from caisse.cli.main import app
    from caisse.db import session_factory

    monkeypatch.setenv("CAISSE_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "test-admin-token")
    with session_factory(engine)() as session:
        _staff(session)
        draw_id = _questionnaire_draw(session)
        session.commit()
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_bytes((QUESTIONNAIRE + "Bob;;5;01/01/1980;2;\n").encode("cp1252"))
    refused = runner.invoke(app, ["tirage", "importer", str(draw_id), str(bad), "--by", STAFF])
    assert refused.exit_code == 1 and "ligne 8 :" in refused.stderr and "Traceback" not in refused.output
    skipped = runner.invoke(app, ["sortition", "importer", str(draw_id), str(bad), "--by", STAFF, "--ignorer-erreurs"])
    assert skipped.exit_code == 0 and skipped.stdout.strip() == "6" and "Ignorée : ligne 8" in skipped.stderr
    with session_factory(engine)() as session:
        sortition.publish_seed(session, draw_id=draw_id, phrase="graine", by=STAFF)
        sortition.run_draw(session, draw_id=draw_id, by=STAFF)
        first, second = [v.id for v in _by_rank(session, draw_id)][:2]
        session.commit()
    declined = runner.invoke(app, ["sortition", "refuser", str(first), "--by", STAFF])
    assert declined.exit_code == 0 and "est invité à sa place" in declined.stderr
    accepted = runner.invoke(app, ["sortition", "accepter", str(second), "--quartier", "Celleneuve", "--by", STAFF])
    assert accepted.exit_code == 0 and "card issue --household" in accepted.stderr
    assert "Tirage au sort" in runner.invoke(app, ["sortition", "--help"]).output


def test_two_declines_at_once_in_one_stratum_invite_two_different_volunteers(engine, session: Session) -> None:  # type: ignore[no-untyped-def]
    """Two staff decline for two volunteers of one stratum at the same moment (PostgreSQL: truly
    concurrent; SQLite: one after the other): each decline invites its own replacement."""
    import threading

    from caisse.db import session_factory

    draw_id = _drawn_with_reserve(session)
    session.commit()
    first, second = (v.id for v in _by_rank(session, draw_id)[:2])
    session.commit()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def decline(volunteer_id: int | None) -> None:
        assert volunteer_id is not None
        try:
            with session_factory(engine)() as own:
                barrier.wait()
                sortition.decline_invitation(own, volunteer_id=volunteer_id, by=STAFF)
                own.commit()
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=decline, args=(v,)) for v in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    session.expire_all()
    ranked = _by_rank(session, draw_id)
    assert [v.invitation for v in ranked] == ["declined", "declined", "invited", "invited", None]
