"""The terminal's heap through a market day, measured in the real MicroPython (WebAssembly port).

    report = measure()          # boot, taps, a sync of 512 cards with records to upload, taps
    print(report.table())

What is counted, and how (docs/performance.md, "Heap"):
- The port grows its heap on demand and collects only between runPython calls, never inside one
  (mp_steps.mjs). So the firmware runs in steps, one call each: a tap, an upload batch, a chunk of
  a sync answer, a bucket of the card table. A step's peak is what was live before it plus all it
  allocated, garbage included: an upper bound of what the ESP32's heap holds at any time in it.
- Imports are made as from frozen bytecode: each module is compiled in one step (bytecode,
  constants, names: in flash once frozen, not counted), then executed into its module in another
  (its dict, functions, classes and module-level data stay on the heap even when frozen: counted).
- The port implements binascii in Python where the ESP32 has it in C: only the object the C
  function returns is counted (the stand-in below takes the rest off, in `__excess`).
- The device is main.build() itself: drivers on an I2C bus that answers as the reference board
  (the PN532 simulator answers its firmware-version probe; the display and the rest take writes
  and answer nothing), the flash is the port's filesystem (outside the Python heap), the network
  a socket stand-in serving prepared HTTP answers. The request signatures and the records are
  signed by a stand-in for the ATECC608 (its driver holds two small buffers), but the board
  has the software key, whose P-256 comb table main.py builds at boot: the worst case. The
  software signature itself is measured apart (`signing`).
Not counted: the runtime's own objects at boot (sys.modules, the REPL) and the asyncio tasks'
Task objects (C on the ESP32; their coroutines are counted, in "asyncio tasks").
"""

from __future__ import annotations

import ast
import base64
import json
import os
import random
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from caisse_terminal import cards, log, policy, record
from caisse_terminal import sync as sync_module
from caisse_terminal.storage import FileStorage
from tests.firmware.mpy_runtime import FIRMWARE, ROOT, TIMEOUT_S, MicroPythonError, node

RUNNER = Path(__file__).with_name("mp_steps.mjs")
SIM = Path(__file__).with_name("sim")
BUDGET = 80 * 1024  # the firmware's peak, leaving 30 KB of the ~110 KB for a TLS handshake
SECRET = bytes.fromhex("1ec56da2f93248522cfbf40226ae6d43598dab2d9a66fcff250c16b3c7bc644a")
TERMINAL_ID = 7
# What the device imports: everything but the simulator and the self-test (provisioning's).
NOT_IMPORTED = {"caisse_terminal/sim.py", "selftest.py", "boot.py"}

SETUP = r"""
import sys, json
sys.path[:0] = ['/stub', '/sim']
import binascii as __pybinascii  # the port's Python binascii (C on the ESP32)
import io, os, time, asyncio  # the port's Python wrappers: imported before the baseline

def __bytes_cost(n):  # a bytes object of length n as the C module makes it: header + data
    return 16 + (n + 16) // 16 * 16

class __Binascii:  # binascii counted as the ESP32's C module allocates
    def crc32(self, data, crc=0):
        m = gc.mem_alloc()
        r = __pybinascii.crc32(data, crc)
        __excess[0] += gc.mem_alloc() - m - (0 if r < 0x40000000 else 32)
        return r
    def b2a_base64(self, data, newline=True):
        m = gc.mem_alloc()
        r = __pybinascii.b2a_base64(data, newline=newline)
        __excess[0] += gc.mem_alloc() - m - __bytes_cost(len(r))
        return r
    def a2b_base64(self, data):
        m = gc.mem_alloc()
        r = __pybinascii.a2b_base64(data)
        __excess[0] += gc.mem_alloc() - m - __bytes_cost(len(r))
        return r
    def hexlify(self, data, sep=None):
        m = gc.mem_alloc()
        r = __pybinascii.hexlify(data) if sep is None else __pybinascii.hexlify(data, sep)
        __excess[0] += gc.mem_alloc() - m - __bytes_cost(len(r))
        return r
    def unhexlify(self, data):
        m = gc.mem_alloc()
        r = __pybinascii.unhexlify(data)
        __excess[0] += gc.mem_alloc() - m - __bytes_cost(len(r))
        return r
sys.modules['binascii'] = __Binascii()
# The Python module builds its tables once, and interns each character it outputs as a qstr:
# all of them now, so no qstr pool is allocated during a step on its account.
__pybinascii.crc32(b'0000')
__pybinascii.a2b_base64(__pybinascii.b2a_base64(bytes(range(256))))
__pybinascii.unhexlify(__pybinascii.hexlify(bytes(range(256))))

__answer = [0]
class __Socket:  # serves /net/000.http, /net/001.http ... in order, one per connection
    def __init__(self, *args):
        self._file = None
    def settimeout(self, s):
        pass
    def connect(self, addr):
        self._file = open('/net/%03d.http' % __answer[0], 'rb')
        __answer[0] += 1
    def write(self, data):
        return len(data)
    def readinto(self, buf):
        return self._file.readinto(buf)
    def close(self):
        if self._file is not None:
            self._file.close()
class __SocketModule:
    AF_INET = 2
    SOCK_STREAM = 1
    socket = __Socket
    def getaddrinfo(self, host, port, family, kind):
        return [(2, 1, 0, '', ('10.0.0.1', port))]
sys.modules['socket'] = __SocketModule()

import pn532_sim
__pn532 = pn532_sim.PN532Sim()
class __I2C:  # the reference board's bus: the PN532 answers its probe, the rest takes writes
    def __init__(self, *args, **kw):
        pass
    def writeto(self, address, buf, stop=True):
        if address == 0x24:
            __pn532.write(bytes(buf))
        elif address != 0x3C:
            raise OSError(19)
        return len(buf)
    def writevto(self, address, vector, stop=True):
        if address != 0x3C:
            raise OSError(19)
    def readfrom_into(self, address, buf, stop=True):
        if address != 0x24:
            raise OSError(19)
        __pn532.read(buf)
    def scan(self):
        return [0x24, 0x3C]
class __Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    def __init__(self, *args, **kw):
        pass
    def value(self, v=None):
        return 1
    def __call__(self, v=None):
        return 1
    def on(self):
        pass
    def off(self):
        pass
    def irq(self, *args, **kw):
        pass
class __Device:  # PWM, WDT, RTC...: takes anything, answers zero
    def __init__(self, *args, **kw):
        pass
    def __getattr__(self, name):
        return self._nothing
    def _nothing(self, *args, **kw):
        return 0
class __ADC(__Device):
    ATTN_11DB = 3
    def read_uv(self):
        return 1950000  # a charged cell behind the divider
class __Machine:
    I2C = __I2C
    SoftI2C = __I2C
    Pin = __Pin
    ADC = __ADC
    WDT_RESET = 3
    def reset_cause(self):
        return 1
    def __getattr__(self, name):
        return __Device
sys.modules['machine'] = __Machine()

class __Signer:  # the ATECC608's place: a signature costs its 64 bytes
    def sign_digest(self, digest):
        return b'\x01' * 64
    def public_key(self):
        return b'\x04' + b'\x01' * 64
__END = object()
"""


@dataclass
class Step:
    name: str
    runs: list[tuple[int, int, int]]  # (live before, at the end, excess) per run

    @property
    def peak(self) -> int:
        return max(end - excess for _, end, excess in self.runs)


@dataclass
class Report:
    baseline: int
    bytecode: dict[str, int]  # module -> heap its compiled code takes (flash when frozen)
    frozen: dict[str, int]  # module -> heap it keeps when frozen (dict, functions, classes)
    steps: list[Step]
    counts: dict[str, int] = field(default_factory=dict)

    def frozen_equivalent(self, raw: int) -> int:
        return raw - self.baseline - sum(self.bytecode.values())

    def phase(self, prefix: str) -> list[Step]:
        return [s for s in self.steps if s.name.startswith(prefix)]

    def peak(self, prefix: str = "") -> int:
        return max(self.frozen_equivalent(s.peak) for s in self.steps if s.name.startswith(prefix)
                   and not s.name.startswith(("compile ", "exec ")))

    def live_after(self, name: str) -> int:
        index = next(i for i, s in enumerate(self.steps) if s.name == name)
        return self.frozen_equivalent(self.steps[index + 1].runs[0][0])

    def table(self) -> str:
        lines = [f"{'step':<34}{'runs':>6}{'live before':>13}{'peak':>10}{'live after':>12}"]
        for i, step in enumerate(self.steps):
            if step.name.startswith(("compile ", "exec ")) or step.name == "end":
                continue
            after = self.steps[i + 1].runs[0][0]
            lines.append(f"{step.name:<34}{len(step.runs):>6}{self.frozen_equivalent(step.runs[0][0]):>13,}"
                         f"{self.frozen_equivalent(step.peak):>10,}{self.frozen_equivalent(after):>12,}")
        return "\n".join(lines)


def module_order(firmware: Path = FIRMWARE) -> list[tuple[str, Path]]:
    """(module name, source) of what the device imports, each after the modules it imports at
    its top level."""
    sources = {}
    for path in sorted(firmware.rglob("*.py")):
        rel = path.relative_to(firmware).as_posix()
        if "__pycache__" in rel or rel in NOT_IMPORTED:
            continue
        name = rel[:-3].replace("/", ".")
        sources[name.removesuffix(".__init__")] = path
    deps: dict[str, set[str]] = {}
    for name, path in sources.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for statement in ast.parse(path.read_text()).body:  # top level only: lazy imports come later
            names: list[str] = []
            if isinstance(statement, ast.Import):
                names = [a.name for a in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                base = statement.module or ""
                if statement.level:
                    base = package + ("." + base if base else "")
                names = [base] + [f"{base}.{a.name}" for a in statement.names]
            elif isinstance(statement, ast.Try):
                continue
            for n in names:
                while n:
                    if n in sources and n != name:
                        found.add(n)
                    n = n.rpartition(".")[0]
        deps[name] = found
    order: list[str] = []
    while len(order) < len(deps):
        ready = sorted(n for n in deps if n not in order and deps[n] <= set(order))
        assert ready, f"import cycle among {set(deps) - set(order)}"
        order.append(ready[0])
    return [(n, sources[n]) for n in order]


def _write_table(storage_dir: Path, entries: list[bytes]) -> None:
    buckets: dict[int, list[bytes]] = defaultdict(list)
    for entry in entries:
        buckets[cards.bucket_of(entry, 0)].append(entry)
    for bucket, found in buckets.items():
        (storage_dir / cards.bucket_name(bucket)).write_bytes(b"".join(sorted(found, key=lambda e: e[:cards.KEY_SIZE])))


class _Instant:
    def sign_digest(self, digest: bytes) -> bytes:
        return b"\x01" * 64


def _http(status: int, body: bytes) -> bytes:
    return b"HTTP/1.0 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(body)) + body


class _HostFlash(FileStorage):
    def sync(self) -> None:
        pass  # a host folder only prepares the device's flash: no os.sync() per record


def prepare(root: Path, *, table_cards: int, pending: int, taps: int, page_cards: int, now: int) -> dict:
    """The flash of a provisioned terminal with `pending` records to upload, and the answers of
    the backend to its next sync; returns what the steps need to know."""
    rnd = random.Random(1)
    data = root / "data"
    data.mkdir()
    storage = _HostFlash(str(data))
    storage.replace("provision.json", json.dumps({"backend_url": "http://caisse.test", "wifi": None,
                                                  "ca_file": None}).encode())
    storage.replace("key.bin", SECRET)
    uids = [b"\x04" + rnd.randbytes(6) for _ in range(table_cards)]
    entries = [cards.ENTRY_SIZE and _entry(uid, i) for i, uid in enumerate(uids)]
    _write_table(data, entries)
    pol = policy.Policy(storage, None, None)
    pol.terminal_id, pol.cards_version, pol.last_sync = TERMINAL_ID, 1000, now
    pol.save()
    lg = log.Log(storage)
    lg.recover()
    body = bytearray(record.BODY_SIZE)
    for i in range(pending):
        record.pack_body(body, record.KIND_PAYMENT, 0, uids[i % 50], TERMINAL_ID, lg.next_seq, now - 3600 + i,
                         100 + i, 0, None, lg.prev_hash)
        lg.commit(body)
        lg.sign_pending(_Instant())
    net = root / "net"
    net.mkdir()
    answers = []
    uploaded = pending + taps
    for start in range(1, uploaded + 1, sync_module.BATCH_RECORDS):
        seqs = range(start, min(uploaded, start + sync_module.BATCH_RECORDS - 1) + 1)
        results = [{"index": i, "seq": s, "status": "accepted"} for i, s in enumerate(seqs)]
        answers.append(_http(200, json.dumps({"results": results, "acked_seq": seqs[-1]}).encode()))
    changed = rnd.sample(range(table_cards), page_cards * 3 // 4)
    page_entries = [_entry(uids[i], i, balance=777) for i in changed]
    page_entries += [_entry(b"\x04" + rnd.randbytes(6), table_cards + i) for i in range(page_cards - len(changed))]
    wire = b"".join(e for e in page_entries)
    answers.append(_http(200, json.dumps({
        "v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": now + 60, "acked_seq": uploaded,
        "cards_version": 1001, "full": False, "more": False,
        "cards": base64.b64encode(wire).decode(),
        "limits": {"max_payment_cents": 15000, "pin_threshold_cents": 0, "offline_max_age_s": 259200,
                   "void_window_s": 300, "basic_card_max_payment_cents": 5000, "code_max_tries": 3}}).encode()))
    for i, answer in enumerate(answers):
        (net / f"{i:03d}.http").write_bytes(answer)
    return {"tap_uids": [uids[i].hex() for i in range(50, 50 + 2 * taps)], "answers": len(answers),
            "page_bytes": len(answers[-1]), "uploaded": uploaded}


def _entry(uid: bytes, household: int, balance: int = 500_000) -> bytes:
    return (bytes([len(uid)]) + uid.ljust(10, b"\0") + b"\0" + balance.to_bytes(4, "big", signed=True)
            + bytes(16) + household.to_bytes(4, "big"))


def _tap(uid_hex: str) -> str:
    return ("__t.flow.key('1'); __t.flow.key('2'); __t.flow.key(','); __t.flow.key('5'); __t.flow.key('V')\n"
            f"__t.flow.card(__Card(binascii.unhexlify({uid_hex!r}), None))\n"
            "assert __t.flow.state == 3, __t.flow.state\n"  # RESULT
            "__t.background_sign()\n"
            "__t.flow.key('V')\n")


def measure(*, table_cards: int = 10_000, pending: int = 200, taps: int = 3, page_cards: int = 512,
            signing: bool = True, firmware: Path = FIRMWARE) -> Report:
    import time as host_time

    with tempfile.TemporaryDirectory(prefix="caisse-heap-") as tmp:
        root = Path(tmp)
        facts = prepare(root, table_cards=table_cards, pending=pending, taps=taps, page_cards=page_cards,
                        now=int(host_time.time()))
        stub = root / "stub"
        modules = module_order(firmware)
        for _, path in modules:
            target = stub / path.relative_to(firmware)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
        steps = []
        for name, path in modules:
            device_path = "/flash/" + path.relative_to(firmware).as_posix()
            steps.append({"name": f"compile {name}",
                          "code": f"__code = compile(open({device_path!r}).read(), {device_path!r}, 'exec')\n"
                                  "__codes.append(__code)\n__code = None"})
            steps.append({"name": f"exec {name}",
                          "code": f"import {name}\nexec(__codes[-1], sys.modules[{name!r}].__dict__)"})
        steps.append({"name": "boot: main.Device().terminal(...)",
                      "code": "import main, binascii\nfrom caisse_terminal.hal import Card as __Card\n"
                              "from caisse_terminal.health import Health as __Health\n"
                              "from caisse_terminal.storage import FileStorage as __FileStorage\n"
                              "__storage = __FileStorage('/data')\n__clock = main.RtcClock()\n"
                              "__t = main.Device().terminal(__storage, __Health(__storage, __clock), __clock)\n"
                              "assert __t is not None\n"
                              "__t.signer = __Signer()\n__t.sync._signer = __t.signer"})
        steps.append({"name": "asyncio tasks (supervisor, coroutines)",
                      "code": "from caisse_terminal.supervisor import Supervisor as __Supervisor\n"
                              "__sup = __Supervisor(__t.health, __t.clock, recover=__t.recover)\n"
                              "__t.add_tasks(__sup)\n"
                              "__coros = [__sup._run(task) for task in __sup._tasks]"})
        uids = facts["tap_uids"]
        for i in range(taps):
            steps.append({"name": f"tap {i + 1} before the sync", "code": _tap(uids[i])})
        steps.append({"name": "sync: sign, upload, 512-card page",
                      "code": "try:\n    __gen\nexcept NameError:\n    from caisse_terminal.sync import Report\n"
                              "    __report = Report()\n    __gen = __t.sync.steps(__report)\n"
                              "__more = next(__gen, __END) is not __END"})
        steps.append({"name": "sync: done",
                      "code": "assert __report.error is None, __report.error\n__t.flow.sync_done(True)\n"
                              "__gen = None\n"
                              "print('@@SYNC@@' + json.dumps([__report.accepted, __report.cards, __answer[0]]))"})
        for i in range(taps):
            steps.append({"name": f"tap {i + 1} after the sync", "code": _tap(uids[taps + i])})
        if signing:
            steps.append({"name": "signing: one signature",
                          "code": "from caisse_terminal import p256\n"
                                  f"__secret = {SECRET!r}\n__sig = p256.sign_digest(__secret, b'\\x07' * 32)"})
            steps.append({"name": "signing: comb table dropped", "code": "p256._table = None"})
            steps.append({"name": "signing: comb table built again", "code": "p256.public_key(__secret)"})
        plan = {"heap": 256 * 1024, "setup": SETUP.replace("__codes", "__codes") + "\n__codes = []\n",
                "mounts": [[str(firmware), "/flash"], [str(stub), "/stub"], [str(SIM), "/sim"],
                           [str(root / "data"), "/data"], [str(root / "net"), "/net"]],
                "steps": steps}
        (root / "plan.json").write_text(json.dumps(plan))
        done = subprocess.run([node(), str(RUNNER), str(root / "plan.json")], capture_output=True, text=True,
                              timeout=TIMEOUT_S, cwd=ROOT)
    if done.returncode != 0:
        raise MicroPythonError(f"MicroPython exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    lines = done.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("@@STEPS@@"))[len("@@STEPS@@"):])
    accepted, synced_cards, answers_used = json.loads(next(line for line in lines if line.startswith("@@SYNC@@"))[8:])
    assert (accepted, synced_cards, answers_used) == (facts["uploaded"], page_cards, facts["answers"]), \
        (accepted, synced_cards, answers_used, facts)
    parsed = [Step(r["name"], [tuple(run) for run in r["runs"]]) for r in result]
    baseline = parsed[0].runs[0][0]
    bytecode, frozen = {}, {}
    for i, step in enumerate(parsed[:-1]):
        retained = parsed[i + 1].runs[0][0] - step.runs[0][0]
        kind, _, name = step.name.partition(" ")
        if kind == "compile":
            bytecode[name] = retained
        elif kind == "exec":
            frozen[name] = retained
    return Report(baseline, bytecode, frozen, parsed,
                  counts={"uploaded": accepted, "page_cards": synced_cards, "page_bytes": facts["page_bytes"]})


if __name__ == "__main__":
    report = measure()
    print(report.table())
    print(os.linesep.join(f"{k}: {v}" for k, v in report.counts.items()))
