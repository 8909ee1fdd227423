"""Power cut at every write and every byte of every write: approved payments survive, once.

CPython walks every cut point of the workload; MicroPython walks a representative subset (every
write of one payment byte by byte, plus a stride over the rest). The backend's own codec
(caisse_common.protocol) checks the records: signatures, chain, contiguous seqs.
"""

import json
import sys

import pytest
from caisse_common import protocol

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import powercut  # noqa: E402

VECTORS = json.loads((ROOT / "tests/vectors/protocol_v1.json").read_text())
SECRET = bytes.fromhex(VECTORS["terminal"]["secret"])
PUBLIC = protocol.load_public_key(bytes.fromhex(VECTORS["terminal"]["public_key"]))


def check(summary: dict, cut_at: int) -> None:
    """What the backend would see is exactly the approved payments, signed and chained."""
    assert summary["errors"] == [], (cut_at, summary["errors"])
    assert summary["pending"] == 0, cut_at
    backend = {int(k): bytes.fromhex(v) for k, v in summary["backend"].items()}
    approved = [bytes.fromhex(b) for b in summary["approved"]]
    assert sorted(backend) == list(range(1, len(backend) + 1)), cut_at  # no gap, no reuse
    bodies = [backend[s][: protocol.BODY_SIZE] for s in sorted(backend)]
    assert bodies == approved, cut_at  # every approved payment, once, unchanged; nothing else
    prev = protocol.ZERO_HASH
    for seq in sorted(backend):
        rec = protocol.decode(backend[seq])
        assert protocol.verify(PUBLIC, rec), (cut_at, seq)
        assert rec.prev_hash == prev, (cut_at, seq)
        prev = rec.digest()


@pytest.fixture(scope="module")
def signer():
    return powercut.MemoSigner(SECRET)


def test_the_workload_without_power_cut_uploads_everything(signer):
    r = powercut.run(signer, -1)
    check(powercut.summary(r), -1)
    assert len(r.approved) == 13 and r.reboots == 0
    # the restore took records back from the backend: each went again, exactly once, and the
    # re-send is over once the backend caught up
    assert r.forgotten > 0 and r.uploads == len(r.approved) + r.forgotten
    assert r.log.resend_above == -1 and r.log.acked_seq == len(r.approved)


def test_every_cut_point_under_cpython_keeps_approved_payments_exactly_once(signer):
    units = powercut.total_units(signer)
    assert units > 2000  # every byte of every frame, every remove
    reboots = 0
    for cut_at in range(units):
        r = powercut.run(signer, cut_at)
        assert r.reboots == 1, cut_at
        reboots += r.reboots
        check(powercut.summary(r), cut_at)
    assert reboots == units


def test_power_failing_again_soon_after_each_reboot_under_cpython(signer):
    """Second (and third) cuts land in recovery, the re-signing and the retried payment."""
    units = powercut.total_units(signer)
    runs = 0
    for cut_at in range(0, units, 5):
        for then in ((0,), (1,), (40,), (97, 3), (171, 75)):
            r = powercut.run(signer, cut_at, then)
            assert r.reboots >= 2, (cut_at, then)
            check(powercut.summary(r), cut_at)
            runs += 1
    assert runs > 2000


def test_representative_cut_points_under_micropython():
    code = """
import json, binascii
import powercut
signer = powercut.MemoSigner(binascii.unhexlify(SECRET))
units = powercut.total_units(signer)
first = powercut.run(signer, -1)
# every byte of the first payment and its signature, then a stride over everything
points = list(range(0, 200)) + list(range(200, units, 13)) + [units - 1]
out = []
for cut_at in points:
    r = powercut.run(signer, cut_at)
    assert r.reboots == 1, cut_at
    out.append((cut_at, powercut.summary(r)))
print(json.dumps({"units": units, "runs": out}))
""".replace("SECRET", repr(VECTORS["terminal"]["secret"]))
    result = json.loads(run("import sys\nsys.path.insert(0, '/scenarios')\n" + code,
                            mounts={ROOT / "tests/firmware/scenarios": "/scenarios"}))
    assert len(result["runs"]) > 300
    for cut_at, summary in result["runs"]:
        check(summary, cut_at)
