"""Payment flow and offline policy: state transitions and the French screens (CPython)."""

import sys

import pytest

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import flow, hal, log, policy, record, sim  # noqa: E402


def records(r: rig.Rig):
    sigs = {}
    bodies = []
    for kind, payload in r.log.frames():
        if kind == log.T_BODY:
            bodies.append(payload)
        elif kind == log.T_SIG:
            sigs[int.from_bytes(payload[:4], "big")] = payload[4:]
    return [record.decode(b + sigs.get(record.body_seq(b), bytes(64))) for b in bodies]


@pytest.mark.parametrize("module", [policy, flow])
def test_every_fixed_screen_fits_the_ssd1306(module):
    screens = {name: value for name, value in vars(module).items()
               if isinstance(value, tuple) and value and all(isinstance(line, str) for line in value)
               and name != "STATE_NAMES"}
    assert screens  # the decline reasons and the fixed messages
    for name, lines in screens.items():
        assert len(lines) <= hal.LINES and all(len(line) <= hal.LINE_CHARS for line in lines), name


def test_amount_entry_shows_the_amount_typed_with_comma_and_correction():
    r = rig.Rig()
    assert r.display.lines[0] == "Montant ?"
    r.keys("12,5")
    assert r.display.lines[1] == "12,50 EUR"
    r.keys("7<<")
    assert r.display.lines[1] == "12,00 EUR"
    r.keys("X")
    assert r.display.lines[1] == "0,00 EUR"


def test_validated_amount_asks_for_the_card_then_approves_with_the_budget_left():
    r = rig.Rig()
    r.keys("12,50V")
    assert r.flow.state == flow.WAIT_CARD
    assert r.display.text() == "Présentez | 12,50 EUR | la carte"
    r.tap(rig.ALICE)
    assert r.display.lines == ["Paiement accepté", "12,50 EUR", "Reste", "37,50 EUR"]
    assert r.beeper.events == ["approve"]
    assert r.flow.state == flow.RESULT
    [rec] = records(r)
    assert (rec.seq, rec.kind, rec.amount_cents, rec.card_uid, rec.terminal_id) == (1, 1, 1250, rig.ALICE, 7)
    assert rec.time == rig.T0


def test_the_record_is_committed_before_the_beep_and_signed_after_it():
    r = rig.Rig()
    r.keys("1V")
    r.tap(rig.ALICE)
    assert r.log.unsigned == [1]  # committed, beeped, not yet signed
    assert r.terminal.background_sign() == 1
    assert r.log.unsigned == []
    assert records(r)[0].signature != bytes(64)


def test_blocked_unknown_and_poor_cards_are_declined_with_a_readable_reason():
    r = rig.Rig()
    assert "Carte bloquée" in r.pay("1", rig.MALLORY)
    r.keys("V")  # any key leaves the result screen
    assert "Carte inconnue" in r.pay("1", b"\x09\x09\x09\x09")
    r.keys("V")
    assert r.pay("3,01", rig.BOB) == "Solde | insuffisant"
    assert r.beeper.events == ["decline"] * 3
    assert records(r) == []


def test_budget_is_the_synced_balance_minus_this_terminals_spend():
    r = rig.Rig()
    assert "Paiement accepté" in r.pay("2", rig.BOB)
    r.keys("V")
    assert r.pay("1,01", rig.BOB) == "Solde | insuffisant"
    r.keys("V")
    assert "Paiement accepté" in r.pay("1", rig.BOB)
    # the spend survives a reboot: it is rebuilt from the unacknowledged records
    again = rig.Rig(files=r.files, now=rig.T0 + 60)
    again.tap(rig.BOB)
    assert again.display.lines[:2] == ["Solde disponible", "0,00 EUR"]


def test_card_pulled_away_mid_read_asks_to_tap_again_and_the_retry_pays():
    r = rig.Rig()
    r.keys("5V")
    r.reader.fail_next = True
    r.terminal.poll_card()
    assert r.display.text() == "Carte retirée | trop tôt, | recommencez"
    assert r.flow.state == flow.WAIT_CARD and records(r) == []
    r.tap(rig.ALICE)
    assert r.display.lines[0] == "Paiement accepté"


def test_tapping_without_an_amount_shows_the_balance():
    r = rig.Rig()
    r.tap(rig.CAROL)
    assert r.display.lines[:2] == ["Solde disponible", "1000,00 EUR"]
    assert records(r) == []


def test_one_tap_is_one_payment_even_if_the_card_stays_in_the_field():
    r = rig.Rig()
    r.keys("1V")
    from caisse_terminal.hal import Card
    r.reader.card = Card(rig.ALICE)
    for _ in range(5):
        r.terminal.poll_card()
    assert len(records(r)) == 1


def test_amount_above_the_maximum_is_refused():
    r = rig.Rig(limits={"max_payment_cents": 1000})
    assert r.pay("10,01", rig.CAROL) == "Montant trop | élevé"


def test_too_long_without_sync_refuses_payments():
    r = rig.Rig(limits={"offline_max_age_s": 3600})
    r.clock.advance(3601)
    assert r.pay("1", rig.CAROL) == "Synchronisation | requise"


def test_pin_is_asked_above_the_threshold_and_flagged_in_the_record():
    r = rig.Rig(limits={"pin_threshold_cents": 5000})
    r.keys("60V")
    r.tap(rig.CAROL)
    assert r.flow.state == flow.PIN and r.display.lines[0] == "Code PIN ?"
    r.keys("12")
    assert r.display.lines[1] == "**"
    r.keys("V")  # too short: still waiting
    assert r.flow.state == flow.PIN
    r.keys("345V")  # a fifth digit is not taken
    assert r.display.lines[:2] == ["Code erroné", "Reste 2 essais"] and r.flow.state == flow.PIN
    assert records(r) == []
    r.keys(rig.CODE + "V")
    assert r.display.lines[0] == "Paiement accepté"
    assert records(r)[0].flags == record.FLAG_PIN
    assert r.terminal.policy.tries_left(rig.CAROL) == 3  # a right code starts the count again
    r.keys("V")
    r.pay("10", rig.CAROL)
    assert records(r)[1].flags == 0
    r.keys("V")
    assert "Paiement accepté" in r.pay("50", rig.ALICE)  # no member code in Alice's household


def test_a_tap_without_sun_message_pays_at_most_the_basic_card_limit():
    r = rig.Rig(limits={"basic_card_max_payment_cents": 2000})
    assert r.pay("20,01", rig.CAROL) == "Montant trop | élevé pour | cette carte"
    assert records(r) == []
    r.keys("V")
    r.keys("20,01V")
    r.tap(rig.CAROL, auth=bytes(range(24)))  # a secure card: its SUN message goes to the backend
    assert r.display.lines[0] == "Paiement accepté"
    r.keys("V")
    assert "Paiement accepté" in r.pay("20", rig.ALICE)
    assert [rec.card_auth for rec in records(r)] == [bytes(range(24)), bytes(24)]


def test_above_the_threshold_the_code_is_asked_only_of_a_card_that_has_one_and_could_pay():
    r = rig.Rig(limits={"pin_threshold_cents": 5000})
    assert r.pay("200", rig.CAROL) == "Montant trop | élevé"  # refused before any code
    assert r.flow.state == flow.RESULT
    r.keys("V")
    assert "Paiement accepté" in r.pay("50", rig.ALICE)  # her household has no code
    assert [rec.flags for rec in records(r)] == [0]


def test_wrong_codes_lock_the_card_on_this_terminal_until_a_newer_entry_and_are_reported():
    files = {}
    rig.provision(sim.MemoryStorage(files), limits={"pin_threshold_cents": 5000})
    r = rig.Rig(files=files)
    for attempt in ("1111", "2222"):
        r.keys("60V")
        r.tap(rig.CAROL)
        r.keys(attempt + "V")
        assert r.display.lines[0] == "Code erroné"
        r.keys("X")
    r.keys("60V")
    r.tap(rig.CAROL)
    r.keys("3333V")
    assert r.display.text() == "Carte | verrouillée" and r.beeper.events[-1] == "decline"
    r.keys("V")
    assert r.pay("1", rig.CAROL) == "Carte | verrouillée"  # below the threshold too
    assert rig.Rig(files=files).pay("1", rig.CAROL) == "Carte | verrouillée"  # kept in flash
    pol = r.terminal.policy
    assert pol.code_failures() == bytes([7]) + rig.CAROL + bytes(3) + b"\x00\x03\x01\x00"
    pol.forget_reported_codes()
    assert pol.code_failures() == bytes([7]) + rig.CAROL + bytes(3) + b"\x00\x00\x01\x00"
    pol.apply_cards(rig.entry(rig.CAROL, 0, 90000, rig.CODE), False)  # the next sync's entry
    assert pol.code_failures() == b"" and not pol.code_locked(rig.CAROL)
    r.keys("V")
    assert "Paiement accepté" in r.pay("1", rig.CAROL)


def test_void_of_the_last_payment_with_the_same_card_within_the_window():
    r = rig.Rig()
    r.pay("3", rig.ALICE)
    r.keys("M2")
    assert r.flow.state == flow.VOID_CARD
    r.tap(rig.BOB)
    assert r.display.text() == "Pas la même | carte"
    r.keys("M2")
    r.tap(rig.ALICE)
    assert r.display.lines == ["Paiement annulé", "3,00 EUR"]
    pay, void = records(r)
    assert (void.kind, void.ref_seq, void.amount_cents, void.card_uid) == (2, 1, 300, rig.ALICE)
    r.keys("VM2")
    r.tap(rig.ALICE)
    assert r.display.text() == "Rien à annuler"  # the last record is the void itself
    r.keys("V")
    r.tap(rig.ALICE)
    assert r.display.lines[1] == "50,00 EUR"  # the budget is back


def test_void_after_the_window_is_refused():
    r = rig.Rig()
    r.pay("3", rig.ALICE)
    r.clock.advance(301)
    r.keys("VM2")
    r.tap(rig.ALICE)
    assert r.display.text() == "Annulation | trop tardive"


def test_day_summary_counts_payments_net_of_voids():
    r = rig.Rig()
    r.pay("3", rig.ALICE)
    r.keys("V")
    r.pay("2,50", rig.CAROL)
    r.keys("VM1")
    assert r.display.text() == "Aujourd'hui | 2 paiements | 5,50 EUR"
    r.keys("VM2")
    r.tap(rig.CAROL)
    r.keys("VM1")
    assert r.display.text() == "Aujourd'hui | 1 paiement | 3,00 EUR"
    r.clock.advance(86400)
    r.keys("VM1")
    assert r.display.text() == "Aujourd'hui | 0 paiement | 0,00 EUR"


def test_waiting_for_a_card_times_out_and_returns_to_amount_entry():
    r = rig.Rig()
    r.keys("5V")
    r.wait(29)
    assert r.flow.state == flow.WAIT_CARD
    r.wait(2)
    assert r.display.text() == "Délai dépassé"
    r.wait(5)
    assert r.flow.state == flow.AMOUNT and r.display.lines[0] == "Montant ?"
    r.keys("5V")
    r.keys("X")
    assert r.flow.state == flow.AMOUNT


def test_a_full_log_refuses_payments_with_a_french_message_and_keeps_every_record():
    r = rig.Rig(segment_bytes=1024, segments=2)
    paid = 0
    while r.log.has_room_for_payment():
        assert "Paiement accepté" in r.pay("0,01", rig.CAROL)
        r.keys("V")
        paid += 1
    assert paid >= 3
    assert r.display.text() == "Mémoire pleine | Synchronisez | le terminal"
    r.keys("1V")
    assert r.flow.state == flow.AMOUNT and r.beeper.events[-1] == "decline"
    assert [x.seq for x in records(r)] == list(range(1, paid + 1))


def test_card_table_lookup_is_a_binary_search_over_the_file():
    from caisse_terminal import sim

    class Counting(sim.MemoryStorage):
        reads = 0

        def readinto(self, name, offset, buf):
            Counting.reads += 1
            return super().readinto(name, offset, buf)

    storage = Counting()
    uids = [i.to_bytes(4, "big") for i in range(0, 4000, 3)]
    rig.provision(storage, cards=b"".join(rig.entry(u, i % 2, i) for i, u in enumerate(uids)))
    pol = policy.Policy(storage, None, None)
    assert pol.card_count() == len(uids)
    Counting.reads = 0
    for i, u in enumerate(uids[::37]):
        assert pol.lookup(u) == ((i * 37) % 2, i * 37)
    assert pol.lookup(b"\x00\x00\x00\x01") is None
    assert Counting.reads <= (len(uids[::37]) + 1) * 11  # log2(1334) < 11 reads per lookup


def test_card_deltas_merge_into_the_table_and_a_full_list_replaces_it():
    from caisse_terminal import sim
    storage = sim.MemoryStorage()
    rig.provision(storage)
    pol = policy.Policy(storage, None, None)
    new = b"\x07" * 7
    pol.apply_cards(rig.entry(rig.BOB, 1, 0) + rig.entry(new, 0, 42), False)
    assert pol.lookup(rig.BOB) == (1, 0)
    assert pol.lookup(new) == (0, 42) and pol.lookup(rig.ALICE) == (0, 5000)
    assert pol.card_count() == 5
    pol.apply_cards(rig.entry(new, 0, 43), True)
    assert pol.card_count() == 1 and pol.lookup(rig.ALICE) is None


def test_the_flow_runs_under_micropython():
    out = run("""
import sys
sys.path.insert(0, '/scenarios')
import rig
r = rig.Rig()
print(r.pay('12,50', rig.ALICE))
r.keys('V')
print(r.pay('1', rig.MALLORY))
r.keys('V5V')
r.reader.fail_next = True
r.terminal.poll_card()
print(r.display.text())
""", mounts={ROOT / "tests/firmware/scenarios": "/scenarios"})
    assert out.splitlines() == [
        "Paiement accepté | 12,50 EUR | Reste | 37,50 EUR",
        "Carte bloquée",
        "Carte retirée | trop tôt, | recommencez",
    ]


@pytest.mark.parametrize("cents,text", [(0, "0,00 EUR"), (5, "0,05 EUR"), (123456, "1234,56 EUR"), (-250, "-2,50 EUR")])
def test_amounts_are_written_the_french_way(cents, text):
    assert flow.fmt_cents(cents) == text
