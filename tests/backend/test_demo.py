"""The demo caisse: its terminals speak protocol v1, its seed goes through the real API."""

from __future__ import annotations

import random

from caisse import demo, demo_data, protocol
from caisse.protocol import Kind
from tests.backend.conftest import ADMIN_TOKEN


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

def test_seeding_builds_the_demo_caisse_through_the_api_with_a_balanced_ledger_and_a_blocked_card(client, admin_headers):
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
    blocked = [h for h in report.household_ids
               if client.get(f"/v1/admin/households/{h}", headers=admin_headers).json()["cards"][0]["status"] == "blocked"]
    assert len(blocked) == 1


def test_seeding_again_changes_nothing(client, admin_headers):
    assert demo.seed_demo(client, admin_token=ADMIN_TOKEN) is not None
    before = client.get("/v1/admin/ledger/summary", headers=admin_headers).json()

    assert demo.seed_demo(client, admin_token=ADMIN_TOKEN) is None
    assert client.get("/v1/admin/ledger/summary", headers=admin_headers).json() == before
    assert len(client.get("/v1/admin/vendors", headers=admin_headers).json()) == 12
