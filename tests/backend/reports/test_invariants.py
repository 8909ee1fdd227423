"""caisse.reports.invariants: sound books pass every check; each way of bending them is named, in French,
with its amount, by the check that guards it; `caisse verify` prints it and exits non-zero."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.fund import allowances
from caisse.fund import service as fund
from caisse.ingest import review
from caisse.members import households as household_service
from caisse.models import Contribution
from caisse.reports import invariants
from caisse.settlement import runs as settlement
from tests.backend.settlement.test_settlement import DAY1, Market
from tests.fixtures.database import make_settings

pytestmark = pytest.mark.usefixtures("deciders")  # review decisions name active console accounts


def _record_id(session: Session, market: Market, index: int, seq: int) -> int:
    return session.execute(text("SELECT id FROM transaction_record WHERE terminal_id = :t AND seq = :s"),
                           {"t": market.chains[index].terminal_id, "s": seq}).scalar_one()


@pytest.fixture
def books(session: Session, engine: Engine, settings: Settings, tmp_path: Path) -> Market:
    """Two vendors paid by one settlement run; a void; a payment held then rejected; one held and
    not decided; a payment after the run; allowances, a manual credit, a contribution, a fee."""
    rules = make_settings(str(settings.database_url), settlement_dir=str(tmp_path), allowance_flat_cents=10_000)
    market = Market(session, rules)
    market.pay(0, 1_250)
    market.pay(0, 800)
    market.upload(0, [market.chains[0].void(2)])
    market.pay(1, 499)
    market.pay(1, 2_000)
    market.pay(1, 300)
    review.hold(session, record_ids=[_record_id(session, market, 1, 2), _record_id(session, market, 1, 3)], reason="carte suspecte")
    review.reject(session, record_id=_record_id(session, market, 1, 2), by="claire@caisse.test")
    session.commit()
    settlement.settle(session_factory(engine), run_date=DAY1, settings=rules)
    market.pay(0, 175, time=1_767_340_000)  # 2026-01-02: after the run's cut-off
    other = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
    assert other.id is not None
    fund.record_contribution(session, household_id=other.id, month="2026-01", amount_cents=2_500, settings=rules, reference="r1")
    fund.record_fee(session, month="2026-01", amount_cents=40, memo="banque", reference="f1")
    allowances.allocate(session, month="2026-02", settings=rules)
    session.commit()
    return market


def test_sound_books_pass_every_check(session: Session, books: Market) -> None:
    assert invariants.violations(session) == []
    assert [invariant.key for invariant, _ in invariants.check_all(session)] == [i.key for i in invariants.INVARIANTS]


def _sql(statement: str, **params: object) -> Callable[[Session, Market], None]:
    def corrupt(session: Session, market: Market) -> None:
        session.execute(text(statement), {"t0": market.chains[0].terminal_id, "t1": market.chains[1].terminal_id,
                                          "v0": market.vendor_ids[0], "v1": market.vendor_ids[1], **params})
    return corrupt


def _pay_the_wrong_vendor(session: Session, market: Market) -> None:
    """The first payment's money credited to the other vendor, balances moved along with it: every
    sum still holds, only the pairing of record and accounts shows it."""
    _sql("UPDATE ledger_transfer SET credit_account_id = (SELECT id FROM ledger_account WHERE code = 'vendor_payable:' || :v1)"
         " WHERE reference = 'record:' || :t0 || '\\:1'")(session, market)
    _sql("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 1250 * (CASE WHEN code = 'vendor_payable:' || :v1"
         " THEN 1 ELSE -1 END) WHERE code IN ('vendor_payable:' || :v0, 'vendor_payable:' || :v1)")(session, market)


def _fund_pays_a_member(session: Session, market: Market) -> None:
    """Euros of the fund credited to a household as an allowance, balances kept consistent."""
    _sql("INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount_cents, kind, reference, created_at)"
         " SELECT (SELECT id FROM ledger_account WHERE code = 'fund'), id, 999, 'allowance', 'credit:detour', '2026-01-05'"
         " FROM ledger_account WHERE code = (SELECT 'member:' || household_id FROM card LIMIT 1)")(session, market)
    _sql("UPDATE ledger_account SET debits_posted_cents = debits_posted_cents + 999 WHERE code = 'fund'")(session, market)
    _sql("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 999"
         " WHERE code = (SELECT 'member:' || household_id FROM card LIMIT 1)")(session, market)


def _settle_the_rejected_payment(session: Session, market: Market) -> None:
    record_id = _record_id(session, market, 1, 2)
    _sql("INSERT INTO settlement_item (record_id, run_id, vendor_id, amount_cents) VALUES (:r, 1, :v1, 2000)",
         r=record_id)(session, market)


def _forget_below_the_watermark(session: Session, market: Market) -> None:
    """A settled payment loses its item: below the watermark no run will ever read it again."""
    _sql("DELETE FROM settlement_item WHERE record_id = :r", r=_record_id(session, market, 1, 1))(session, market)


def _contribution_without_posting(session: Session, _market: Market) -> None:
    session.add(Contribution(household_id=2, month="2026-01", amount_cents=1_000, reference="contribution:sans-écriture"))


CORRUPTIONS: list[tuple[str, Callable[[Session, Market], None], str, str]] = [
    ("debits_drift", _sql("UPDATE ledger_account SET debits_posted_cents = debits_posted_cents + 7 WHERE code = 'fund'"),
     "transfers_balance", "total des débits des comptes"),
    ("balance_sum", _sql("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 100"
                         " WHERE code = 'vendor_payable:' || :v0"),
     "balances_sum_to_zero", "la somme des soldes vaut 1,00 €"),
    ("account_behind_journal", _sql("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 300,"
                                    " debits_posted_cents = debits_posted_cents + 300 WHERE code = 'vendor_payable:' || :v0"),
     "balances_match_journal", "selon les écritures"),
    ("rejected_record_posted", _sql("UPDATE transaction_record SET status = 'rejected', reason = 'over_limit'"
                                    " WHERE terminal_id = :t1 AND seq = 1"),
     "records_match_transfers", "est refusé mais a une écriture de 4,99 €"),
    ("amount_changed", _sql("UPDATE transaction_record SET amount_cents = 1300, raw = raw WHERE terminal_id = :t0 AND seq = 1"),
     "records_match_transfers", "est passé au grand livre pour 12,50 €"),
    ("wrong_vendor", _pay_the_wrong_vendor, "records_match_transfers", "ni le compte de son foyer"),
    ("payment_posted_twice", _sql("INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount_cents, kind,"
                                  " reference, created_at) SELECT debit_account_id, credit_account_id, amount_cents, kind,"
                                  " reference || '\\:again', created_at FROM ledger_transfer WHERE reference = 'record:' || :t0 || '\\:1'"),
     "records_match_transfers", "n'a pas d'enregistrement accepté"),
    ("unknown_kind", _sql("UPDATE ledger_transfer SET kind = 'gift' WHERE reference LIKE 'contribution:%'"),
     "transfers_join_the_right_accounts", "1 écriture(s) de nature inconnue « gift »"),
    ("fund_to_member", _fund_pays_a_member, "transfers_join_the_right_accounts", "de fund vers member:"),
    ("spending_drift", _sql("UPDATE transaction_record SET amount_cents = amount_cents + 5 WHERE terminal_id = :t1 AND seq = 1"),
     "money_per_purpose", "paiements acceptés"),
    ("rejected_settled", _settle_the_rejected_payment, "review_rejections", "rejeté après vérification, a été réglé (20,00 €)"),
    ("rejected_refunded_twice", _sql("UPDATE transaction_record SET voided = :no WHERE terminal_id = :t1 AND seq = 2", no=False),
     "review_rejections", "n'est pas marqué annulé"),
    ("item_for_another_vendor", _sql("UPDATE settlement_item SET vendor_id = :v1 WHERE record_id = (SELECT id FROM"
                                     " transaction_record WHERE terminal_id = :t0 AND seq = 1)"),
     "settled_records", "12,50 € au commerçant"),
    ("payout_inflated", _sql("UPDATE ledger_transfer SET amount_cents = amount_cents + 1 WHERE kind = 'settlement'"
                             " AND reference LIKE '%:' || :v0"),
     "payouts_match_settlements", "viré 12,51 €"),
    ("forgotten_below_watermark", _forget_below_the_watermark, "watermark_sound", "(4,99 €) est sous le repère"),
    ("contribution_unposted", _contribution_without_posting, "contributions_registered", "(10,00 €) est au registre mais pas"),
    ("reversal_of_a_payment", _sql("UPDATE ledger_transfer SET kind = 'reversal', reference = 'reversal:' || (SELECT id FROM"
                                   " ledger_transfer WHERE reference = 'record:' || :t1 || '\\:1') WHERE kind = 'fee'"),
     "reversals_mirror_their_entry", "une écriture « payment » qu'on ne contre-passe pas"),
]


@pytest.mark.parametrize(("name", "corrupt", "key", "message"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_each_way_of_bending_the_books_is_named_by_its_check(
    session: Session, books: Market, name: str, corrupt: Callable[[Session, Market], None], key: str, message: str
) -> None:
    corrupt(session, books)
    session.flush()
    broken = {invariant.key: problems for invariant, problems in invariants.check_all(session) if problems}
    assert key in broken, (name, broken)
    assert any(message in problem for problem in broken[key]), broken[key]


def test_a_corrupt_database_gives_at_most_a_bounded_list_per_check(session: Session, books: Market,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invariants, "MAX_VIOLATIONS", 2)
    session.execute(text("UPDATE transaction_record SET status = 'rejected'"))
    problems = invariants.records_match_transfers(session)
    assert len(problems) == 3 and problems[-1].startswith("… et ")


# caisse verify ---------------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated caisse database the CLI reads through CAISSE_DATABASE_URL, outside development
    (verify must not depend on development's automatic migration)."""
    path = tmp_path / "caisse.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "a-long-test-secret")
    return path


def _verify() -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["verify"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_verify_passes_sound_books_and_lists_every_check(live: Path) -> None:
    engine = make_engine(f"sqlite:///{live}")
    with session_factory(engine)() as session:
        household = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
        assert household.id is not None
        household_service.credit_household(session, household_id=household.id, amount_cents=5_000)
        session.commit()
    engine.dispose()
    code, stdout, stderr = _verify()
    assert code == 0, stdout
    assert stdout.count("✓") == len(invariants.INVARIANTS) and "✗" not in stdout
    assert "Tous les invariants du grand livre tiennent." in stderr


def test_verify_prints_each_difference_and_exits_1(live: Path) -> None:
    engine = make_engine(f"sqlite:///{live}")
    with session_factory(engine)() as session:
        household = household_service.create_household(session, name="Famille Roux", members=2, zone="Sud")
        assert household.id is not None
        household_service.credit_household(session, household_id=household.id, amount_cents=5_000)
        session.execute(text("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 250 WHERE kind = 'member'"))
        session.commit()
    engine.dispose()
    code, stdout, stderr = _verify()
    assert code == 1
    assert "✗ la somme des soldes est nulle" in stdout
    assert "    – la somme des soldes vaut 2,50 € au lieu de 0,00 €" in stdout
    assert "écart(s) : le grand livre n'est pas sain" in stderr


def test_verify_never_creates_a_missing_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "absente.db"
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{missing}")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")  # where other commands would create and migrate it
    code, _, stderr = _verify()
    assert code == 2
    assert f"la base de données {missing} n'existe pas (rien n'a été créé)" in stderr
    assert not missing.exists()


def test_verify_refuses_a_database_without_a_caisse_or_with_an_old_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "vide.db"
    empty.write_bytes(b"")
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{empty}")
    code, _, stderr = _verify()
    assert code == 2 and "ne contient pas de caisse" in stderr
    old = tmp_path / "ancienne.db"
    engine = make_engine(f"sqlite:///{old}")
    upgrade(engine, "0005")
    engine.dispose()
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{old}")
    code, _, stderr = _verify()
    assert code == 2 and "caisse db upgrade" in stderr
    garbage = tmp_path / "illisible.db"
    garbage.write_bytes(b"ceci n'est pas une base SQLite" * 100)
    monkeypatch.setenv("CAISSE_DATABASE_URL", f"sqlite:///{garbage}")
    code, _, stderr = _verify()
    assert code == 2 and "impossible de lire la base" in stderr


def test_verify_explains_a_server_out_of_reach_in_french(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_DATABASE_URL", "postgresql+psycopg://caisse:secret@127.0.0.1:9/caisse?connect_timeout=2")
    code, _, stderr = _verify()
    assert code == 2
    assert "impossible de lire la base" in stderr and "secret" not in stderr



def test_verify_explains_an_unexpected_error_in_one_french_line(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_session: Session) -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(invariants, "check_all", broken)
    code, _, stderr = _verify()
    assert code == 2
    assert "Erreur inattendue pendant la vérification (RuntimeError : boom)" in stderr and "Traceback" not in stderr
