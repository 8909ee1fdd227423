"""Test factories: registry rows through the real services, and signed record chains."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.members import households as household_service
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from caisse_common.protocol import Kind, Record

T0 = 1_767_254_400  # 2026-01-01T08:00:00Z
_key_numbers = itertools.count(1000)
_uid_numbers = itertools.count(1)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(next(_key_numbers) * 7919 + 12345, ec.SECP256R1())


def new_uid() -> bytes:
    return b"\x04" + next(_uid_numbers).to_bytes(6, "big")


@dataclass
class Chain:
    """A terminal's record log: each new record chains to the previous one, as the firmware does."""

    terminal_id: int
    key: ec.EllipticCurvePrivateKey
    records: list[Record] = field(default_factory=list)

    def _append(self, **fields: object) -> bytes:
        seq = len(self.records) + 1
        prev = self.records[-1].digest() if self.records else protocol.ZERO_HASH
        fields.setdefault("time", T0 + 60 * seq)
        record = protocol.signed(Record(terminal_id=self.terminal_id, seq=seq, prev_hash=prev, **fields), self.key)  # type: ignore[arg-type]
        self.records.append(record)
        return record.encode()

    def pay(self, uid: bytes, amount_cents: int, **fields: object) -> bytes:
        return self._append(kind=Kind.PAYMENT, card_uid=uid, amount_cents=amount_cents, **fields)

    def void(self, ref_seq: int, **fields: object) -> bytes:
        payment = self.records[ref_seq - 1]
        fields.setdefault("card_uid", payment.card_uid)
        fields.setdefault("amount_cents", payment.amount_cents)
        return self._append(kind=Kind.VOID, ref_seq=ref_seq, **fields)

    def raw(self, seq: int) -> bytes:
        return self.records[seq - 1].encode()


@dataclass
class World:
    """One vendor with a terminal, one household with a card and a balance."""

    vendor_id: int
    household_id: int
    uid: bytes
    chain: Chain

    @property
    def terminal_id(self) -> int:
        return self.chain.terminal_id


def make_world(session: Session, *, balance_cents: int = 100_000) -> World:
    vendor = vendor_service.create_vendor(session, name="Ferme des Lilas", kind="producer", market="Marché Jaurès", zone="Nord")
    household = household_service.create_household(session, name="Famille Diallo", members=4, zone="Nord")
    assert vendor.id is not None and household.id is not None
    uid = new_uid()
    card_service.issue_card(session, household_id=household.id, uid_hex=uid.hex())
    if balance_cents:
        household_service.credit_household(session, household_id=household.id, amount_cents=balance_cents)
    key = new_key()
    terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id, public_key_hex=protocol.public_key_bytes(key).hex())
    assert terminal.id is not None
    session.commit()
    return World(vendor_id=vendor.id, household_id=household.id, uid=uid, chain=Chain(terminal.id, key))


STAFF_EMAIL = "claire@caisse.test"


def staff_in_database(url: str, *emails: str, active: bool = True) -> None:
    """Active (or disabled) console accounts in the database at `url`, migrated first: what a
    command's `--by` names. No password: these accounts are named, never signed in with."""
    from caisse.db import make_engine, session_factory, upgrade
    from caisse.models import ConsoleUser, Role

    engine = make_engine(url)
    try:
        upgrade(engine)
        with session_factory(engine)() as session:
            session.add_all(ConsoleUser(email=email, role=Role.TREASURER, password_hash="!", active=active) for email in emails)
            session.commit()
    finally:
        engine.dispose()


def staff_account(session: Session, email: str) -> str:
    """An active coordinator account, named as who acts, never signed in with (no password)."""
    from caisse.models import ConsoleUser, Role

    session.add(ConsoleUser(email=email, role=Role.COORDINATOR, password_hash="!"))
    session.flush()
    return email
