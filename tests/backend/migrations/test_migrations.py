"""The migrations are the schema: they build exactly what the models describe, and undo it."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import caisse.models  # noqa: F401
from caisse.db import upgrade


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_downgrade_to_base_then_upgrade_again_restores_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert {"transaction_record", "ledger_transfer", "card", "counter"} <= tables
    _downgrade(engine)
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == tables


def _downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command
    from alembic.config import Config

    from caisse.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_the_history_has_a_single_head() -> None:
    """Parallel features may branch, but main merges them: one head means one schema to deploy."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from caisse.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_0012_moves_the_money_of_records_held_before_it_into_vendor_held(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database of the code before vendor_held, where a hold moved no money and a held void had
    refunded its member, satisfies the ledger's invariants once upgraded."""
    from sqlalchemy import text

    from caisse.cards import service as card_service
    from caisse.db import session_factory
    from caisse.ledger import postings as ledger
    from caisse.settlement import runs as settlement
    from tests.backend.audit import assert_ledger_invariants
    from tests.backend.settlement.test_settlement import Market
    from tests.fixtures.database import make_settings

    with session_factory(engine)() as session:
        market = Market(session, make_settings(str(engine.url), settlement_dir=str(tmp_path)))
        household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
        market.pay(0, 1_000)  # held: its money still in vendor_payable
        market.pay(0, 500)  # held, then voided: the void refunded the member
        market.upload(0, [market.chains[0].void(2)])
        market.pay(1, 700)  # its void held: the member was refunded already
        market.upload(1, [market.chains[1].void(1)])
        member_before = ledger.balance_cents(session, code=ledger.member_code(household))
        for index, seq in ((0, 1), (0, 2), (1, 2)):
            session.execute(text("UPDATE transaction_record SET review = 'held', hold_reason = 'ancienne retenue'"
                                 " WHERE terminal_id = :t AND seq = :s"), {"t": market.chains[index].terminal_id, "s": seq})
        session.execute(text("DELETE FROM ledger_account WHERE kind = 'vendor_held'"))
        session.commit()
    _downgrade(engine, "0013")
    upgrade(engine)
    with session_factory(engine)() as session:
        held = [ledger.balance_cents(session, code=ledger.vendor_held_code(v)) for v in market.vendor_ids]
        assert held == [1_000, 700]
        assert ledger.balance_cents(session, code=ledger.member_code(household)) == member_before - 700
        void_review = session.execute(text("SELECT review FROM transaction_record WHERE terminal_id = :t AND seq = 3"),
                                      {"t": market.chains[0].terminal_id}).scalar_one()
        assert void_review == "held"  # it follows its held payment
        assert settlement.payable_differences(session) == []
        assert_ledger_invariants(session)
        session.commit()
    _downgrade(engine, "0013")  # and up again: each move is made once (its reference is posted)
    upgrade(engine)
    with session_factory(engine)() as session:
        assert [ledger.balance_cents(session, code=ledger.vendor_held_code(v)) for v in market.vendor_ids] == [1_000, 700]
