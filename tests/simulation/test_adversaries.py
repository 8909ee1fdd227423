"""The hostile and mistaken actors (caisse.simulation.adversaries), three seeds: for each, no euro
is lost or paid twice (every ledger invariant and the auditor's own expectations hold), and each
adversary meets the bound or the flag its defence promises (one test per seed and adversary, so
a broken defence names itself).

`make simulate-20` (or `caisse simulate --seeds 20`) runs twenty seeds and prints how long."""

from __future__ import annotations

from functools import cache

import pytest
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.simulation import SimulationConfig, simulate
from caisse.simulation.faults import ADVERSARIES, PASSING, FaultKind

SEEDS = (3, 7, 11)
FAULTS_CHECK = "each fault detected or survived"


def config(seed: int) -> SimulationConfig:
    return SimulationConfig(terminals=6, members=24, days=2, seed=seed, power_cuts=1, network_drops=5, clones=2)


@cache
def run(seed: int) -> dict:
    return simulate(config(seed))


@pytest.mark.parametrize("seed", SEEDS)
def test_no_euro_is_lost_or_paid_twice(seed: int) -> None:
    report = run(seed)
    broken = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["passed"] and c["name"] != FAULTS_CHECK]
    assert not broken, f"graine {seed} (caisse simulate --seed {seed}): {broken}"
    failed = [f"{f['kind']}: {f['why']}" for f in report["faults"] if f["outcome"] not in PASSING]
    assert not failed, f"graine {seed} (caisse simulate --seed {seed}): {failed}"
    happened = {f["kind"] for f in report["faults"] if f["outcome"] != "not_triggered"}
    assert happened >= {kind.value for kind in ADVERSARIES}, f"graine {seed}: {sorted(happened)}"


@pytest.mark.parametrize(("seed", "kind"), [pytest.param(seed, kind, id=f"{seed}-{kind.value}")
                                             for seed in SEEDS for kind in sorted(ADVERSARIES)])
def test_each_adversary_meets_its_defence(seed: int, kind: FaultKind) -> None:
    faults = [f for f in run(seed)["faults"] if f["kind"] == kind]
    assert faults and all(f["outcome"] in PASSING for f in faults), \
        f"graine {seed} (caisse simulate --seed {seed}): {[(f['outcome'], f['why']) for f in faults]}"


def test_twenty_seeds_print_each_seed_and_how_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """--seeds runs one seed after the other: a broken one is named, with the command to replay it."""
    results = iter([{"passed": True, "checks": [], "faults": []},
                    {"passed": False, "checks": [{"name": "ledger: balances_sum_to_zero", "passed": False, "detail": "x",
                                                  "title": "la somme des soldes est nulle"}], "faults": []}])
    monkeypatch.setattr("caisse.simulation.simulate", lambda _config: next(results))
    result = CliRunner().invoke(app, ["simulate", "--seeds", "2", "--seed", "40"])
    assert result.exit_code == 1
    assert "graine 40 : tous les invariants tiennent" in result.stdout
    assert "graine 41 : INVARIANT ROMPU" in result.stdout and "la somme des soldes est nulle" in result.stdout
    assert "2 graines en " in result.stdout and " s par graine)" in result.stdout
    assert "relancer avec --seed 41" in result.stderr
