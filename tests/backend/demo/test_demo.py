"""The demo caisse: its terminals speak protocol v1, its seed goes through the real API."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from caisse.config import DEV_ADMIN_TOKEN
from caisse.demo import data as demo_data
from caisse.demo import seed as demo
from caisse_common import protocol
from caisse_common.protocol import Kind
from tests.fixtures.database import ADMIN_TOKEN


def make_terminal(terminal_id: int = 3) -> demo.DemoTerminal:
    return demo.DemoTerminal(terminal_id, demo.terminal_key(demo.DEMO_SEED, 0))


def test_demo_terminal_records_are_signed_chained_and_decodable():
    terminal = make_terminal()
    key = protocol.load_public_key(protocol.public_key_bytes(demo.terminal_key(demo.DEMO_SEED, 0)))
    first = terminal.pay(card_uid=bytes.fromhex("04a1b2c3d4e5f6"), amount_cents=1250, time_s=1_767_254_400)
    second = terminal.pay(card_uid=bytes.fromhex("deadbeef"), amount_cents=380, time_s=1_767_254_500)
    void = terminal.void(second, time_s=1_767_254_545)

    decoded = [protocol.decode(r.encode()) for r in terminal.unacked]
    assert [r.seq for r in decoded] == [1, 2, 3]
    assert all(protocol.verify(key, r) for r in decoded)
    assert decoded[0].prev_hash == protocol.ZERO_HASH
    assert decoded[1].prev_hash == first.digest() and decoded[2].prev_hash == second.digest()
    assert (decoded[2].kind, decoded[2].ref_seq, decoded[2].amount_cents) == (Kind.VOID, 2, 380)
    assert void.card_uid == bytes.fromhex("deadbeef")


def test_demo_terminal_signatures_are_deterministic_across_runs():
    records = [make_terminal().pay(card_uid=bytes(7), amount_cents=500, time_s=1) for _ in range(2)]
    assert records[0].encode() == records[1].encode()
    assert demo.terminal_key(demo.DEMO_SEED, 1).private_numbers() != demo.terminal_key(demo.DEMO_SEED, 2).private_numbers()


def test_demo_households_are_sixty_with_distinct_uids_of_seven_and_four_bytes():
    households = demo_data.households(random.Random(demo.DEMO_SEED))
    assert len(households) == demo_data.HOUSEHOLD_COUNT == 60
    assert len({h.card_uid for h in households}) == 60
    assert {len(h.card_uid) for h in households} == {4, 7}
    assert {h.zone for h in households} == {demo_data.ZONE_CENTRE, demo_data.ZONE_MOSSON}
    assert households[0].allowance_cents == 150_00 + 75_00 * (households[0].members - 1)


def test_demo_vendors_cover_two_markets_a_cooperative_and_an_epicerie():
    kinds = {v.kind for v in demo_data.VENDORS}
    markets = {v.market for v in demo_data.VENDORS if v.market}
    assert len(demo_data.VENDORS) == 12
    assert kinds == {"producer", "bakery", "cooperative", "epicerie"}
    assert markets == {demo_data.MARKET_ARCEAUX, demo_data.MARKET_PAILLADE}


def test_the_market_morning_is_the_same_for_the_same_seed_and_in_time_order():
    def plan(seed: int) -> list[demo.Tap]:
        rng = random.Random(seed)
        return demo.plan_morning(rng, demo_data.households(rng))

    taps = plan(demo.DEMO_SEED)
    assert taps == plan(demo.DEMO_SEED) and taps != plan(demo.DEMO_SEED + 1)
    assert [t.offset_s for t in taps] == sorted(t.offset_s for t in taps)
    assert sum(t.voided for t in taps) == demo.VOIDED_PAYMENTS
    assert all(350 <= t.amount_cents <= 4500 for t in taps)


# ---- seeding through the real API (SQLite, and PostgreSQL under CI) ----------------------------

def test_seeding_builds_the_demo_caisse_through_the_api_once_with_a_balanced_ledger_and_a_blocked_card(client, admin_headers):
    report = demo.seed_demo(client, admin_token=ADMIN_TOKEN)

    assert report is not None
    vendors = client.get("/v1/admin/vendors", headers=admin_headers).json()
    assert len(vendors) == report.vendors == 12
    households = [client.get(f"/v1/admin/households/{h}", headers=admin_headers).json() for h in report.household_ids]
    assert len(households) == 60 and all(len(h["cards"]) == 1 for h in households)
    terminals = [client.get(f"/v1/admin/terminals/{t}", headers=admin_headers).json() for t in report.terminal_ids]
    assert len(terminals) == 12 and {t["vendor_id"] for t in terminals} == {v["id"] for v in vendors}
    assert sum(t["acked_seq"] for t in terminals) == report.signed_records  # every signed record is stored
    assert report.statuses["accepted"] + report.statuses["rejected"] == report.signed_records

    summary = client.get("/v1/admin/ledger/summary", headers=admin_headers).json()
    assert summary["transfers"] == len(households) + report.statuses["accepted"]  # allowances + records
    assert summary["balance_sum_cents"] == 0
    assert sum(v["payable_cents"] for v in vendors) == report.spent_cents > 0

    # The card blocked mid-morning: its later tap is refused, and every terminal learns it at sync.
    assert report.blocked_tap_status == "card_blocked"
    assert report.reasons == {"card_blocked": 1}
    assert report.deny_listed_after_sync
    blocked = [h["cards"][0]["uid"] for h in households if h["cards"][0]["status"] == "blocked"]
    assert blocked == [report.blocked_card]

    # A second run finds the vendors and changes nothing (one seeding per database keeps CI short).
    assert demo.seed_demo(client, admin_token=ADMIN_TOKEN) is None
    assert client.get("/v1/admin/ledger/summary", headers=admin_headers).json() == summary
    assert len(client.get("/v1/admin/vendors", headers=admin_headers).json()) == 12


# ---- `caisse demo`, the command behind `make run` ---------------------------------------------

DEMO_START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OutputReader:
    """Collects a process's output lines in a thread, so the test can wait with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        self.seen: list[str] = []

    def _pump(self) -> None:
        for line in self._stdout:
            self._lines.put(line)

    def until(self, marker: str, *, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while not any(marker in line for line in self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._thread.is_alive() and self._lines.empty():
                raise AssertionError(f"no {marker!r} from caisse demo within {timeout_s:.0f} s:\n{''.join(self.seen)}")
            with contextlib.suppress(queue.Empty):
                self.seen.append(self._lines.get(timeout=min(remaining, 1.0)))
        return "".join(self.seen)

    def close(self) -> None:
        """After the process ended: the pipe is at its end, so the thread finishes."""
        self._thread.join(timeout=10)
        self._stdout.close()


def test_caisse_demo_serves_the_seeded_caisse_until_it_is_stopped(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")}
    env["CAISSE_DATABASE_URL"] = f"sqlite:///{tmp_path}/demo.db"
    command = [str(Path(sys.executable).with_name("caisse")), "demo", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = OutputReader(process)
    try:
        output = reader.until("Ctrl-C", timeout_s=DEMO_START_TIMEOUT_S)
        headers = {"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}
        vendors = httpx.get(f"http://127.0.0.1:{port}/v1/admin/vendors", headers=headers, timeout=10).json()
        summary = httpx.get(f"http://127.0.0.1:{port}/v1/admin/ledger/summary", headers=headers, timeout=10).json()
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.close()

    assert f"http://127.0.0.1:{port}" in output and DEV_ADMIN_TOKEN in output
    assert f"http://127.0.0.1:{port}/console" in output and "admin@caisse.demo.seed / demo-admin-2026" in output
    assert "comité citoyen" in output and "trésorerie" in output  # roles as the console names them
    assert "card_blocked" in output
    assert "(carte bloquée ×1)" in output and "passage suivant : refusé, carte bloquée" in output  # in French
    assert len(vendors) == 12
    assert summary["transfers"] > 60 and summary["balance_sum_cents"] == 0
