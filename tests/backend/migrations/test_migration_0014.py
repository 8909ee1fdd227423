"""Migration 0014 on data written before it: the rejection log is summarized, and manual credits
move behind `credit:`, which frees a system reference a key had taken."""

from __future__ import annotations

import hashlib

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from caisse.db import MIGRATIONS_DIR, upgrade


def _to(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_earlier_rejections_and_credits_are_carried_over(engine: Engine) -> None:
    _to(engine, "0018", down=True)
    garbage, signed = b"\x00" * 5_000, b"\x01" * 154
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rejected_upload (terminal_id, seq, raw, reason, received_at) VALUES"
                                " (1, NULL, :garbage, 'malformed', CURRENT_TIMESTAMP),"
                                " (1, 7, :signed, 'seq_conflict', CURRENT_TIMESTAMP)"), {"garbage": garbage, "signed": signed})
        connection.execute(text("INSERT INTO ledger_account (code, kind, debits_posted_cents, credits_posted_cents, created_at)"
                                " VALUES ('member:901', 'member', 300, 0, CURRENT_TIMESTAMP),"
                                " ('member:902', 'member', 0, 300, CURRENT_TIMESTAMP)"))
        for reference in ("record:1:1", "credit:0f0e", "allowance:1:2026-01"):
            connection.execute(text("INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount_cents, kind,"
                                    " reference, created_at) SELECT d.id, c.id, 100, 'allowance', :r, CURRENT_TIMESTAMP"
                                    " FROM ledger_account d, ledger_account c WHERE d.code = 'member:901' AND c.code = 'member:902'"),
                               {"r": reference})
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT reason, raw, raw_sha256, raw_size FROM rejected_upload ORDER BY id")).all()
        references = connection.execute(text("SELECT reference FROM ledger_transfer ORDER BY id")).scalars().all()
    assert [(r.reason, r.raw, bytes(r.raw_sha256), r.raw_size) for r in rows] == [
        ("malformed", None, hashlib.sha256(garbage).digest(), 5_000),
        ("seq_conflict", signed, hashlib.sha256(signed).digest(), 154),
    ]
    assert references == ["credit:record:1:1", "credit:0f0e", "allowance:1:2026-01"]
