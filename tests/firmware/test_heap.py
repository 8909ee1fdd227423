"""The firmware's heap through a 512-card sync and the payments after it stays under the budget.

Measured in the real MicroPython, step by step (tests/firmware/heap.py, docs/performance.md):
a terminal with 10 000 cards and 200 records to upload boots, takes three payments, syncs
(upload in batches, a 512-card page) and takes three more. It has the software key, whose comb
table main.py builds at boot: the worst case (an ATECC608 board keeps 4 KB less).
"""

from caisse_terminal import page
from tests.firmware import heap


def test_the_firmware_peaks_under_80_kb_through_a_512_card_sync_and_the_payments_after_it():
    report = heap.measure()
    print(report.table())
    assert report.counts["uploaded"] == 203 and report.counts["page_cards"] == 512
    comb_table = report.live_after("signing: comb table built again") - \
        report.live_after("signing: comb table dropped")
    peak = max(report.peak("sync"), report.peak("tap"))
    print(f"peak {peak:,} B (comb table {comb_table:,} B included), budget {heap.BUDGET:,} B")
    assert 0 < comb_table < 6 * 1024
    assert peak <= heap.BUDGET
    # the answer (25 KB) is never held whole: no step allocates as much, and it is read in
    # small steps (a 512-byte chunk of the socket costs a few hundred bytes)
    sync = report.phase("sync: sign")[0]
    allocated = [end - excess - before for before, end, excess in sync.runs]
    assert max(allocated) < report.counts["page_bytes"]
    assert sum(1 for a in allocated if a < 2048) >= report.counts["page_bytes"] // page.CHUNK
    # frozen, the modules keep their dicts, functions and classes: far less than their bytecode
    frozen, bytecode = sum(report.frozen.values()), sum(report.bytecode.values())
    assert 10_000 < frozen < bytecode // 3, (frozen, bytecode)
