"""Load: N terminals uploading signed batches at once to one server on PostgreSQL (docs/performance.md).

    python benchmarks/load.py [--terminals 500] [--duration 60] [--workers 2] [--clients 1]
                              [--batch 32] [--records 400] [--cards 1000] [--pause 0] [--resend 0.02]
                              [--syncs 2] [--db postgresql|sqlite] [--prefill N]

Creates a fresh PostgreSQL schema (a temporary SQLite file with --db sqlite), migrates it,
starts uvicorn with several workers on a free loopback port, and registers N terminals (software keys, one vendor each) and the members' cards
through the admin API. Each client process signs its terminals' records beforehand (not timed),
then every terminal uploads its log in seq order, one batch at a time, as the firmware does
(32 records a batch), all terminals at once, until the duration is over or its log is empty.
A small share of batches is sent twice, as when a response is lost on the way back; a failed
request is retried with the same batch until the backend answers.

Prints throughput (records/s, requests/s), p50/p99 latency, errors, and where the CPU went
(server, PostgreSQL, clients), then checks against the database that nothing was lost or
doubled: per terminal, the accepted records, their seqs, amounts and acked_seq are exactly what
the terminal sent and had acknowledged; every vendor's payable account equals what its terminal
took; the ledger sums to zero. Exit code 1 on any error or mismatch.

Not a test: numbers depend on the machine. Results go in docs/performance.md ("Load").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from ingest import ADMIN_TOKEN, fresh_database, prepare_schema, process_cpu_s, running_server
from sqlalchemy import text

from caisse.db import make_engine, session_factory
from caisse.demo.seed import DemoTerminal, record_b64, terminal_key
from caisse.ledger import postings as ledger
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from caisse_common.protocol import Kind, public_key_bytes

LOAD_SEED = 9090
CREDIT_CENTS = 1_000_000  # household_service.MAX_CREDIT_CENTS: one credit per card is plenty for a run
REQUEST_TIMEOUT_S = 60.0
SEED_CONCURRENCY = 16
MAX_ATTEMPTS = 20  # per batch; each failed attempt is counted as an error


# ---- the terminals' side (one client process) ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class TerminalPlan:
    terminal_id: int
    key_index: int


@dataclass
class TerminalOutcome:
    """What one terminal sent and what the backend told it."""

    terminal_id: int
    sent_seqs: int = 0  # records 1..sent_seqs went up and were answered
    amount_cents: int = 0  # the sum of those records
    acked_seq: int = 0  # from the last answer
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass
class ClientReport:
    """What one client process measured during one phase (upload, or syncs)."""

    latencies_s: list[float] = field(default_factory=list)
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    terminals: list[TerminalOutcome] = field(default_factory=list)
    cpu_s: float = 0.0


def sign_logs(plans: list[TerminalPlan], cards: list[bytes], records: int, seed: int) -> list[DemoTerminal]:
    rng = random.Random(seed)
    start_s = int(time.time()) - records * 60  # a tap a minute, all in the past
    terminals = []
    for plan in plans:
        terminal = DemoTerminal(plan.terminal_id, terminal_key(LOAD_SEED, plan.key_index))
        for index in range(records):
            terminal.pay(card_uid=rng.choice(cards), amount_cents=rng.randrange(350, 4500, 10), time_s=start_s + 60 * index)
        terminals.append(terminal)
    return terminals


@dataclass(frozen=True, slots=True)
class Batch:
    last_seq: int
    amount_cents: int
    body: bytes  # the JSON the terminal sends, encoded beforehand like a log already in flash


def batches(terminal: DemoTerminal, size: int) -> list[Batch]:
    log = terminal.unacked
    return [Batch(chunk[-1].seq, sum(r.amount_cents for r in chunk),
                  json.dumps({"records": [record_b64(r) for r in chunk]}).encode())
            for chunk in (log[i:i + size] for i in range(0, len(log), size))]


async def run_terminal(base_url: str, terminal_id: int, log: list[Batch], *, args: argparse.Namespace,
                       deadline: float, rng: random.Random, report: ClientReport) -> TerminalOutcome:
    """One terminal: its own connection, its batches in seq order, each answered before the next."""
    outcome = TerminalOutcome(terminal_id)
    path = f"/v1/terminals/{terminal_id}/batches"
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits,
                                 headers={"content-type": "application/json"}) as client:
        if args.pause:
            await asyncio.sleep(rng.uniform(0, args.pause))  # terminals do not all start at once
        for batch in log:
            if time.monotonic() >= deadline:
                break
            for _ in range(2 if rng.random() < args.resend else 1):
                answer = await send(client, path, batch.body, report)
                if answer is None:
                    return outcome  # gave up after MAX_ATTEMPTS; the check will show what is missing
                for result in answer["results"]:
                    if result["status"] == "accepted":
                        outcome.accepted += 1
                    elif result["status"] == "duplicate":
                        outcome.duplicates += 1
                    else:
                        outcome.rejected[result.get("reason", "?")] += 1
                outcome.acked_seq = answer["acked_seq"]
            outcome.sent_seqs = batch.last_seq
            outcome.amount_cents += batch.amount_cents
            if args.pause:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * args.pause)
    return outcome


async def send(client: httpx.AsyncClient, path: str, body: bytes, report: ClientReport) -> dict | None:
    """POST until the backend answers 200; a lost answer is retried with the same batch."""
    for _ in range(MAX_ATTEMPTS):
        started = time.perf_counter()
        try:
            response = await client.post(path, content=body)
        except httpx.TransportError as error:
            report.errors[f"transport: {type(error).__name__}"] += 1
            continue
        report.latencies_s.append(time.perf_counter() - started)
        report.requests += 1
        if response.status_code == 200:
            return response.json()
        report.errors[f"HTTP {response.status_code}"] += 1
    return None


def client_process(base_url: str, plans: list[TerminalPlan], cards: list[bytes], args: argparse.Namespace,
                   seed: int, barrier, results) -> None:  # noqa: ANN001 - multiprocessing objects
    logs = [(t.terminal_id, batches(t, args.batch)) for t in sign_logs(plans, cards, args.records, seed)]
    barrier.wait()  # every process has signed: the clock starts for all at once
    cpu_before_s = time.process_time()
    report = ClientReport()

    async def upload_all() -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + args.duration
        report.terminals = list(await asyncio.gather(*(
            run_terminal(base_url, terminal_id, log, args=args, deadline=deadline, rng=rng, report=report)
            for terminal_id, log in logs
        )))

    asyncio.run(upload_all())
    report.cpu_s = time.process_time() - cpu_before_s
    results.put(report)
    if args.syncs:
        barrier.wait()  # the upload is over everywhere: the sync phase starts for all at once
        cpu_before_s = time.process_time()
        syncs = ClientReport()

        async def sync_all() -> None:
            await asyncio.gather(*(run_syncs(base_url, plan, args.syncs, syncs) for plan in plans))

        asyncio.run(sync_all())
        syncs.cpu_s = time.process_time() - cpu_before_s
        results.put(syncs)


async def run_syncs(base_url: str, plan: TerminalPlan, count: int, report: ClientReport) -> None:
    """`count` signed syncs back to back, as an idle terminal does every two minutes: the first
    from version 0 (the whole card list), the next ones from the version received (a delta)."""
    key = terminal_key(LOAD_SEED, plan.key_index)
    since = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
        for _ in range(count):
            now_s = int(time.time())
            signature = protocol.sign_digest(key, protocol.sync_digest(plan.terminal_id, now_s, since))
            started = time.perf_counter()
            try:
                response = await client.get(f"/v1/terminals/{plan.terminal_id}/sync", params={"since": since},
                                            headers={"X-Caisse-Time": str(now_s), "X-Caisse-Signature": signature.hex()})
            except httpx.TransportError as error:
                report.errors[f"sync transport: {type(error).__name__}"] += 1
                continue
            report.latencies_s.append(time.perf_counter() - started)
            report.requests += 1
            if response.status_code != 200:
                report.errors[f"sync HTTP {response.status_code}"] += 1
                continue
            since = response.json()["cards_version"]


# ---- the server's side ---------------------------------------------------------------------------

def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its descendants (uvicorn's workers are children)."""
    total = process_cpu_s(pid)
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            total += sum(tree_cpu_s(int(child)) for child in children.read().split())
    return total


APPLICATION_NAME = f"caisse_load_{os.getpid()}"  # tells this run's PostgreSQL backends from others'


def postgres_cpu_s(database_url: str) -> tuple[dict[int, float], float]:
    """CPU seconds of PostgreSQL: (this run's live backends by pid, every PostgreSQL process).

    The first misses backends that closed meanwhile (the server's pool closes its overflow
    connections), the second counts other users of the server too (and ended backends, through
    the postmaster's children's time): the truth lies between on a shared machine."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            ours = {int(pid) for pid, in connection.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :name"), {"name": APPLICATION_NAME})}
    finally:
        engine.dispose()
    mine: dict[int, float] = {}
    everyone = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as comm, open(f"/proc/{entry}/stat") as stat:
                    if comm.read().strip() == "postgres":
                        fields = [int(v) for v in stat.read().rpartition(")")[2].split()[11:15]]
                        everyone += sum(fields) / ticks  # utime, stime, children's utime and stime
                        if int(entry) in ours:
                            mine[int(entry)] = sum(fields[:2]) / ticks
            except OSError:
                continue  # a process that ended meanwhile
    return mine, everyone


async def seed(base_url: str, *, terminals: int, cards: int) -> tuple[list[TerminalPlan], list[bytes]]:
    """One vendor per terminal; `cards` households with one card and a credit each."""
    rng = random.Random(LOAD_SEED)
    uids = [bytes([0x04]) + rng.randbytes(6) for _ in range(cards)]
    gate = asyncio.Semaphore(SEED_CONCURRENCY)
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}

    async with httpx.AsyncClient(base_url=f"{base_url}/v1/admin", headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
        async def post(path: str, body: dict) -> dict:
            async with gate:
                response = await api.post(path, json=body)
            if response.status_code not in (200, 201):
                raise SystemExit(f"seeding: POST {path} -> {response.status_code} {response.text[:200]}")
            return response.json()

        async def household(index: int, uid: bytes) -> None:
            created = await post("/households", {"name": f"Foyer {index}", "members": 2, "zone": "charge"})
            await post("/cards", {"household_id": created["id"], "uid": uid.hex()})
            await post(f"/households/{created['id']}/credits", {"amount_cents": CREDIT_CENTS, "memo": "charge"})

        async def terminal(index: int) -> TerminalPlan:
            vendor = await post("/vendors", {"name": f"Étal {index}", "kind": "producer", "zone": "charge"})
            key = public_key_bytes(terminal_key(LOAD_SEED, index)).hex()
            created = await post("/terminals", {"vendor_id": vendor["id"], "public_key": key})
            return TerminalPlan(created["id"], index)

        await asyncio.gather(*(household(i, uid) for i, uid in enumerate(uids)))
        plans = list(await asyncio.gather(*(terminal(i) for i in range(terminals))))
    return plans, uids


# ---- history: the tables as a caisse (or many) would have them after months -------------------

PREFILL_TERMINALS = 1000
_PREFILL_RECORDS = (
    "INSERT INTO transaction_record (terminal_id, seq, raw, digest, kind, flags, time, amount_cents, ref_seq,"
    " card_uid, card_auth, prev_hash, household_id, status, reason, chain_verified, voided, received_at)"
    " SELECT t.id, s.seq, decode(repeat('00', 154), 'hex'), decode(repeat('00', 32), 'hex'), 1, 0,"
    " 1700000000 + s.seq, 100 + s.seq % 2000, 0, decode('04000000000000', 'hex'), decode(repeat('00', 24), 'hex'),"
    " decode(repeat('00', 32), 'hex'), NULL, 'accepted', NULL, true, false, now()"
    " FROM terminal t CROSS JOIN generate_series(1, :per_terminal) AS s(seq) WHERE t.vendor_id = :vendor"
)
_PREFILL_TRANSFERS = (
    "INSERT INTO ledger_transfer (debit_account_id, credit_account_id, amount_cents, kind, reference, created_at)"
    " SELECT :member, :payable, r.amount_cents, 'payment', 'record:' || r.terminal_id || ':' || r.seq, now()"
    " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id WHERE t.vendor_id = :vendor"
)


def prefill(database_url: str, records: int) -> float:
    """`records` accepted payments and their ledger transfers from PREFILL_TERMINALS terminals of
    one archive vendor, inserted set-based (PostgreSQL); returns the seconds it took. The rows are
    the size of real ones, so indexes and tables are as deep as after that many payments. Account
    balances are not touched: the history's transfers cancel out in no check made here."""
    per_terminal = max(1, records // PREFILL_TERMINALS)
    started = time.perf_counter()
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            vendor = vendor_service.create_vendor(session, name="Archive", kind="producer", zone="archive")
            member = ledger.ensure_account(session, code=ledger.member_code(0), kind=ledger.AccountKind.MEMBER)
            payable = ledger.ensure_account(session, code=ledger.vendor_payable_code(vendor.id or 0), kind=ledger.AccountKind.VENDOR_PAYABLE)
            session.execute(text(
                "INSERT INTO terminal (vendor_id, public_key, status, acked_seq, created_at)"
                " SELECT :vendor, decode(lpad(to_hex(i), 130, '0'), 'hex'), 'active', :per_terminal, now()"
                " FROM generate_series(1, :terminals) AS i"),
                {"vendor": vendor.id, "per_terminal": per_terminal, "terminals": PREFILL_TERMINALS})
            session.execute(text(_PREFILL_RECORDS), {"vendor": vendor.id, "per_terminal": per_terminal})
            session.execute(text(_PREFILL_TRANSFERS), {"vendor": vendor.id, "member": member, "payable": payable})
            session.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE terminal, transaction_record, ledger_transfer"))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def table_sizes(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            sizes = connection.execute(text(
                "SELECT relname, pg_total_relation_size(c.oid), reltuples FROM pg_class c"
                " WHERE c.oid IN ('transaction_record'::regclass, 'ledger_transfer'::regclass)")).all()
    finally:
        engine.dispose()
    return ", ".join(f"{name} {size / 2**20:,.0f} MiB ({size / max(rows, 1):.0f} B a row)" for name, size, rows in sizes)


# ---- the check: nothing lost, nothing doubled -------------------------------------------------

def check_database(database_url: str, outcomes: list[TerminalOutcome]) -> list[str]:
    """Every difference between what the terminals sent and had acknowledged and what is stored."""
    problems = []
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            stored = {row.terminal_id: row for row in connection.execute(text(
                "SELECT r.terminal_id, count(*) AS n, count(DISTINCT r.seq) AS seqs, max(r.seq) AS top,"
                " sum(r.amount_cents) AS cents, t.acked_seq, t.vendor_id"
                " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id"
                " WHERE r.status = 'accepted' AND r.kind = :payment GROUP BY r.terminal_id, t.acked_seq, t.vendor_id"),
                {"payment": int(Kind.PAYMENT)})}
            payables = dict(connection.execute(text(
                "SELECT code, credits_posted_cents - debits_posted_cents FROM ledger_account"
                " WHERE kind = 'vendor_payable'")).all())
            balance_sum, = connection.execute(text(
                "SELECT sum(credits_posted_cents - debits_posted_cents) FROM ledger_account")).one()
            others, = connection.execute(text("SELECT count(*) FROM transaction_record WHERE status <> 'accepted'")).one()
    finally:
        engine.dispose()
    for outcome in outcomes:
        row = stored.get(outcome.terminal_id)
        n, seqs, top, cents, acked = (row.n, row.seqs, row.top, int(row.cents), row.acked_seq) if row else (0, 0, 0, 0, 0)
        expected = (outcome.sent_seqs, outcome.sent_seqs, outcome.sent_seqs, outcome.amount_cents, outcome.sent_seqs)
        if (n, seqs, top or 0, cents, acked) != expected or outcome.acked_seq != outcome.sent_seqs:
            problems.append(f"terminal {outcome.terminal_id}: sent 1..{outcome.sent_seqs} ({outcome.amount_cents} c), "
                            f"told acked {outcome.acked_seq}; stored {n} records ({seqs} seqs, top {top}, {cents} c), "
                            f"acked_seq {acked}")
        if row and payables.get(ledger.vendor_payable_code(row.vendor_id), 0) != outcome.amount_cents:
            problems.append(f"terminal {outcome.terminal_id}: vendor payable "
                            f"{payables.get(ledger.vendor_payable_code(row.vendor_id), 0)} c != {outcome.amount_cents} c sent")
    if balance_sum != 0:
        problems.append(f"the ledger sums to {balance_sum} c, not 0")
    if others:
        problems.append(f"{others} stored records are not accepted")
    return problems


# ---- the run -------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))] if sorted_values else 0.0


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, default=500, help="simulated terminals (default 500)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of upload at most (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
    parser.add_argument("--clients", type=int, default=1, help="client processes sharing the terminals (default 1)")
    parser.add_argument("--batch", type=int, default=32, help="records per upload, as the firmware (default 32)")
    parser.add_argument("--records", type=int, default=400, help="records signed per terminal beforehand (default 400)")
    parser.add_argument("--cards", type=int, default=1000, help="member cards (default 1000)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds a terminal waits between batches, "
                        "on average (default 0: back to back, the server's saturation)")
    parser.add_argument("--resend", type=float, default=0.02, help="share of batches sent twice (default 0.02)")
    parser.add_argument("--syncs", type=int, default=2, help="signed syncs per terminal after the upload, "
                        "measured apart (default 2: the whole card list, then a delta)")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--prefill", type=int, default=0, metavar="N",
                        help="first insert N accepted payments of history (PostgreSQL; default 0)")
    args = parser.parse_args(argv)
    if not (0 < args.terminals and 0 < args.batch <= 256 and 0 < args.clients <= args.terminals and args.records > 0
            and args.workers > 0 and 0 <= args.resend <= 1 and args.duration > 0 and args.cards > 0 and args.pause >= 0
            and args.prefill >= 0 and args.syncs >= 0 and not (args.prefill and args.db != "postgresql")):
        parser.error("need positive counts, batch <= 256, clients <= terminals, 0 <= resend <= 1, --prefill on PostgreSQL")

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start; "
          f"{args.terminals} terminals, {args.workers} uvicorn workers, {args.clients} client processes, "
          f"batches of {args.batch}, database {args.db}")
    with fresh_database(args.db) as fresh_url:
        # Named, so that this run's PostgreSQL backends can be told from other users'.
        database_url = f"{fresh_url}&application_name={APPLICATION_NAME}" if args.db == "postgresql" else fresh_url
        prepare_schema(database_url)
        if args.prefill:
            print(f"history: {args.prefill} payments and transfers inserted in {prefill(database_url, args.prefill):.0f} s; "
                  f"on disk, tables with their indexes: {table_sizes(database_url)}")
        with running_server(database_url, workers=args.workers) as (base_url, pid):
            started = time.perf_counter()
            plans, cards = asyncio.run(seed(base_url, terminals=args.terminals, cards=args.cards))
            print(f"seeded {len(plans)} terminals and {len(cards)} cards through the admin API "
                  f"in {time.perf_counter() - started:.1f} s")
            reports, elapsed_s, cpu = upload(base_url, database_url, plans, cards, args, pid)
        problems = check_database(database_url, [t for r in reports for t in r.terminals])
    return summarize(reports, elapsed_s, cpu, problems, args)


def upload(base_url: str, database_url: str, plans: list[TerminalPlan], cards: list[bytes], args: argparse.Namespace,
           server_pid: int) -> tuple[list[ClientReport], float, dict[str, float]]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.clients + 1)
    results = context.Queue()
    processes = [context.Process(target=client_process, args=(base_url, plans[i::args.clients], cards, args,
                                                              LOAD_SEED + i, barrier, results))
                 for i in range(args.clients)]
    for process in processes:
        process.start()
    barrier.wait()  # the clients have signed their logs
    before = (tree_cpu_s(server_pid), postgres_cpu_s(database_url), machine_cpu_s())
    started = time.perf_counter()
    reports = [results.get(timeout=args.duration + 10 * REQUEST_TIMEOUT_S) for _ in processes]
    elapsed_s = time.perf_counter() - started
    after = (tree_cpu_s(server_pid), postgres_cpu_s(database_url), machine_cpu_s())
    cpu = {"server": after[0] - before[0], "postgres": backends_cpu_s(before[1][0], after[1][0]),
           "postgres_all": after[1][1] - before[1][1], "machine": after[2] - before[2]}
    if args.syncs:
        barrier.wait()
        started = time.perf_counter()
        syncs = [results.get(timeout=10 * REQUEST_TIMEOUT_S) for _ in processes]
        sync_s = time.perf_counter() - started
        done = (tree_cpu_s(server_pid), postgres_cpu_s(database_url))
        print_syncs(syncs, sync_s, server_s=done[0] - after[0], postgres_s=(backends_cpu_s(after[1][0], done[1][0]), done[1][1] - after[1][1]))
    for process in processes:
        process.join()
    return reports, elapsed_s, cpu


def backends_cpu_s(before: dict[int, float], after: dict[int, float]) -> float:
    """What the backends alive at the end spent since the start (a lower bound: closed ones are gone)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def print_syncs(reports: list[ClientReport], elapsed_s: float, *, server_s: float, postgres_s: tuple[float, float]) -> None:
    latencies = sorted(latency for r in reports for latency in r.latencies_s)
    requests = sum(r.requests for r in reports)
    errors = sum((r.errors for r in reports), Counter())
    print(f"sync: {requests} signed syncs in {elapsed_s:.1f} s = {requests / elapsed_s:,.0f}/s, p50 "
          f"{1000 * percentile(latencies, 0.5):.0f} ms, p99 {1000 * percentile(latencies, 0.99):.0f} ms, "
          f"errors {sum(errors.values())} {dict(errors)}; CPU per sync: server {1e3 * server_s / max(requests, 1):.1f} ms, "
          f"PostgreSQL {1e3 * postgres_s[0] / max(requests, 1):.1f}-{1e3 * postgres_s[1] / max(requests, 1):.1f} ms")


def summarize(reports: list[ClientReport], elapsed_s: float, cpu: dict[str, float], problems: list[str],
              args: argparse.Namespace) -> int:
    latencies = sorted(latency for r in reports for latency in r.latencies_s)
    outcomes = [t for r in reports for t in r.terminals]
    records = sum(t.sent_seqs for t in outcomes)
    requests = sum(r.requests for r in reports)
    errors = sum((r.errors for r in reports), Counter())
    rejected = sum((t.rejected for t in outcomes), Counter())
    client_cpu_s = sum(r.cpu_s for r in reports)
    print(f"upload: {records} records in {requests} requests over {elapsed_s:.1f} s "
          f"({sum(t.accepted for t in outcomes)} accepted, {sum(t.duplicates for t in outcomes)} duplicates "
          f"from batches sent twice, rejected {dict(rejected)})")
    print(f"throughput: {records / elapsed_s:,.0f} records/s, {requests / elapsed_s:,.1f} requests/s")
    print(f"latency per request: p50 {1000 * percentile(latencies, 0.50):.0f} ms, "
          f"p99 {1000 * percentile(latencies, 0.99):.0f} ms, max {1000 * (latencies[-1] if latencies else 0):.0f} ms, "
          f"mean {1000 * (statistics.fmean(latencies) if latencies else 0):.0f} ms")
    print(f"errors: {sum(errors.values())} {dict(errors)}")
    print(f"CPU over the upload (cores busy on average): server {cpu['server'] / elapsed_s:.2f}, "
          f"PostgreSQL {cpu['postgres'] / elapsed_s:.2f}-{cpu['postgres_all'] / elapsed_s:.2f}, clients {client_cpu_s / elapsed_s:.2f}, "
          f"whole machine {cpu['machine'] / elapsed_s:.2f} of {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"per record: server {1e6 * cpu['server'] / max(records, 1):.0f} µs, "
          f"PostgreSQL {1e6 * cpu['postgres'] / max(records, 1):.0f}-{1e6 * cpu['postgres_all'] / max(records, 1):.0f} µs, "
          f"client {1e6 * client_cpu_s / max(records, 1):.0f} µs")
    exhausted = sum(t.sent_seqs == args.records for t in outcomes)
    if exhausted:
        print(f"note: {exhausted} terminals sent their whole log ({args.records} records) before the deadline")
    if problems:
        print(f"CHECK FAILED: {len(problems)} differences between what terminals sent and the database:")
        for problem in problems[:20]:
            print(f"  {problem}")
    else:
        print(f"check: the database holds exactly the {records} records the terminals sent, once each; "
              f"acked_seq, vendor payables and the ledger (sum 0) agree")
    return 1 if problems or errors or rejected else 0


if __name__ == "__main__":
    sys.exit(main())
