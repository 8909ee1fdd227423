"""`caisse simulate`: deterministic market days driving the real firmware logic and the real
backend, with injected faults, and an auditor that checks the money at the end (docs/simulation.md).

    world.py     the caisse, the days, the events (one seeded random.Random, one event heap)
    adversaries.py  hostile and mistaken actors: what they do, and how each is judged
    stall.py     a vendor's terminal: caisse_terminal.Terminal on simulated peripherals
    backend.py   create_app behind httpx's ASGITransport, under the simulation's clock
    cards.py     basic and secure (SUN) member cards
    faults.py    the fault kinds and the faulty network
    auditor.py   the expected state and the invariants
    report.py    JSON and the French summary
    micropython.py  the same records rebuilt and signed in the real MicroPython runtime
"""

from __future__ import annotations

from sqlalchemy import func, select

from caisse.models import Card
from caisse.simulation.adversaries import Adversaries
from caisse.simulation.backend import SimulationError
from caisse.simulation.report import checks_json, faults_json, money
from caisse.simulation.world import SimulationConfig, World

__all__ = ["SimulationConfig", "SimulationError", "simulate"]


def simulate(config: SimulationConfig, *, corrupt=None) -> dict:
    """Run the simulation and return its report (see report.py). `corrupt(session)`, for the
    tests, breaks the database after the last night, before the auditor looks."""
    problems = config.problems()
    if problems:
        raise SimulationError("; ".join(problems))
    world = World(config)
    if config.adversaries:
        world.adversaries = world.auditor.adversaries = Adversaries(world)
    try:
        world.run()
        if corrupt is not None:
            with world.backend.session() as session:
                corrupt(session)
        with world.backend.session() as session:
            checks, facts = world.auditor.check(session)
            cash = money(session)
            cards = session.execute(select(func.count()).select_from(Card)).scalar_one()
        mpy = None
        if config.micropython_terminals:
            from caisse.simulation.micropython import compare_records

            mpy = compare_records(world, config.micropython_terminals)
            checks.append(mpy.check())
    finally:
        world.backend.close()
    return {
        "seed": config.seed,
        "config": {"terminals": config.terminals, "members": config.members, "days": config.days,
                   "power_cuts": config.power_cuts, "network_drops": config.network_drops, "clones": config.clones,
                   "adversaries": config.adversaries},
        "caisse": {"vendors": len(world.posts), "households": len(world.households), "cards": int(cards),
                   "secure_cards": sum(c.secure for h in world.households for c in h.cards)},
        "terminals": {"approved": facts["approved_by_terminals"], "declined": facts["declined_by_terminals"],
                      "reboots": sum(p.stall.reboots for p in world.posts)},
        "backend": {key: facts[key] for key in ("accepted", "held_for_review", "duplicates", "rejected", "flagged_terminals",
                                                "held_records", "held_cents", "refused_after_approval_cents", "forged_records")},
        "server_errors": len(world.backend.server_errors),  # the app's unexpected errors (answered 500)
        "money": cash,
        "nights": [{"date": n.run_date.isoformat(), "paid_cents": n.paid_cents, "paid_records": n.paid_records,
                    "held": [{"vendor": v, "cents": c, "reason": r} for v, c, r in n.held]} for n in world.nights],
        "allocations": [{"month": a.month, "credited_households": a.credited_households, "credited_cents": a.credited_cents,
                         "expired_households": a.expired_households, "expired_cents": a.expired_cents}
                        for a in world.allocations],
        "faults": faults_json(world.auditor.faults),
        "micropython": None if mpy is None else mpy.as_json(),
        "checks": checks_json(checks),
        "passed": all(c.passed for c in checks),
    }
