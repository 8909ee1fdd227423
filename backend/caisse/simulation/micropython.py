"""The real MicroPython runtime (the official WebAssembly port, under Node): the launcher the
firmware tests use, and the simulation's cross-check of a few terminals.

`compare_records` hands the inputs of every record a CPython terminal committed (kind, card,
amount, time, SUN message...) to the firmware code running in MicroPython, which packs each
body, chains it, commits it to its own log and signs it with the terminal's key. The records
that come out must be the very bytes the backend stored: same seqs, same hash chain, same
RFC 6979 signatures.
"""

from __future__ import annotations

import binascii
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import col

from caisse.models import TransactionRecord
from caisse.simulation.auditor import Check
from caisse_common import protocol

if TYPE_CHECKING:
    from caisse.simulation.world import World

ROOT = Path(__file__).resolve().parents[3]
RUNNER = Path(__file__).with_name("mp_run.mjs")
FIRMWARE = ROOT / "firmware"
# One script is a few seconds at most; 120 s leaves room for a loaded 2-core machine.
TIMEOUT_S = 120
HEAP_BYTES = 8 * 1024 * 1024  # a terminal's log of a few hundred records, in simulated flash


class MicroPythonError(AssertionError):
    """The script raised inside MicroPython; the message holds its traceback."""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("Node.js is required to run firmware code under MicroPython")
    return found


def run(code: str, *, mounts: dict[Path, str] | None = None, heap_bytes: int = 1024 * 1024,
        timeout_s: float = TIMEOUT_S, persist: dict[Path, str] | None = None) -> str:
    """Run `code` with firmware/ at /flash (and any extra host folders); return its stdout.

    The script starts with /flash on sys.path. `persist` folders are mounted too and get back
    what the script left in them, even when it ends by SystemExit (a simulated reset).
    """
    all_mounts = {FIRMWARE: "/flash", **(mounts or {})}
    prelude = "import sys\nsys.path.insert(0, '/flash')\n"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(prelude + code)
    try:
        argv = [node(), str(RUNNER), "--heap", str(heap_bytes)]
        for host, target in all_mounts.items():
            argv += ["--mount", f"{host}:{target}"]
        for host, target in (persist or {}).items():
            argv += ["--persist", f"{host}:{target}"]
        done = subprocess.run(argv + [script.name], capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    finally:
        Path(script.name).unlink()
    if done.returncode != 0:
        raise MicroPythonError(f"MicroPython exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


# Runs inside MicroPython: /sim/terminals.json -> one line "terminal_id hex-record" per record.
_REBUILD = """
import json, binascii
from caisse_terminal import log, record, sim
from caisse_terminal.soft_signer import SoftwareSigner
with open('/sim/terminals.json') as f:
    spec = json.load(f)
buf = bytearray(record.BODY_SIZE)
for t in spec:
    lg = log.Log(sim.MemoryStorage(), 32768, 64)
    lg.recover()
    for text in t['bodies']:
        r = record.decode(binascii.unhexlify(text) + record.NO_SIGNATURE)
        auth = None if r.card_auth == record.NO_AUTH else r.card_auth
        record.pack_body(buf, r.kind, r.flags, r.card_uid, r.terminal_id, lg.next_seq, r.time,
                         r.amount_cents, r.ref_seq, auth, lg.prev_hash)
        lg.commit(buf)
    lg.sign_pending(SoftwareSigner(binascii.unhexlify(t['secret'])), 100000)
    for raw in lg.pending(100000):
        print(t['terminal_id'], binascii.hexlify(raw).decode())
"""


@dataclass
class Comparison:
    terminals: list[int]
    records: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.records > 0 and not self.mismatches

    def check(self) -> Check:
        return Check("records rebuilt and signed under MicroPython equal the CPython terminals'", self.identical,
                     "; ".join(self.mismatches[:3]) or "no record compared")

    def as_json(self) -> dict[str, object]:
        return {"terminals": self.terminals, "records": self.records, "identical": self.identical}


def compare_records(world: World, count: int) -> Comparison:
    """Rebuild the records of the first `count` terminals in MicroPython and compare."""
    posts = world.posts[:count]
    spec = []
    for post in posts:
        bodies = [a.body for (t, _), a in sorted(world.auditor.approved.items()) if t == post.terminal_id]
        secret = post.stall.files["key.bin"]
        spec.append({"terminal_id": post.terminal_id, "secret": bytes(secret).hex(), "bodies": [b.hex() for b in bodies]})
    with tempfile.TemporaryDirectory(prefix="caisse-simulation-mpy-") as folder:
        (Path(folder) / "terminals.json").write_text(json.dumps(spec))
        output = run(_REBUILD, mounts={Path(folder): "/sim"}, heap_bytes=HEAP_BYTES)
    rebuilt: dict[tuple[int, int], bytes] = {}
    for terminal_text, raw_hex in (line.split() for line in output.splitlines() if line.strip()):
        raw = binascii.unhexlify(raw_hex)
        rebuilt[(int(terminal_text), protocol.decode(raw).seq)] = raw
    comparison = Comparison([p.terminal_id for p in posts])
    ids = comparison.terminals
    with world.backend.sessions() as session:
        stored = {(t, s): bytes(raw) for t, s, raw in session.execute(
            select(col(TransactionRecord.terminal_id), col(TransactionRecord.seq), col(TransactionRecord.raw))
            .where(col(TransactionRecord.terminal_id).in_(ids))).all()}
    for key in sorted(set(stored) | set(rebuilt)):
        comparison.records += 1
        if stored.get(key) != rebuilt.get(key):
            comparison.mismatches.append(f"terminal {key[0]} seq {key[1]} differs")
    return comparison
