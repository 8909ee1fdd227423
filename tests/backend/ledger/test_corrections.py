"""Staff mistakes undone by an audited reversal entry, never by editing or deleting rows
(docs/ledger.md, "Reversals")."""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse import audit
from caisse.config import Settings
from caisse.db import session_factory
from caisse.errors import CaisseError
from caisse.fund import allowances
from caisse.fund import service as fund
from caisse.ledger import corrections
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import Contribution, Household, LedgerTransfer
from caisse.months import Month
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import staff_in_database
from tests.backend.settlement.test_payout import add_staff
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import make_settings

CLAIRE = "claire@caisse.test"


def _household(session: Session) -> int:
    household = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
    assert household.id is not None
    return household.id


def _rows(session: Session) -> tuple[int, int]:
    return (session.execute(select(func.count()).select_from(LedgerTransfer)).scalar_one(),
            session.execute(select(func.count()).select_from(Contribution)).scalar_one())


def test_a_contribution_grant_and_fee_entered_twice_are_reversed_and_the_budget_reconciles(session: Session) -> None:
    add_staff(session, CLAIRE)
    rules = make_settings(matching_basis_points=5_000)
    h = _household(session)
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=2_500, settings=rules, reference="RECU-1")
    fund.record_contribution(session, household_id=h, month="2026-01", amount_cents=2_500, settings=rules, reference="RECU-1-bis")
    fund.record_grant(session, month="2026-01", amount_cents=50_000, source="Ville", reference="g1")
    fund.record_grant(session, month="2026-01", amount_cents=50_000, source="Ville", reference="g1-encore")
    fund.record_fee(session, month="2026-01", amount_cents=350, memo="banque", reference="f1")
    fund.record_fee(session, month="2026-01", amount_cents=350, memo="banque", reference="f1-doublon")
    session.commit()
    transfers_before, contributions_before = _rows(session)
    for reference in ("contribution:RECU-1-bis", "grant:2026-01:g1-encore", "fee:2026-01:f1-doublon"):
        done = corrections.reverse(session, reference=reference, by=CLAIRE, reason="saisie en double", os_user="claire-os")
        assert done.created and done.reference.startswith("reversal:")
    session.commit()
    assert _rows(session) == (transfers_before + 3, contributions_before)  # added, nothing edited or deleted
    budget = fund.budget(session, month="2026-01", settings=rules)
    assert (budget.contributions_cents, budget.grants_cents, budget.fees_cents) == (2_500, 50_000, 350)
    assert budget.reconciled, budget.differences
    assert budget.fund_balance_cents == ledger.balance_cents(session, code=ledger.Account.FUND) == 2_500 + 50_000 - 350
    assert fund.record_matching(session, month="2026-01", settings=rules) == 1_250  # on what was really contributed
    events = audit.events(session, action_prefix="ledger.reverse")
    assert [(e.actor, json.loads(e.detail or "{}")["os_user"]) for e in events] == [(CLAIRE, "claire-os")] * 3
    session.commit()
    assert_ledger_invariants(session)


def test_a_reversal_happens_once_and_only_for_entries_made_by_hand(session: Session, engine: Engine, rules: Settings) -> None:
    add_staff(session, CLAIRE)
    h = _household(session)
    fund.record_grant(session, month="2026-01", amount_cents=1_000, source="Ville", reference="g")
    session.commit()
    first = corrections.reverse(session, reference="grant:2026-01:g", by=CLAIRE, reason="doublon")
    again = corrections.reverse(session, reference="grant:2026-01:g", by=CLAIRE, reason="doublon")
    session.commit()
    assert first.created and not again.created and first.reference == again.reference
    assert ledger.balance_cents(session, code=ledger.Account.FUND) == 0
    for reference, code in (("grant:2026-01:absent", "transfer_not_found"), (first.reference, "not_reversible")):
        with pytest.raises(CaisseError) as refused:
            corrections.reverse(session, reference=reference, by=CLAIRE, reason="essai")
        assert refused.value.code == code
    with pytest.raises(CaisseError) as typed_name:
        corrections.reverse(session, reference="grant:2026-01:g", by="Claire", reason="essai")
    assert typed_name.value.code == "not_an_active_account"
    with pytest.raises(CaisseError) as squatted:  # a credit cannot pass for a reversal
        household_service.credit_household(session, household_id=h, amount_cents=100, reference="reversal:99")
    assert squatted.value.code == "invalid_reference"
    session.rollback()
    market = Market(session, rules)
    market.pay(0, 300)
    [payment] = session.execute(select(LedgerTransfer.reference).where(LedgerTransfer.kind == "payment")).scalars()
    with pytest.raises(CaisseError) as terminal_money:
        corrections.reverse(session, reference=payment, by=CLAIRE, reason="essai")
    assert terminal_money.value.code == "not_reversible"
    session.rollback()
    assert_ledger_invariants(session)


def test_an_allowance_credited_twice_is_reversed_unless_the_household_spent_it(session: Session, engine: Engine,
                                                                              rules: Settings) -> None:
    add_staff(session, CLAIRE)
    market = Market(session, rules)  # its household was credited 10 000 EUR by hand
    [household_id] = session.execute(select(Household.id)).scalars()
    credit = household_service.credit_household(session, household_id=household_id, amount_cents=5_000, reference="avance-janvier")
    session.commit()
    balance = household_service.household_balance_cents(session, household_id=household_id)
    corrections.reverse(session, reference=credit.ledger_reference, by=CLAIRE, reason="crédité deux fois")
    session.commit()
    assert household_service.household_balance_cents(session, household_id=household_id) == balance - 5_000
    # Spent 40 EUR of it: taking the whole 10 000 EUR credit back would put the household in debt.
    market.pay(0, 4_000)
    [hand_credit] = session.execute(select(LedgerTransfer.reference).where(LedgerTransfer.kind == "allowance")
                                    .order_by(LedgerTransfer.id).limit(1)).scalars()
    with pytest.raises(CaisseError) as refused:
        corrections.reverse(session, reference=hand_credit, by=CLAIRE, reason="crédité deux fois")
    assert refused.value.code == "reversal_would_overdraw"
    session.rollback()
    assert_ledger_invariants(session)


def test_a_reversed_allowance_leaves_the_monthly_budget(session: Session) -> None:
    add_staff(session, CLAIRE)
    rules = make_settings(allowance_flat_cents=7_000)
    h = _household(session)
    month = date.today().strftime("%Y-%m")  # the household registered today
    assert allowances.allocate(session, month=month, settings=rules).credited_cents > 0
    session.commit()
    corrections.reverse(session, reference=allowances.allowance_reference(h, Month.parse(month)), by=CLAIRE,
                        reason="foyer parti avant le début du mois")
    session.commit()
    assert fund.budget(session, month=month, settings=rules).allowances_cents == 0
    assert household_service.household_balance_cents(session, household_id=h) == 0
    assert_ledger_invariants(session)


def test_the_reverse_command_names_a_console_account_and_records_the_os_user(cli_database: str, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app
    from caisse.db import make_engine

    url = cli_database
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setattr(getpass, "getuser", lambda: "claire-os")
    runner = CliRunner()
    staff_in_database(url, CLAIRE)
    assert runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "2", "--zone", "Sud"]).exit_code == 0
    entry = ["fund", "contribute", "--household", "1", "--month", "2026-01", "--amount", "25,00", "--reference", "RECU-7",
             "--by", CLAIRE]
    assert runner.invoke(app, entry).exit_code == 0
    engine = make_engine(url)
    reverse = ["ledger", "reverse", "contribution:RECU-7", "--reason", "saisie en double"]
    typed = runner.invoke(app, [*reverse, "--by", "Claire"])
    assert typed.exit_code == 1 and "compte actif" in typed.stderr
    done = runner.invoke(app, [*reverse, "--by", CLAIRE])
    assert done.exit_code == 0 and "contre-passée" in done.stderr, done.output
    assert "déjà contre-passée" in runner.invoke(app, [*reverse, "--by", CLAIRE]).stderr
    with session_factory(engine)() as session:
        assert ledger.balance_cents(session, code=ledger.Account.FUND) == 0
        [event] = audit.events(session, action_prefix="ledger.reverse")
        assert (event.actor, json.loads(event.detail or "{}")["os_user"]) == (CLAIRE, "claire-os")
    engine.dispose()
