"""Sortition (caisse.members.sortition): quotas respected, reproducible from the published seed, fair."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.errors import Conflict, InvalidInput
from caisse.members import sortition
from caisse.members.sortition import STRATA, Entry, compute_draw
from caisse.models import SortitionVolunteer

# Upper 0.1 % points of the chi-square distribution (scipy.stats.chi2.ppf(0.999, df)). The seeds
# below are fixed, so each test is deterministic: it cannot fail by bad luck on some other day.
CHI2_999 = {9: 27.877, 119: 172.48}


def _chi_square(observed: Counter[object], cells: list[object], expected: float) -> float:
    return sum((observed[cell] - expected) ** 2 / expected for cell in cells)


def _stratum_selections(select: object, *, volunteers: int, seats: int, runs: int) -> Counter[object]:
    """How often each subset of one stratum is drawn over `runs` seeds."""
    entries = [Entry(number=n, stratum=(1, 1)) for n in range(1, volunteers + 1)]
    subsets: Counter[object] = Counter()
    for run in range(runs):
        placements = select(seed_hex=sortition.seed_of(f"essai {run}"), entries=entries, quotas={(1, 1): seats})  # type: ignore[operator]
        subsets[frozenset(n for n, p in placements.items() if p.selected)] += 1
    return subsets


def test_each_volunteer_of_an_oversubscribed_stratum_is_equally_likely_to_be_selected() -> None:
    volunteers, seats, runs = 10, 3, 4000
    subsets = _stratum_selections(compute_draw, volunteers=volunteers, seats=seats, runs=runs)
    per_volunteer: Counter[object] = Counter()
    for subset, count in subsets.items():
        assert len(subset) == seats  # type: ignore[arg-type]
        for number in subset:  # type: ignore[attr-defined]
            per_volunteer[number] += count
    expected = runs * seats / volunteers
    assert _chi_square(per_volunteer, list(range(1, volunteers + 1)), expected) < CHI2_999[volunteers - 1]


def test_every_subset_of_the_seats_is_equally_likely() -> None:
    volunteers, seats, runs = 10, 3, 6000
    subsets = _stratum_selections(compute_draw, volunteers=volunteers, seats=seats, runs=runs)
    cells: list[object] = [frozenset(c) for c in itertools.combinations(range(1, volunteers + 1), seats)]
    assert len(cells) == 120 and set(subsets) <= set(cells)
    assert _chi_square(subsets, cells, runs / len(cells)) < CHI2_999[len(cells) - 1]


def test_the_fairness_check_catches_a_draw_that_favours_early_registrations() -> None:
    def biased(*, seed_hex: str, entries: list[Entry], quotas: dict[object, int]) -> dict[int, sortition.Placement]:
        fair = compute_draw(seed_hex=seed_hex, entries=entries, quotas=quotas)
        # Volunteer 1 takes the seat of the last selected volunteer whenever it lost the draw.
        if not fair[1].selected:
            last = max((n for n, p in fair.items() if p.selected), key=lambda n: fair[n].rank)
            fair[1], fair[last] = fair[last], fair[1]
        return fair

    runs = 4000
    subsets = _stratum_selections(biased, volunteers=10, seats=3, runs=runs)
    per_volunteer: Counter[object] = Counter()
    for subset, count in subsets.items():
        for number in subset:  # type: ignore[attr-defined]
            per_volunteer[number] += count
    assert _chi_square(per_volunteer, list(range(1, 11)), runs * 3 / 10) > CHI2_999[9]


def test_the_order_is_sha256_of_seed_and_number_as_documented() -> None:
    seed = hashlib.sha256("Loto du 2 décembre 2026 : 4 11 23 37 45".encode()).hexdigest()
    entries = [Entry(number=n, stratum=(2, 3)) for n in range(1, 8)]
    placements = compute_draw(seed_hex=seed, entries=entries, quotas={(2, 3): 2})
    by_hand = sorted(range(1, 8), key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
    assert [n for n in sorted(placements, key=lambda n: placements[n].rank)] == by_hand
    assert {n for n, p in placements.items() if p.selected} == set(by_hand[:2])


def test_even_quotas_spread_the_seats_over_the_twelve_strata() -> None:
    quotas = sortition.even_quotas(30)
    assert set(quotas) == set(STRATA) and sum(quotas.values()) == 30
    assert max(quotas.values()) - min(quotas.values()) == 1
    with pytest.raises(InvalidInput):
        sortition.even_quotas(-1)


# The stored draw ---------------------------------------------------------------------------------

def _quotas() -> dict[tuple[int, int], int]:
    quotas = dict.fromkeys(STRATA, 1)
    quotas[(1, 1)] = 2  # oversubscribed below: 5 volunteers for 2 seats
    quotas[(4, 3)] = 3  # undersubscribed below: 1 volunteer for 3 seats
    return quotas


VOLUNTEERS = "\n".join(
    ["nom,contact,quartile_revenu,tranche_age"]
    + [f"Volontaire {n},v{n}@exemple.fr,1,1" for n in range(1, 6)]
    + ["Awa Diop,,4,3", "Jean Martin,06 00 00 00 00,2,2", "Lucie Bernard,,2,2"]
)


def _drawn(session: Session, *, phrase: str) -> int:
    draw = sortition.create_draw(session, title="Comité 2027", quotas=_quotas(), by="coordination")
    assert draw.id is not None
    assert sortition.import_volunteers(session, draw_id=draw.id, content=VOLUNTEERS).imported == 8
    sortition.publish_seed(session, draw_id=draw.id, phrase=phrase, by="coordination")
    sortition.run_draw(session, draw_id=draw.id, by="coordination")
    session.commit()
    return draw.id


def test_a_draw_respects_the_quotas_and_lists_undersubscribed_strata(session: Session) -> None:
    draw_id = _drawn(session, phrase="Une phrase publique")
    results = {r.stratum: r for r in sortition.strata_results(session, draw_id=draw_id)}
    assert (results[(1, 1)].volunteers, results[(1, 1)].selected, results[(1, 1)].shortfall) == (5, 2, 0)
    assert results[(1, 1)].oversubscribed
    assert (results[(4, 3)].volunteers, results[(4, 3)].selected, results[(4, 3)].shortfall) == (1, 1, 2)
    assert (results[(2, 2)].volunteers, results[(2, 2)].selected) == (2, 1)
    assert results[(3, 1)].shortfall == 1 and results[(3, 1)].volunteers == 0
    for result in results.values():
        assert result.selected == min(result.seats, result.volunteers)
    ranks = sorted(v.rank for v in sortition.volunteers_of(session, draw_id=draw_id) if v.income_quartile == 1)
    assert ranks == [1, 2, 3, 4, 5]
    assert sortition.verify_draw(session, draw_id=draw_id)


def test_the_same_seed_and_list_give_the_same_result_and_another_seed_changes_it(session: Session) -> None:
    first, second = _drawn(session, phrase="Graine A"), _drawn(session, phrase="Graine A")
    other = _drawn(session, phrase="Graine B")

    def outcome(draw_id: int) -> list[tuple[int, int | None, bool | None]]:
        return [(v.number, v.rank, v.selected) for v in sortition.volunteers_of(session, draw_id=draw_id)]

    assert outcome(first) == outcome(second)
    assert outcome(first) != outcome(other)
    assert sortition.export_csv(session, draw_id=first, with_names=False) == sortition.export_csv(session, draw_id=second, with_names=False)


def test_verification_notices_a_result_changed_after_the_draw(session: Session) -> None:
    draw_id = _drawn(session, phrase="Graine")
    loser = next(v for v in sortition.volunteers_of(session, draw_id=draw_id) if v.selected is False)
    loser.selected = True
    session.flush()
    assert not sortition.verify_draw(session, draw_id=draw_id)


def test_the_public_export_has_no_names_and_lets_anyone_re_run_the_draw(session: Session) -> None:
    draw_id = _drawn(session, phrase="Graine publique")
    rows = list(csv.DictReader(io.StringIO(sortition.export_csv(session, draw_id=draw_id, with_names=False))))
    assert "nom" not in rows[0] and "Awa" not in str(rows)
    seed = sortition.seed_of("Graine publique")
    entries = [Entry(number=int(r["numero"]), stratum=(int(r["quartile_revenu"]), int(r["tranche_age"]))) for r in rows]
    again = compute_draw(seed_hex=seed, entries=entries, quotas=_quotas())
    assert all(again[int(r["numero"])].rank == int(r["rang"]) for r in rows)
    assert {r["resultat"] for r in rows} == {"tiré au sort", "liste d'attente"}
    named = list(csv.DictReader(io.StringIO(sortition.export_csv(session, draw_id=draw_id, with_names=True))))
    assert named[5]["nom"] == "Awa Diop" and named[6]["contact"] == "06 00 00 00 00"


def test_replaying_the_public_export_confirms_the_result_and_names_any_tampered_line(session: Session) -> None:
    draw_id = _drawn(session, phrase="Graine publique")
    export = sortition.export_csv(session, draw_id=draw_id, with_names=False)
    assert sortition.replay_export(export, phrase="Graine publique") == []
    assert len(sortition.replay_export(export, phrase="Graine publique.")) == 8  # every key differs
    rows = list(csv.DictReader(io.StringIO(export)))
    waiting = next(r for r in rows if r["resultat"] == "liste d'attente")
    tampered = export.replace(f"{waiting['cle_sha256']},{waiting['rang']},liste d'attente", f"{waiting['cle_sha256']},{waiting['rang']},tiré au sort")
    [difference] = sortition.replay_export(tampered, phrase="Graine publique")
    assert difference.startswith(f"volontaire {waiting['numero']} :")
    with pytest.raises(InvalidInput):
        sortition.replay_export("nom,contact\nAwa,\n", phrase="Graine publique")


def test_the_cli_re_runs_a_draw_from_its_export(session: Session, tmp_path: Path) -> None:
    export = tmp_path / "tirage.csv"
    export.write_text(sortition.export_csv(session, draw_id=_drawn(session, phrase="Loto"), with_names=False), encoding="utf-8")
    confirmed = CliRunner().invoke(app, ["sortition", "verify", str(export), "--phrase", "Loto"])
    assert confirmed.exit_code == 0 and "Tirage confirmé" in confirmed.stderr
    refuted = CliRunner().invoke(app, ["sortition", "verify", str(export), "--phrase", "Loto 2"])
    assert refuted.exit_code == 1 and "NON confirmé" in refuted.stderr


def test_the_list_is_frozen_once_the_seed_is_published(session: Session) -> None:
    draw = sortition.create_draw(session, title="Comité", quotas=_quotas(), by="coordination")
    assert draw.id is not None
    with pytest.raises(Conflict):
        sortition.publish_seed(session, draw_id=draw.id, phrase="trop tôt", by="coordination")
    with pytest.raises(Conflict):
        sortition.run_draw(session, draw_id=draw.id, by="coordination")  # no seed published yet
    sortition.register_volunteer(session, draw_id=draw.id, name="Awa Diop", contact=None, income_quartile=1, age_band=2)
    sortition.publish_seed(session, draw_id=draw.id, phrase="graine", by="coordination")
    with pytest.raises(Conflict):
        sortition.register_volunteer(session, draw_id=draw.id, name="En retard", contact=None, income_quartile=1, age_band=2)
    with pytest.raises(Conflict):
        sortition.publish_seed(session, draw_id=draw.id, phrase="une autre graine", by="coordination")
    sortition.run_draw(session, draw_id=draw.id, by="coordination")
    with pytest.raises(Conflict):
        sortition.run_draw(session, draw_id=draw.id, by="coordination")


HEADER = "nom,contact,quartile_revenu,tranche_age\n"


@pytest.mark.parametrize(("content", "lines"), [
    (HEADER + "Awa,,1,1\nBob,,5,1", ["ligne 3"]),
    (HEADER + "Awa,,1,1\n\nBob,,1", ["ligne 4"]),
    (HEADER + "Awa,,1,1\n,,2,2", ["ligne 3"]),
    (HEADER + "Awa,,un,1\nBob,,1,4", ["ligne 2", "ligne 3"]),  # every bad line, not only the first
    (HEADER + "Awa,,\u00b2,1", ["ligne 2"]),  # '²' passes str.isdigit() but not int()
    ("Awa,,1,1", ["ligne 1"]),  # no header line: the columns are named in the error
])
def test_every_bad_import_line_is_named_and_nothing_is_registered(session: Session, content: str, lines: list[str]) -> None:
    draw = sortition.create_draw(session, title="Comité", quotas=_quotas(), by="coordination")
    assert draw.id is not None
    with pytest.raises(InvalidInput) as raised:
        sortition.import_volunteers(session, draw_id=draw.id, content=content)
    assert all(f"{line} :" in raised.value.detail for line in lines)
    assert session.execute(select(func.count()).select_from(SortitionVolunteer)).scalar_one() == 0


def test_bad_quotas_and_titles_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput):
        sortition.create_draw(session, title="Comité", quotas={(1, 1): 3}, by="x")
    with pytest.raises(InvalidInput):
        sortition.create_draw(session, title="Comité", quotas={**_quotas(), (1, 1): -1}, by="x")
    with pytest.raises(InvalidInput):
        sortition.create_draw(session, title="  ", quotas=_quotas(), by="x")
    draw = sortition.create_draw(session, title="Comité", quotas=_quotas(), by="x")
    assert draw.id is not None
    with pytest.raises(InvalidInput):
        sortition.register_volunteer(session, draw_id=draw.id, name="Awa", contact=None, income_quartile=0, age_band=1)
