"""Ingestion throughput against the cost of one P-256 verification (docs/performance.md).

    python benchmarks/ingest.py [-n 20000] [--terminals 16] [--batch 256] [--db sqlite|postgresql]

Starts the backend (uvicorn, one worker) in a subprocess on a free loopback port with a fresh
database, seeds terminals and cards through the admin API, signs N records beforehand (not
timed), uploads them in batches over HTTP from a few client threads and prints accepted tx/s.
In the same run it measures how many P-256 verifications per second `cryptography` does on one
core, and prints the ratios against the goals: ingestion cannot beat one verification per record,
so a ratio says how much of the server's time goes to everything else. Goals: accepted tx/s over
verify/s >= 0.75 on SQLite and >= 0.6 on PostgreSQL (wall clock, the database sharing the cores);
server CPU per record <= 1.25 verifications (verify/s over records per server CPU second >= 0.8).

Not a test: numbers depend on the machine. Results go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from caisse.db import make_engine, upgrade
from caisse.demo.seed import AdminApi, DemoTerminal, record_b64, terminal_key
from caisse_common import protocol

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ADMIN_TOKEN = "bench-admin-token"
BENCH_SEED = 424242
CARDS = 200
VERIFY_ROUNDS = 8  # of 1000 verifications each, about 0.1 s
READY_TIMEOUT_S = 60.0
MIN_UPLOAD_RATE = 200  # records/s: below that the upload is stuck, not slow (sets the timeout)
MAX_RECORDS = 1_000_000
GOAL_WALL_RATIO = {"sqlite": 0.75, "postgresql": 0.6}
GOAL_CPU_RATIO = 0.8  # server CPU per record <= 1.25 verifications


# ---- the reference: P-256 verifications per second on one core ------------------------------

def verify_rate(*, rounds: int = VERIFY_ROUNDS, distinct: int = 1000) -> tuple[float, float]:
    """(raw cryptography verifies/s, caisse_common.protocol.verify_digest/s), single thread.

    Timed in thread CPU time, best of a few short rounds, so that other processes on a shared
    machine do not make the reference look slower than the core really is.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    digests = [random.randbytes(32) for _ in range(distinct)]
    raw = [protocol.sign_digest(key, d) for d in digests]
    der = [utils.encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big")) for s in raw]
    algorithm = ec.ECDSA(utils.Prehashed(hashes.SHA256()))

    def rate(check) -> float:  # noqa: ANN001 - a closure over one signature index
        best = 0.0
        for _ in range(rounds):
            start = time.thread_time()
            for i in range(distinct):
                check(i)
            best = max(best, distinct / (time.thread_time() - start))
        return best

    cryptography_rate = rate(lambda i: public.verify(der[i], digests[i], algorithm))
    codec_rate = rate(lambda i: protocol.verify_digest(public, digests[i], raw[i]))
    return cryptography_rate, codec_rate


# ---- the server under test ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A database URL nothing else uses: a temporary SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="caisse-bench-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    import psycopg

    schema = f"bench_{os.getpid()}_{int(time.time())}"
    conninfo = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def prepare_schema(database_url: str) -> None:
    """Run the migrations (what `caisse db upgrade` does) so the server starts on a ready database."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def server_env(database_url: str) -> dict[str, str]:
    return {**os.environ, "CAISSE_DATABASE_URL": database_url, "CAISSE_ADMIN_TOKEN": ADMIN_TOKEN,
            "CAISSE_ENVIRONMENT": "test"}


@contextlib.contextmanager
def running_server(database_url: str, *, workers: int = 1) -> Iterator[tuple[str, int]]:
    """uvicorn with `workers` worker processes in a subprocess; yields (base URL, server pid)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "caisse.main:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=server_env(database_url))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base_url, process)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def wait_until_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode} before answering")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/openapi.json", timeout=2.0).status_code == 200:
                return
        threading.Event().wait(0.1)
    raise SystemExit(f"the server at {base_url} did not answer within {READY_TIMEOUT_S:.0f} s")


# ---- seeding and records -------------------------------------------------------------------------

def seed(api: AdminApi, *, terminals: int) -> tuple[list[DemoTerminal], list[bytes]]:
    """One vendor per terminal, CARDS cards with a large allowance."""
    rng = random.Random(BENCH_SEED)
    cards = [bytes([0x04]) + rng.randbytes(6) for _ in range(CARDS)]
    for index, uid in enumerate(cards):
        household = api.post("/households", {"name": f"Foyer {index}", "members": 2, "zone": "bench"})
        api.post("/cards", {"household_id": household["id"], "uid": uid.hex()})
        api.post(f"/households/{household['id']}/credits", {"amount_cents": 1_000_000, "memo": "bench"})
    result = []
    for index in range(terminals):
        vendor = api.post("/vendors", {"name": f"Producteur {index}", "kind": "producer",
                                       "market": "Marché du banc d'essai", "zone": "bench"})
        key = terminal_key(BENCH_SEED, index)
        created = api.post("/terminals", {"vendor_id": vendor["id"],
                                          "public_key": protocol.public_key_bytes(key).hex()})
        result.append(DemoTerminal(created["id"], key))
    return result, cards


def sign_records(terminals: list[DemoTerminal], cards: list[bytes], n: int) -> None:
    rng = random.Random(BENCH_SEED + 1)
    start_s = int(time.time()) - n  # one record a second per terminal, all in the past
    for index in range(n):
        terminal = terminals[index % len(terminals)]
        terminal.pay(card_uid=rng.choice(cards), amount_cents=rng.randrange(350, 4500, 10), time_s=start_s + index)


@dataclass(frozen=True, slots=True)
class Batch:
    terminal_id: int
    body: bytes
    records: int


def encode_batches(terminals: list[DemoTerminal], batch: int) -> list[list[Batch]]:
    """Per terminal, its batches in seq order, as the JSON bytes the client will send."""
    lanes = []
    for terminal in terminals:
        records = terminal.unacked
        lanes.append([
            Batch(terminal.terminal_id, json.dumps({"records": [record_b64(r) for r in records[i:i + batch]]}).encode(),
                  len(records[i:i + batch]))
            for i in range(0, len(records), batch)
        ])
    return lanes


def process_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (Linux /proc), to tell work from waiting."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


@contextlib.contextmanager
def sampled(pid: int, output: str | None) -> Iterator[None]:
    """py-spy on the server process for the duration of the block, when asked for."""
    if output is None:
        yield
        return
    command = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--output", output, "--rate", "200",
               "--nonblocking"]
    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


# Where the server's samples fall, first match wins: (area, a function in the sampled stack).
PROFILE_AREAS = (
    ("signature verification", "verify_digest ("),
    ("request body: JSON + base64", "read_batch ("),
    ("terminal row lock (BEGIN IMMEDIATE on SQLite)", "lock_terminal ("),
    ("ledger: account ids, transfers, balance deltas", "post_transfer_rows ("),
    ("ledger: account ids, transfers, balance deltas", "account_ids ("),
    ("card sync versions", "bump_cards ("),
    ("insert records (and rejection log)", "_write ("),
    ("reads: neighbour records, cards, acked_seq", "_load_neighbourhood ("),
    ("reads: neighbour records, cards, acked_seq", "_load_cards ("),
    ("reads: neighbour records, cards, acked_seq", "_advance_acked_seq ("),
    ("record decode", "decode (caisse_common/protocol.py"),
    ("commit", "Session.commit ("),
    ("response: results list", "batch_response_json ("),
    ("ingestion logic (checks, rows, postings)", "ingest_prepared ("),
    ("ingestion logic (checks, rows, postings)", "prepare_batch ("),
    ("HTTP server, event loop, thread hand-off", ""),
)


def profile_areas(collapsed_path: str) -> list[tuple[str, float]]:
    """Shares of py-spy's samples (collapsed stacks: "frame;frame;... count") by area."""
    counts: Counter[str] = Counter()
    with open(collapsed_path) as samples:
        for line in samples:
            stack, _, count = line.rstrip().rpartition(" ")
            counts[next(area for area, frame in PROFILE_AREAS if frame in stack)] += int(count)
    total = sum(counts.values()) or 1
    return [(area, n / total) for area, n in counts.most_common()]


# ---- the measured part -----------------------------------------------------------------------------

def upload(base_url: str, lanes: list[list[Batch]], clients: int) -> tuple[float, Counter[str]]:
    """Each client thread sends whole terminals' lanes in seq order; returns (seconds, statuses)."""
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    timeout_s = max(600.0, sum(b.records for lane in lanes for b in lane) / MIN_UPLOAD_RATE)
    deadline = time.monotonic() + timeout_s

    def send_lanes(my_lanes: list[list[Batch]]) -> None:
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base_url, timeout=120.0) as client:
            for lane in my_lanes:
                for batch in lane:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"upload took longer than {timeout_s:.0f} s")
                    response = client.post(f"/v1/terminals/{batch.terminal_id}/batches", content=batch.body,
                                           headers=headers)
                    response.raise_for_status()
                    counted = Counter(r["status"] if r["status"] != "rejected" else f"rejected:{r['reason']}"
                                      for r in response.json()["results"])
                    with lock:
                        statuses.update(counted)

    shares = [lanes[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(send_lanes, share) for share in shares if share]:
            future.result()
    return time.perf_counter() - start, statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="records to upload (default 20000)")
    parser.add_argument("--terminals", type=int, default=16, help="terminals, M (default 16)")
    parser.add_argument("--batch", type=int, default=256, help="records per batch, at most 256 (default 256)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the server with py-spy during the upload "
                        "(collapsed stacks written to FILE; py-spy must be on PATH)")
    args = parser.parse_args(argv)
    if not (0 < args.n <= MAX_RECORDS and 0 < args.terminals <= args.n and 0 < args.batch <= 256 and args.clients > 0):
        parser.error(f"need 0 < terminals <= n <= {MAX_RECORDS}, 0 < batch <= 256, clients > 0")

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, database {args.db}")
    cryptography_rate, codec_rate = verify_rate()
    print(f"P-256 verify, one core: {cryptography_rate:,.0f}/s (cryptography), {codec_rate:,.0f}/s (protocol.verify_digest)")

    with fresh_database(args.db) as database_url:
        prepare_schema(database_url)
        with running_server(database_url) as (base_url, pid):
            with httpx.Client(base_url=base_url, timeout=30.0) as client:
                terminals, cards = seed(AdminApi(client, ADMIN_TOKEN), terminals=args.terminals)
            sign_records(terminals, cards, args.n)
            lanes = encode_batches(terminals, args.batch)
            cpu_before_s, client_before_s = process_cpu_s(pid), time.process_time()
            with sampled(pid, args.py_spy):
                elapsed_s, statuses = upload(base_url, lanes, args.clients)
            cpu_after_s = process_cpu_s(pid)
            server_user_s, server_system_s = (after - before for after, before in zip(cpu_after_s, cpu_before_s, strict=True))
            server_cpu_s = server_user_s + server_system_s
            client_cpu_s = time.process_time() - client_before_s
    # Measured again after the upload, keeping the faster: on a shared machine the core's speed
    # varies (SMT siblings, frequency), and the reference must not flatter the ratio.
    cryptography_rate = max(cryptography_rate, verify_rate()[0])

    accepted = statuses["accepted"]
    tx_rate = accepted / elapsed_s
    ratio = tx_rate / cryptography_rate
    print(f"uploaded {args.n} records from {args.terminals} terminals in batches of {args.batch}, "
          f"{args.clients} clients: {dict(statuses)}")
    print(f"P-256 verify, one core, best of before and after: {cryptography_rate:,.0f}/s")
    print(f"ingestion: {accepted} accepted in {elapsed_s:.2f} s = {tx_rate:,.0f} tx/s")
    print(f"server CPU: {server_cpu_s:.2f} s over {elapsed_s:.2f} s of upload ({100 * server_cpu_s / elapsed_s:.0f}% of one core), "
          f"{1e6 * server_cpu_s / max(accepted, 1):.0f} µs per record (user {1e6 * server_user_s / max(accepted, 1):.0f}, "
          f"system {1e6 * server_system_s / max(accepted, 1):.0f}); one verification: {1e6 / cryptography_rate:.0f} µs")
    print(f"client (this process, sharing the machine): {client_cpu_s:.2f} s of CPU, "
          f"{1e6 * client_cpu_s / max(accepted, 1):.0f} µs per record")
    cpu_ratio = accepted / server_cpu_s / cryptography_rate
    goal = GOAL_WALL_RATIO[args.db]
    print(f"ratio tx/s / verify/s: {ratio:.2f} (goal >= {goal}: {'met' if ratio >= goal else 'not met'});"
          f" on server CPU time alone: {cpu_ratio:.2f} (goal >= {GOAL_CPU_RATIO}:"
          f" {'met' if cpu_ratio >= GOAL_CPU_RATIO else 'not met'}), load average {os.getloadavg()[0]:.1f}")
    if args.py_spy:
        print("server samples by area (py-spy):")
        for area, share in profile_areas(args.py_spy):
            print(f"  {area:<48} {100 * share:4.0f} %")
    if accepted != args.n:
        print(f"error: {args.n - accepted} records were not accepted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
