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


def _downgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    from caisse.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")


def test_the_history_has_a_single_head() -> None:
    """Parallel features may branch, but main merges them: one head means one schema to deploy."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from caisse.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1
