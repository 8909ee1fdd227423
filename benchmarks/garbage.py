"""How much garbage uploads make the database grow (docs/security.md, "Attacks and their bounds").

    python benchmarks/garbage.py [-n 100]

Registers one terminal in a fresh SQLite database, then uploads N batches of random bytes to it
through the real upload endpoint, alternating one 47 000-byte record and 256 records of 180 bytes
(both just under the 64 KiB body limit), all within a minute. Prints the database's size before
and after (write-ahead log folded in) and how many rejections the log kept.

Not a test: tests/backend/ingest/test_rejection_log.py asserts the bound.
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.main import create_app
from caisse.models import RejectedUpload
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol


def _size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return connection.execute("PRAGMA page_count").fetchone()[0] * connection.execute("PRAGMA page_size").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="garbage batches (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "caisse.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        with session_factory(engine)() as session:
            vendor = vendor_service.create_vendor(session, name="Stand", kind="producer", zone="Nord")
            key = protocol.public_key_bytes(ec.generate_private_key(ec.SECP256R1()))
            terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id or 0, public_key_hex=key.hex())
            session.commit()
        bodies = [{"records": [base64.b64encode(os.urandom(47_000)).decode()]},
                  {"records": [base64.b64encode(os.urandom(180)).decode() for _ in range(256)]}]
        before = _size(path)
        with TestClient(create_app(Settings(database_url=f"sqlite:///{path}"), engine=engine)) as client:
            for index in range(args.n):
                answer = client.post(f"/v1/terminals/{terminal.id}/batches", json=bodies[index % 2])
                assert answer.status_code == 200, answer.text
        after = _size(path)
        with session_factory(engine)() as session:
            logged = session.execute(select(func.count()).select_from(RejectedUpload)).scalar_one()
        engine.dispose()
    print(f"{args.n} garbage batches: database {before} -> {after} bytes (+{after - before}), {logged} rejections logged")


if __name__ == "__main__":
    main()
