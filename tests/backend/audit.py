"""The ledger auditor of the tests: every invariant of docs/ledger.md, checked by caisse.invariants
(the module `caisse verify` and the simulation's auditor use too)."""

from __future__ import annotations

from sqlmodel import Session

from caisse import invariants


def assert_ledger_invariants(session: Session) -> None:
    session.expire_all()
    broken = {invariant.key: problems for invariant, problems in invariants.check_all(session) if problems}
    assert not broken, broken
