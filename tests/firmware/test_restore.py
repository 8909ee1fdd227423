"""A backend restored from a backup, and a terminal made by the firmware that had been
acknowledged further: it sends again what the restored database lacks, also across a power cut
in the middle (what the database got already comes back as duplicates), and every record is
counted and paid once (docs/operations.md, "Terminals after a restore")."""

import sys
from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import func, select

from caisse import backup
from caisse.db import session_factory
from caisse.ledger import postings as ledger
from caisse.models import Terminal, TransactionRecord
from caisse.reports import invariants
from caisse.settlement import runs as settlement
from caisse.terminals import health as terminal_health
from tests.firmware.mpy_runtime import ROOT
from tests.firmware.test_end_to_end import AppTransport, backend_app, register

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal.soft_signer import SoftwareSigner  # noqa: E402

IBAN = "FR7630006000011234567890189"
AMOUNTS = ("12,50", "2,80", "1", "2", "3", "4")  # two before the backup, three after, one after the restore


def _records(engine, terminal_id):
    with session_factory(engine)() as session:
        return session.execute(select(TransactionRecord.seq, func.count()).where(
            TransactionRecord.terminal_id == terminal_id).group_by(TransactionRecord.seq)).all()


def test_a_terminal_sends_again_what_a_restored_backend_lost_and_each_record_is_paid_once(tmp_path):
    out = tmp_path / "virements"
    with backend_app(tmp_path, [(rig.ALICE, "basic")], vendor_iban=IBAN, settlement_dir=str(out)) as (
            client, engine, settings, vendor_id):
        signer = SoftwareSigner(bytes(31) + b"\x2c")
        tid = register(client, vendor_id, signer.public_key())
        with time_machine.travel(datetime.fromtimestamp(rig.T0, UTC), tick=False):  # the market day
            r = rig.Rig(provisioned=False, transport=AppTransport(client), signer=signer)
            r.terminal.policy.terminal_id = tid
            assert r.terminal.sync_now().error is None

            def pay(amount):
                assert "Paiement accepté" in r.pay(amount, rig.ALICE), r.display.text()
                r.keys("V")

            for amount in AMOUNTS[:2]:
                pay(amount)
            assert r.terminal.sync_now().acked_seq == 2
            saved = backup.back_up(str(engine.url), tmp_path / "sauvegardes", keep=2)
            for amount in AMOUNTS[2:5]:
                pay(amount)
            assert r.terminal.sync_now().acked_seq == 5 and r.log.acked_seq == 5

            engine.dispose()
            assert backup.restore(str(engine.url), saved, by="technicien").terminals == [(tid, 2)]
            assert _records(engine, tid) == [(1, 1), (2, 1)]
            pay(AMOUNTS[5])
            posts = []

            def power_cut_at_the_third_post(method, path, headers, body):
                if method == "POST":
                    posts.append(path)
                    if len(posts) == 3:  # record 6, then re-sent 3 and 4, then 5: the power goes
                        raise OSError("the power goes")
                return AppTransport(client)(method, path, headers, body)

            r.terminal.sync._transport = power_cut_at_the_third_post
            r.terminal.sync._batch = 2
            assert r.terminal.sync_now().error is not None
            assert _records(engine, tid) == [(seq, 1) for seq in (1, 2, 3, 4, 6)]

            r = rig.Rig(files=r.files, transport=AppTransport(client), signer=signer)  # the reboot
            assert r.log.resending() and r.log.resend_above == 2
            report = r.terminal.sync_now()
            assert report.error is None, report
            # the upload after the reboot starts above the backend's 2: 3, 4 and 6 are in the
            # database already (duplicates, counted once), 5 is new to it
            assert (report.uploaded, report.accepted, report.duplicates) == (4, 1, 3)
            assert report.acked_seq == 6 and r.log.resend_above == -1

        assert _records(engine, tid) == [(seq, 1) for seq in range(1, 7)]  # every record, once
        total = sum(int(a.replace(",", "")) * (1 if "," in a else 100) for a in AMOUNTS)
        with session_factory(engine)() as session:
            assert invariants.violations(session) == []
            assert ledger.balance_cents(session, code=ledger.vendor_payable_code(vendor_id)) == total
            terminal = session.get(Terminal, tid)
            assert terminal is not None and terminal.acked_seq == 6
            health = terminal_health.latest(session, terminal_id=tid)
            assert health is not None
            # the report of the first sync after the restore said the terminal was ahead
            assert (health.rewound_from_seq, health.rewound_to_seq, health.terminal_acked_seq) == (5, 2, 5)
            assert health.lost_first_seq is None

        first = settlement.settle(session_factory(engine), run_date=date(2026, 1, 1), settings=settings)
        assert (first.paid_cents, first.paid_records, first.held) == (total, 6, [])
        again = settlement.settle(session_factory(engine), run_date=date(2026, 1, 1), settings=settings)
        assert again.paid_cents == total  # the same run, resumed: nothing paid twice
        with session_factory(engine)() as session:
            assert settlement.settled_total_cents(session) == total
            assert invariants.violations(session) == []
