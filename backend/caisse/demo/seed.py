"""`caisse demo`: serve a demo caisse whose data came through the real HTTP API.

On an empty database the demo seeds vendors, households, cards and terminals through the admin
API, then replays a simulated market morning: software terminals sign payment records and upload
them in batches to `POST /v1/terminals/{id}/batches`, exactly as the firmware does. A card is
blocked mid-morning, so a later tap with it comes back `card_blocked`. Everything is derived from
`DEMO_SEED`, so two runs build the same caisse (vendors, households, cards, terminal keys,
taps); only the record times follow the clock, because a block is dated by the backend. On a
database that already has vendors the demo only serves.

`seed_demo` takes an `httpx.Client`, so tests run it against `fastapi.testclient.TestClient`.
"""

from __future__ import annotations

import base64
import hashlib
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from caisse.demo import data as demo_data
from caisse.demo.data import DemoHousehold, DemoVendor
from caisse.money import euros
from caisse.terminals.sync import unpack_cards, unpack_cards_v2
from caisse_common import protocol
from caisse_common.protocol import Kind, Record

DEMO_SEED = 20260103
UPLOAD_BATCH = 16  # small on purpose: a morning's log goes up in several batches
MORNING_S = 4 * 3600 + 1800  # 08:00 to 12:30
CLOSING_TAPS = 8  # taps after the block, at the very end of the morning
VOIDED_PAYMENTS = 2
READY_TIMEOUT_S = 30.0
ENDING_IN_DAYS = 20  # the last vendor's accreditation ends within the console's warning (30 days)
# Console accounts of the demo, created in development only: their passwords are public.
DEMO_ACCOUNTS = (
    ("admin", "admin@caisse.demo.seed", "demo-admin-2026"),
    ("coordinator", "coordination@caisse.demo.seed", "demo-coordination-2026"),
    ("treasurer", "tresorerie@caisse.demo.seed", "demo-tresorerie-2026"),
    ("committee", "comite@caisse.demo.seed", "demo-comite-2026"),
)
MAX_SYNC_PAGES = 64  # 512 cards a page: far more cards than any caisse has
CARD_BLOCKED = 1
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class DemoError(RuntimeError):
    """The backend answered the demo with something it did not expect."""


def terminal_key(seed: int, index: int) -> ec.EllipticCurvePrivateKey:
    """The software key of demo terminal `index`, derived from the seed (stable across runs)."""
    digest = hashlib.sha256(f"caisse demo {seed} terminal {index}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (P256_ORDER - 1) + 1, ec.SECP256R1())


class DemoTerminal:
    """A terminal's durable log: seq, hash chain and signatures, built with `caisse_common.protocol`.

    It keeps the interface small (pay, void, upload, sync) so the firmware's own payment logic
    can replace it when it runs under CPython.
    """

    def __init__(self, terminal_id: int, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.terminal_id = terminal_id
        self._key = private_key
        self._seq = 0
        self._prev_hash = protocol.ZERO_HASH
        self.unacked: list[Record] = []  # stored "in flash" until the backend acknowledges them
        self.acked_seq = 0
        self.cards_version = 0
        self.deny_list: set[bytes] = set()  # blocked UIDs, from the sync feed

    def pay(self, *, card_uid: bytes, amount_cents: int, time_s: int) -> Record:
        return self._append(kind=Kind.PAYMENT, card_uid=card_uid, amount_cents=amount_cents, time=time_s)

    def void(self, payment: Record, *, time_s: int) -> Record:
        assert payment.terminal_id == self.terminal_id and payment.kind == Kind.PAYMENT
        return self._append(kind=Kind.VOID, card_uid=payment.card_uid, amount_cents=payment.amount_cents,
                            ref_seq=payment.seq, time=time_s)

    def _append(self, **fields: Any) -> Record:
        self._seq += 1
        record = protocol.signed(
            Record(terminal_id=self.terminal_id, seq=self._seq, prev_hash=self._prev_hash, **fields), self._key
        )
        self._prev_hash = record.digest()
        self.unacked.append(record)
        return record

    def upload(self, client: httpx.Client, *, batch_size: int = UPLOAD_BATCH) -> list[dict[str, Any]]:
        """Send every unacknowledged record in seq order; return one result per record sent."""
        results: list[dict[str, Any]] = []
        while self.unacked:
            batch = self.unacked[:batch_size]
            body = {"records": [record_b64(r) for r in batch]}
            answer = expect(client.post(f"/v1/terminals/{self.terminal_id}/batches", json=body), 200)
            results.extend(answer["results"])
            self.acked_seq = answer["acked_seq"]
            remaining = [r for r in self.unacked if r.seq > self.acked_seq]
            if len(remaining) > len(self.unacked) - len(batch):
                raise DemoError(f"terminal {self.terminal_id}: batch not acknowledged: {answer}")
            self.unacked = remaining
        return results

    @property
    def public_key(self) -> bytes:
        return protocol.public_key_bytes(self._key)

    def sync(self, client: httpx.Client, *, now_s: int, version: int = 1) -> dict[str, Any]:
        """Signed sync request (docs/protocol.md#sync) in that format version; follows `more`
        until the card list is complete."""
        for _ in range(MAX_SYNC_PAGES):
            since = self.cards_version
            digest = protocol.sync_digest(self.terminal_id, now_s, since)
            headers = {"X-Caisse-Time": str(now_s), "X-Caisse-Signature": protocol.sign_digest(self._key, digest).hex()}
            params = {"since": since} | ({"v": version} if version > 1 else {})
            answer = expect(client.get(f"/v1/terminals/{self.terminal_id}/sync", params=params, headers=headers), 200)
            self.cards_version = answer["cards_version"]
            self._apply_cards(base64.b64decode(answer["cards"]), version)
            if not answer["more"]:
                return answer
        raise DemoError(f"terminal {self.terminal_id}: sync still had more after {MAX_SYNC_PAGES} pages")

    def _apply_cards(self, packed: bytes, version: int) -> None:
        for entry in unpack_cards(packed) if version == 1 else unpack_cards_v2(packed):
            if entry.status == CARD_BLOCKED:
                self.deny_list.add(entry.uid)
            else:
                self.deny_list.discard(entry.uid)


def record_b64(record: Record) -> str:
    return base64.b64encode(record.encode()).decode("ascii")


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise DemoError(f"{response.request.method} {response.request.url.path} -> "
                        f"{response.status_code} {response.text[:300]}")
    return response.json()


class AdminApi:
    """The admin endpoints the demo uses, over any httpx client (real socket or TestClient)."""

    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client = client
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        return expect(self.client.get(f"/v1/admin{path}", headers=self._headers), 200)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """201 for a creation, 200 for an action: any success will do, anything else raises."""
        response = self.client.post(f"/v1/admin{path}", json=body or {}, headers=self._headers)
        if response.is_success:
            return response.json()
        return expect(response, 201)


# ---- the simulated market morning ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Tap:
    offset_s: int  # seconds after the market opened
    vendor: int  # index into demo_data.VENDORS
    household: int  # index into the households list
    amount_cents: int
    voided: bool = False  # the vendor typed a wrong amount, voided it and keyed it again


def vendor_choices(household: DemoHousehold) -> list[int]:
    """Members shop mostly in their own neighbourhood: its market, and its shop."""
    return [i for i, v in enumerate(demo_data.VENDORS) if v.zone == household.zone]


def tap_amount_cents(rng: random.Random, vendor: DemoVendor) -> int:
    if vendor.market is not None:
        return rng.randrange(350, 2500, 10)
    return rng.randrange(800, 4500, 5)


def plan_morning(rng: random.Random, households: list[DemoHousehold]) -> list[Tap]:
    """Every tap of the morning, in time order. A few payments are voided and keyed again."""
    taps = []
    for h_index, household in enumerate(households):
        local = vendor_choices(household)
        for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 3, 4))):
            vendor = rng.choice(local) if rng.random() < 0.85 else rng.randrange(len(demo_data.VENDORS))
            amount = tap_amount_cents(rng, demo_data.VENDORS[vendor])
            taps.append(Tap(rng.randrange(0, MORNING_S - 600), vendor, h_index, amount))
    taps.sort(key=lambda t: (t.offset_s, t.vendor, t.household))
    for index in rng.sample(range(len(taps) // 2), VOIDED_PAYMENTS):
        taps[index] = Tap(taps[index].offset_s, taps[index].vendor, taps[index].household,
                          taps[index].amount_cents, voided=True)
    return taps


# ---- seeding through the admin API -----------------------------------------------------------

@dataclass
class SeedReport:
    vendors: int = 0
    households: int = 0
    cards: int = 0
    terminals: int = 0
    credited_cents: int = 0
    spent_cents: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    blocked_card: str = ""
    blocked_household: str = ""
    blocked_tap_status: str = ""
    household_ids: list[int] = field(default_factory=list)
    terminal_ids: list[int] = field(default_factory=list)
    signed_records: int = 0
    deny_listed_after_sync: bool = False  # every terminal learnt the blocked card at its last sync


def seed_demo(client: httpx.Client, *, admin_token: str, seed: int = DEMO_SEED) -> SeedReport | None:
    """Seed and replay the demo morning; return None when the database already holds vendors."""
    api = AdminApi(client, admin_token)
    if api.get("/vendors"):
        return None
    rng = random.Random(seed)
    report = SeedReport()
    households = demo_data.households(rng)
    vendor_ids = create_vendors(api, report)
    household_ids = create_households(api, households, report)
    terminals = register_terminals(api, vendor_ids, seed, report)
    replay_morning(api, terminals, households, household_ids, plan_morning(rng, households), report)
    return report


def create_vendors(api: AdminApi, report: SeedReport) -> list[int]:
    ids = []
    for vendor in demo_data.VENDORS:
        body = {"name": vendor.name, "kind": vendor.kind, "market": vendor.market, "zone": vendor.zone}
        if vendor.iban:
            body["iban"] = vendor.iban
        if vendor is demo_data.VENDORS[-1]:  # the home page shows an accreditation to renew
            body["convention_end"] = (date.today() + timedelta(days=ENDING_IN_DAYS)).isoformat()
        ids.append(api.post("/vendors", body)["id"])
    report.vendors = len(ids)
    return ids


def create_households(api: AdminApi, households: list[DemoHousehold], report: SeedReport) -> list[int]:
    ids = []
    for household in households:
        created = api.post("/households", {"name": household.name, "members": household.members,
                                           "zone": household.zone})
        api.post("/cards", {"household_id": created["id"], "uid": household.card_uid.hex()})
        api.post(f"/households/{created['id']}/credits",
                 {"amount_cents": household.allowance_cents, "memo": "Allocation mensuelle",
                  "reference": f"demo-allowance-{created['id']}"})
        report.credited_cents += household.allowance_cents
        ids.append(created["id"])
    report.households = report.cards = len(ids)
    report.household_ids = ids
    return ids


def register_terminals(api: AdminApi, vendor_ids: list[int], seed: int, report: SeedReport) -> list[DemoTerminal]:
    terminals = []
    for index, vendor_id in enumerate(vendor_ids):
        key = terminal_key(seed, index)
        created = api.post("/terminals", {"vendor_id": vendor_id,
                                          "public_key": protocol.public_key_bytes(key).hex()})
        terminals.append(DemoTerminal(created["id"], key))
    report.terminals = len(terminals)
    report.terminal_ids = [t.terminal_id for t in terminals]
    return terminals


def replay_morning(api: AdminApi, terminals: list[DemoTerminal], households: list[DemoHousehold],
                   household_ids: list[int], taps: list[Tap], report: SeedReport) -> None:
    """Sign the morning's taps on the terminals, upload, block a card, and finish the morning.

    The taps before the block are dated in the last hours; the block happens now (the backend
    dates it), and the closing taps are dated just after it. The terminals sync twice in between:
    the first sync brings the block, the second proves they hold it (docs/protocol.md, "Deny-list
    version"), so the blocked card's last tap is refused with `card_blocked`. From a terminal that
    had not synced it would be accepted and held for review instead: the vendor is not to blame.
    """
    now_s = int(time.time())
    for terminal in terminals:
        terminal.sync(api.client, now_s=now_s)  # opening the stall: clock, cards, budgets
    early, closing = taps[:-CLOSING_TAPS], taps[-CLOSING_TAPS:]
    for tap in early:
        sign_tap(terminals, households, tap, now_s - MORNING_S + tap.offset_s)
    upload_all(api.client, terminals, report)

    lost = early[0]  # this household reports its card lost; someone tries it once more
    blocked_uid = households[lost.household].card_uid
    api.post(f"/cards/{blocked_uid.hex()}/block")
    for terminal in terminals:
        terminal.sync(api.client, now_s=int(time.time()))
        terminal.sync(api.client, now_s=int(time.time()))
    report.blocked_card, report.blocked_household = blocked_uid.hex(), households[lost.household].name
    close_morning(api, terminals, households, [Tap(0, lost.vendor, lost.household, 1250)] + closing, report)
    report.deny_listed_after_sync = all(blocked_uid in t.deny_list for t in terminals)
    report.signed_records = sum(t.acked_seq for t in terminals)
    report.spent_cents = report.credited_cents - sum(
        api.get(f"/households/{h}")["balance_cents"] for h in household_ids)


def close_morning(api: AdminApi, terminals: list[DemoTerminal], households: list[DemoHousehold],
                  taps: list[Tap], report: SeedReport) -> None:
    """The taps after the block (the first one with the blocked card), then a sync per terminal."""
    after_block_s = int(time.time()) + 1
    records = [sign_tap(terminals, households, tap, after_block_s + i) for i, tap in enumerate(taps)]
    results = upload_all(api.client, terminals, report)
    blocked_tap = results[(records[0].terminal_id, records[0].seq)]
    report.blocked_tap_status = blocked_tap.get("reason") or blocked_tap["status"]
    for terminal in terminals:
        terminal.sync(api.client, now_s=int(time.time()))


def sign_tap(terminals: list[DemoTerminal], households: list[DemoHousehold], tap: Tap, time_s: int) -> Record:
    terminal, uid = terminals[tap.vendor], households[tap.household].card_uid
    payment = terminal.pay(card_uid=uid, amount_cents=tap.amount_cents, time_s=time_s)
    if tap.voided:
        terminal.void(payment, time_s=time_s + 45)
        corrected = tap.amount_cents - 100 if tap.amount_cents > 450 else tap.amount_cents + 100
        terminal.pay(card_uid=uid, amount_cents=corrected, time_s=time_s + 60)
    return payment


def upload_all(client: httpx.Client, terminals: list[DemoTerminal],
               report: SeedReport) -> dict[tuple[int, int], dict[str, Any]]:
    """Every terminal uploads its log; results by (terminal_id, seq), tallied in the report."""
    results = {}
    for terminal in terminals:
        for result in terminal.upload(client):
            report.statuses[result["status"]] += 1
            if result["status"] == "rejected":
                report.reasons[result["reason"]] += 1
            results[(terminal.terminal_id, result["seq"])] = result
    return results


# ---- serving ---------------------------------------------------------------------------------

def wait_until_ready(base_url: str, *, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll the OpenAPI document until the server answers, within a bounded deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"the server at {base_url} did not answer within {timeout_s:.0f} s")
        threading.Event().wait(0.1)


def ensure_demo_accounts(engine: Any) -> None:
    """One console account per role (DEMO_ACCOUNTS), unless it exists already."""
    from sqlalchemy import select
    from sqlmodel import col

    from caisse.db import session_factory
    from caisse.models import ConsoleUser
    from caisse.staff import accounts

    with session_factory(engine)() as session:
        existing = set(session.execute(select(col(ConsoleUser.email))).scalars())
        for role, email, password in DEMO_ACCOUNTS:
            if email not in existing:
                accounts.create_user(session, email=email, password=password, role=role)
        session.commit()


def format_report(report: SeedReport | None, base_url: str, admin_token: str, show_token: bool) -> str:
    from caisse.console.templating import LABELS, ROLE_LABELS

    refusal = LABELS["refusal"]  # the console's French names of the refusal codes
    lines = []
    if report is None:
        lines.append("Base déjà initialisée : la caisse de démonstration est servie telle quelle.")
    else:
        rejected = ", ".join(f"{refusal.get(reason, reason)} ×{n}" for reason, n in sorted(report.reasons.items()))
        status = report.blocked_tap_status
        next_tap = "accepté" if status == "accepted" else f"refusé, {refusal.get(status, status)}"
        lines += [
            "Caisse de démonstration prête :",
            f"  {report.vendors} points de vente, {report.households} foyers ({report.cards} cartes), "
            f"{report.terminals} terminaux",
            f"  allocations créditées : {euros(report.credited_cents, grouped=True)} €",
            f"  enregistrements acceptés : {report.statuses['accepted']}, rejetés : "
            f"{report.statuses['rejected']}" + (f" ({rejected})" if rejected else ""),
            f"  total dépensé : {euros(report.spent_cents, grouped=True)} €",
            f"  carte bloquée en cours de marché : {report.blocked_card} ({report.blocked_household}), "
            f"passage suivant : {next_tap} ({status})",
        ]
    lines.append(f"API : {base_url}/docs")
    lines.append(f"Console : {base_url}/console")
    if show_token:
        lines.append(f"Jeton d'administration (développement) : Authorization: Bearer {admin_token}")
        lines.append("Comptes de la console (développement) :")
        lines += [f"  {ROLE_LABELS[role]:<15} {email} / {password}" for role, email, password in DEMO_ACCOUNTS]
    lines.append("Ctrl-C pour arrêter.")
    return "\n".join(lines)


def run(*, host: str, port: int) -> None:
    """Serve the app on host:port; seed it from a background thread once it answers."""
    import uvicorn

    from caisse.config import Settings
    from caisse.db import make_engine, upgrade
    from caisse.main import create_app

    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)  # an empty database gets its schema; an up-to-date one is left as it is
    if settings.environment == "development":
        ensure_demo_accounts(engine)
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base_url = f"http://{client_host}:{port}"

    failures: list[Exception] = []

    def seed_when_ready() -> None:
        try:
            wait_until_ready(base_url)
            with httpx.Client(base_url=base_url, timeout=30.0) as client:
                report = seed_demo(client, admin_token=settings.admin_token)
            show_token = settings.environment == "development"
            print(format_report(report, base_url, settings.admin_token, show_token), flush=True)
        except Exception as error:  # the demo stops rather than serving half a caisse silently
            print(f"La démonstration a échoué : {error}", file=sys.stderr, flush=True)
            failures.append(error)
            server.should_exit = True

    threading.Thread(target=seed_when_ready, name="caisse-demo-seed", daemon=True).start()
    server.run()
    if failures:
        raise SystemExit(1)
