"""The firmware's heap through a 512-card sync and the payments after it stays under the budget.

Measured in the real MicroPython, step by step (tests/firmware/heap.py, docs/performance.md):
a terminal with 10 000 cards and 200 records to upload boots, takes three payments, syncs
(upload in batches, a 512-card page) and takes three more. The software signature's comb table
is added for boards without an ATECC608, which keep it once built.
"""

from tests.firmware import heap


def test_the_firmware_peaks_under_80_kb_through_a_512_card_sync_and_the_payments_after_it():
    report = heap.measure()
    print(report.table())
    assert report.counts["uploaded"] == 203 and report.counts["page_cards"] == 512
    comb_table = report.live_after("signing: comb table (first signature)") - \
        report.live_after("tap 3 after the sync")
    peak = max(report.peak("sync"), report.peak("tap"))
    print(f"peak {peak:,} B, with the software key's comb table {peak + comb_table:,} B, budget {heap.BUDGET:,} B")
    assert 0 < comb_table < 6 * 1024
    assert peak + comb_table <= heap.BUDGET
    # the answer (22 KB) is never held: no step of the sync allocates half of it
    sync = report.phase("sync: sign")[0]
    assert max(end - excess - before for before, end, excess in sync.runs) < report.counts["page_bytes"] * 2
    page_steps = [end - excess - before for before, end, excess in sync.runs[8:]]  # after the uploads
    assert max(page_steps) < report.counts["page_bytes"] // 2
    # frozen, the modules keep their dicts, functions and classes: far less than their bytecode
    frozen, bytecode = sum(report.frozen.values()), sum(report.bytecode.values())
    assert 10_000 < frozen < bytecode // 3, (frozen, bytecode)
