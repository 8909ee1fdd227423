"""Where the server's CPU goes per record, stage by stage, in one process (no HTTP, no threads).

    python benchmarks/ingest_breakdown.py [-n 10240] [--db sqlite|postgresql] [--sync-v2]

Companion of benchmarks/ingest.py: same fresh database and seed, then each stage of an upload is
timed in thread CPU time (so other processes on the machine do not count): reading the JSON
body and base64, `protocol.decode`, `protocol.verify_digest`, and `ingest_batch` + commit (which
includes decode and verify again, plus SQL and ledger), that last one also by phase (each stage
function of caisse.ingest.upload wrapped in a thread-CPU timer). Prints microseconds per record.
With --sync-v2 every terminal syncs v2 first, so ingestion judges the offline budget
(caisse.terminals.offline_limits) of every batch.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import functools
import json
import pstats
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ingest import encode_batches, fresh_database, prepare_schema, seed, sign_records

from caisse.config import Settings
from caisse.db import make_engine, session_factory
from caisse.demo.seed import AdminApi, DemoTerminal
from caisse.ingest import upload
from caisse.ingest.upload import ingest_batch
from caisse.main import create_app
from caisse_common import protocol

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's test client prefers httpx2; httpx works
    from fastapi.testclient import TestClient

ADMIN_TOKEN = "bench-admin-token"


def cpu_us_per_record(stage: Callable[[], object], records: int) -> float:
    start = time.thread_time()
    stage()
    return 1e6 * (time.thread_time() - start) / records


AREAS = (  # first match wins: (label, substring of "file:function")
    ("signature verification", "verify"),
    ("database driver (sqlite3, psycopg)", "psycopg"),
    ("database driver (sqlite3, psycopg)", "sqlite3"),
    ("SQLAlchemy / SQLModel", "sqlalchemy"),
    ("SQLAlchemy / SQLModel", "sqlmodel"),
    ("record decode + SHA-256", "protocol.py"),
    ("record decode + SHA-256", "sha256"),
    ("ingestion logic (ingest.py)", "caisse/ingest/upload.py"),
    ("ledger + sync counters", "caisse/ledger/postings.py"),
    ("ledger + sync counters", "caisse/terminals/sync.py"),
    ("offline budget (offline_limits.py)", "caisse/terminals/offline_limits.py"),
)


# The stages of an upload, as named in caisse.ingest.upload (called through its module globals).
PHASES = ("prepare_batch", "_decode_all", "_verify_before_locking", "ingest_prepared", "lock_terminal",
          "_load_neighbourhood", "_load_cards", "_accreditation_history", "_write", "_postings", "bump_cards",
          "_advance_acked_seq")
PHASES_CALLED_BY_INGEST_PREPARED = ("lock_terminal", "_load_neighbourhood", "_load_cards", "_accreditation_history",
                                    "_write", "_advance_acked_seq")


@contextlib.contextmanager
def timed_phases(totals: dict[str, float]) -> Iterator[None]:
    """Wrap each phase of caisse.ingest.upload in a thread-CPU timer for the duration of the block."""
    originals = {name: getattr(upload, name) for name in PHASES}

    def timer(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.thread_time() - start
        return timed

    for name, function in originals.items():
        setattr(upload, name, timer(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(upload, name, function)


def by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Self time grouped by area, as shares of the total."""
    totals: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, self_s, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        area = next((label for label, needle in AREAS if needle in where), "other (Python, datetime, dataclasses)")
        totals[area] = totals.get(area, 0.0) + self_s
    grand = sum(totals.values()) or 1.0
    return sorted(((a, t / grand) for a, t in totals.items()), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_240)
    parser.add_argument("--terminals", type=int, default=8)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sync-v2", action="store_true", help="terminals sync v2 first: the offline budget is judged")
    args = parser.parse_args(argv)

    def seeded(client: TestClient) -> tuple[list[DemoTerminal], list[bytes]]:
        terminals, cards = seed(AdminApi(client, ADMIN_TOKEN), terminals=args.terminals)
        for terminal in terminals if args.sync_v2 else ():
            terminal.sync(client, now_s=int(time.time()), version=2)
        return terminals, cards

    with fresh_database(args.db) as database_url:
        prepare_schema(database_url)
        # With --sync-v2, limits no payment of the bench passes (every household pays a stall several
        # times an hour here): the cost of judging each batch, not of holding records.
        generous = {"offline_share_bp": 10_000, "offline_daily_cap_cents": 2**31 - 1} if args.sync_v2 else {}
        settings = Settings(environment="test", admin_token=ADMIN_TOKEN, database_url=database_url, **generous)
        engine = make_engine(database_url)
        with TestClient(create_app(settings, engine=engine)) as client:
            terminals, cards = seeded(client)
        sign_records(terminals, cards, args.n)
        bodies = [batch for lane in encode_batches(terminals, 256) for batch in lane]
        raws = [[base64.b64decode(r) for r in json.loads(b.body)["records"]] for b in bodies]
        keys = {t.terminal_id: protocol.load_public_key(t.public_key) for t in terminals}
        decoded = [[protocol.decode(raw) for raw in batch] for batch in raws]
        costs = {
            "JSON body + base64": cpu_us_per_record(
                lambda: [[base64.b64decode(r, validate=True) for r in json.loads(b.body)["records"]] for b in bodies], args.n),
            "protocol.decode": cpu_us_per_record(lambda: [[protocol.decode(r) for r in batch] for batch in raws], args.n),
            "protocol.verify_digest": cpu_us_per_record(
                lambda: [[protocol.verify_digest(keys[r.terminal_id], r.digest(), r.signature) for r in batch]
                         for batch in decoded], args.n),
        }
        make_session = session_factory(engine)

        def ingest_all() -> None:
            for batch, records in zip(bodies, raws, strict=True):
                with make_session() as session:
                    ingest_batch(session, terminal_id=batch.terminal_id, raw_records=records, settings=settings)
                    session.commit()

        phases: dict[str, float] = {}
        with timed_phases(phases):
            costs["ingest_batch + commit (all of it)"] = cpu_us_per_record(ingest_all, args.n)
        phases["ingest_prepared's own loop"] = phases["ingest_prepared"] - sum(
            phases.get(name, 0.0) for name in PHASES_CALLED_BY_INGEST_PREPARED)
        profile = cProfile.Profile(time.thread_time)
        with fresh_database(args.db) as second_url:  # the same work again, on a fresh database, profiled
            prepare_schema(second_url)
            engine.dispose()
            engine = make_engine(second_url)
            make_session = session_factory(engine)
            with TestClient(create_app(settings.model_copy(update={"database_url": second_url}), engine=engine)) as client:
                seeded(client)
            profile.runcall(ingest_all)
        engine.dispose()
    rest = costs["ingest_batch + commit (all of it)"] - costs["protocol.decode"] - costs["protocol.verify_digest"]
    print(f"database {args.db}, {args.n} records, batches of 256, terminals on sync v{2 if args.sync_v2 else 1},"
          " CPU time of this thread per record:")
    for name, cost in costs.items():
        print(f"  {name:<36} {cost:7.1f} µs")
    print(f"  {'ingest minus decode and verify':<36} {rest:7.1f} µs  (SQL, SQLAlchemy, ledger, ingestion logic)")
    print("  (the database server's own CPU is not counted for PostgreSQL)")
    print("ingest_batch + commit by phase (thread CPU, nested phases counted in their callers too):")
    for name, seconds in sorted(phases.items(), key=lambda item: -item[1]):
        print(f"  {name:<36} {1e6 * seconds / args.n:7.1f} µs")
    print("ingest_batch + commit by where the code lives (cProfile self time; profiling inflates Python code):")
    for name, share in by_area(pstats.Stats(profile)):
        print(f"  {name:<36} {100 * share:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
