"""Double-entry ledger (docs/ledger.md). Nothing here commits: the caller owns the transaction.

Balances change only through atomic SQL deltas (`SET x = x + :delta`), never read-modify-write,
so concurrent transactions touching one account cannot overwrite each other. Rows are updated
in ascending account id order, so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from caisse.db import bind_value, insert_tuples, is_postgresql, table_of
from caisse.errors import InvalidInput
from caisse.models import LedgerAccount, LedgerTransfer, utcnow


class Account(enum.StrEnum):
    """The codes of the caisse's own accounts, one of each. A household's or a vendor's accounts
    have codes built from its id (member_code, vendor_payable_code, vendor_held_code)."""
    ALLOWANCE_FUND = "allowance_fund"
    VENDOR_PAID = "vendor_paid"  # bank clearing: what left the caisse's bank account for vendors
    # The caisse's own money (caisse.fund.service):
    FUND = "fund"
    INCOME_CONTRIBUTIONS = "income:contributions"
    INCOME_MATCHING = "income:matching"
    INCOME_GRANTS = "income:grants"
    EXPENSE_FEES = "expense:fees"


class AccountKind(enum.StrEnum):
    """ledger_account.kind: the part of the code before its first ':' (member:12 -> member)."""
    ALLOWANCE_FUND = "allowance_fund"
    VENDOR_PAID = "vendor_paid"
    MEMBER = "member"
    VENDOR_PAYABLE = "vendor_payable"
    VENDOR_HELD = "vendor_held"  # where a held record's money waits (caisse.ingest.review)
    # The caisse's own money (caisse.fund.service): fund, income:contributions|matching|grants, expense:fees
    FUND = "fund"
    INCOME = "income"
    EXPENSE = "expense"

_account = table_of(LedgerAccount)
_transfer = table_of(LedgerTransfer)


class TransferKind(enum.StrEnum):
    """ledger_transfer.kind."""
    ALLOWANCE = "allowance"
    PAYMENT = "payment"
    VOID = "void"
    EXPIRY = "allowance_expiry"  # unspent allowance returned to the fund (docs/settlement.md)
    SETTLEMENT = "settlement"  # vendor_payable -> vendor_paid when a SEPA file is exported
    # Holds and decisions (caisse.ingest.review, docs/ledger.md "Holds and review"):
    HOLD = "hold"  # vendor_payable -> vendor_held: a record held after its money reached the payable
    RELEASE = "review_release"  # vendor_held -> vendor_payable (a payment) or -> member (a void)
    REJECT = "review_reject"  # vendor_held -> member (a payment) or -> vendor_payable (a void)
    REVERSAL = "reversal"  # a staff entry made by mistake, taken back (caisse.ledger.corrections)
    BANK_RETURN = "bank_return"  # vendor_paid -> vendor_payable: a transfer the bank gave back (caisse.settlement.bank_returns)
    # A departed household's balance (caisse.members.service): member -> allowance_fund once the terminals'
    # offline age has passed, and back (allowance_fund -> member) for a record signed before leaving.
    DEPARTURE = "departure"
    DEPARTURE_COVER = "departure_cover"
    # The caisse's income and expenses (caisse.fund.service), each keyed by its reference:
    CONTRIBUTION = "contribution"  # income:contributions -> fund
    MATCHING = "matching"  # income:matching -> fund
    GRANT = "grant"  # income:grants -> fund
    FEE = "fee"  # fund -> expense:fees


def account_kind(code: str) -> AccountKind:
    return AccountKind(code.split(":", 1)[0])


def member_code(household_id: int) -> str:
    return f"member:{household_id}"


def vendor_payable_code(vendor_id: int) -> str:
    return f"vendor_payable:{vendor_id}"


def vendor_held_code(vendor_id: int) -> str:
    """Where a vendor's held records' money waits for a person's decision."""
    return f"vendor_held:{vendor_id}"


def record_reference(terminal_id: int, seq: int) -> str:
    return f"record:{terminal_id}:{seq}"


# The review's transfers (caisse.ingest.review): at most one of each per record, the reference being
# unique. System references, like `record:`: nothing a person or a terminal types may take them.
def hold_reference(terminal_id: int, seq: int) -> str:
    return f"hold:{terminal_id}:{seq}"


def release_reference(terminal_id: int, seq: int) -> str:
    return f"release:{terminal_id}:{seq}"


def reject_reference(terminal_id: int, seq: int) -> str:
    return f"reject:{terminal_id}:{seq}"


def reversal_reference(transfer_id: int) -> str:
    """The reversal of transfer `transfer_id` (caisse.ledger.corrections): at most once per transfer."""
    return f"reversal:{transfer_id}"


def return_reference(payment_id: str) -> str:
    """A transfer the bank rejected or returned (caisse.settlement.bank_returns): at most once per payment."""
    return f"return:{payment_id}"


USER_KEY_MAX_CHARS = 100  # the longest namespace ("contribution:", "grant:YYYY-MM:") + 100 fits the column's 128


def user_reference(namespace: str, key: str) -> str:
    """The reference of a posting keyed by a person (a receipt number, a grant's file number):
    `{namespace}:{key}`, where the namespace is the kind's own (`credit`, `contribution`,
    `grant:{month}`, `fee:{month}`). Every reference the code builds for itself starts with a
    fixed prefix of its own and goes on with ':'-separated parts; a person's key holds no ':' and
    stays behind its namespace, so no key typed anywhere can take a reference the code will need
    (docs/ledger.md, "References")."""
    if not (0 < len(key) <= USER_KEY_MAX_CHARS and key.isprintable() and ":" not in key):
        raise InvalidInput("invalid_reference",
                           f"a reference is 1 to {USER_KEY_MAX_CHARS} printable characters without ':'")
    return f"{namespace}:{key}"


@dataclass(frozen=True, slots=True)
class Transfer:
    debit_account_id: int
    credit_account_id: int
    amount_cents: int
    kind: str
    reference: str
    memo: str | None = None

    def __post_init__(self) -> None:
        assert self.amount_cents > 0, "a transfer moves a positive amount"
        assert self.debit_account_id != self.credit_account_id, "a transfer joins two accounts"


def ensure_account(session: Session, *, code: str, kind: AccountKind) -> int:
    """Id of the account with this code, creating it if needed (safe against a concurrent create)."""
    found = session.execute(select(_account.c.id).where(_account.c.code == code)).scalar_one_or_none()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.execute(insert(_account).values(code=code, kind=kind, created_at=utcnow()))
    except IntegrityError:
        pass  # created by a concurrent transaction: read it below
    return session.execute(select(_account.c.id).where(_account.c.code == code)).scalar_one()


def account_ids(session: Session, *, codes: Iterable[str]) -> dict[str, int]:
    codes = list(set(codes))
    if not codes:
        return {}
    if is_postgresql(session):
        rows = session.execute(
            text("SELECT code, id FROM ledger_account WHERE code = ANY(CAST(:codes AS text[]))"), {"codes": codes}
        )
    else:  # the driver directly: SQLAlchemy's per-value handling of a long IN list costs more than the query
        rows = session.connection().exec_driver_sql(
            f"SELECT code, id FROM ledger_account WHERE code IN ({', '.join('?' * len(codes))})", tuple(codes)
        )
    return {code: account_id for code, account_id in rows}


def post_transfers(session: Session, *, transfers: Sequence[Transfer]) -> None:
    """Insert the transfers and apply their deltas, aggregated per account.

    Raises IntegrityError if a reference was already posted (the caller's transaction then rolls back).
    """
    post_transfer_rows(
        session, rows=[(t.debit_account_id, t.credit_account_id, t.amount_cents, t.kind, t.reference, t.memo) for t in transfers]
    )


_TRANSFER_COLUMNS = ("debit_account_id", "credit_account_id", "amount_cents", "kind", "reference", "memo", "created_at")


def post_transfer_rows(session: Session, *, rows: Sequence[tuple[int, int, int, str, str, str | None]]) -> None:
    """post_transfers for (debit id, credit id, amount_cents, kind, reference, memo) tuples: the
    ingestion hot path builds these directly. The database checks what Transfer asserts (a
    positive amount, two distinct accounts)."""
    if not rows:
        return
    debits: dict[int, int] = defaultdict(int)
    credits: dict[int, int] = defaultdict(int)
    for debit, credit, amount, *_ in rows:
        debits[debit] += amount
        credits[credit] += amount
    now = bind_value(session, _transfer.c.created_at, utcnow())
    touched = sorted(debits.keys() | credits.keys())
    # Lock the accounts first, in ascending id order: one global order, so batches touching the
    # same accounts queue instead of deadlocking. FOR NO KEY UPDATE, not FOR UPDATE: the latter
    # would also wait on the KEY SHARE locks other transactions' foreign key checks hold.
    if is_postgresql(session):  # ids as one text parameter: psycopg dumps a list in Python, element by element
        locked = session.execute(
            text(
                "SELECT id FROM ledger_account WHERE id = ANY(CAST(string_to_array(:ids, ',') AS integer[]))"
                " ORDER BY id FOR NO KEY UPDATE"
            ),
            {"ids": ",".join(map(str, touched))},
        ).all()
    else:  # one writer at a time (BEGIN IMMEDIATE): nothing to lock, only check they exist
        locked = session.connection().exec_driver_sql(
            f"SELECT id FROM ledger_account WHERE id IN ({', '.join('?' * len(touched))})", tuple(touched)
        ).all()
    assert len(locked) == len(touched), "every account of a transfer exists"
    insert_tuples(session, _transfer, _TRANSFER_COLUMNS, [(*row, now) for row in rows])
    # Then the deltas are applied in SQL, never as a read-modify-write of a balance: one UPDATE
    # joined to the arrays of deltas on PostgreSQL, one executemany in the driver on SQLite.
    if is_postgresql(session):
        session.execute(
            text(
                "UPDATE ledger_account AS a"
                " SET debits_posted_cents = a.debits_posted_cents + d.debit,"
                " credits_posted_cents = a.credits_posted_cents + d.credit"
                " FROM unnest(CAST(string_to_array(:ids, ',') AS integer[]), CAST(string_to_array(:debits, ',') AS bigint[]),"
                " CAST(string_to_array(:credits, ',') AS bigint[])) AS d(id, debit, credit) WHERE a.id = d.id"
            ),
            {"ids": ",".join(map(str, touched)), "debits": ",".join(str(debits.get(a, 0)) for a in touched),
             "credits": ",".join(str(credits.get(a, 0)) for a in touched)},
        )
        return
    session.connection().exec_driver_sql(
        "UPDATE ledger_account SET debits_posted_cents = debits_posted_cents + ?,"
        " credits_posted_cents = credits_posted_cents + ? WHERE id = ?",
        [(debits.get(a, 0), credits.get(a, 0), a) for a in touched],
    )


def post_transfer(
    session: Session,
    *,
    debit: int,
    credit: int,
    amount_cents: int,
    kind: TransferKind,
    reference: str,
    memo: str | None = None,
) -> None:
    """Post one transfer from account id `debit` to account id `credit`."""
    post_transfers(
        session,
        transfers=[Transfer(debit_account_id=debit, credit_account_id=credit, amount_cents=amount_cents,
                            kind=kind, reference=reference, memo=memo)],
    )


def find_transfer(session: Session, *, reference: str) -> LedgerTransfer | None:
    return session.execute(select(LedgerTransfer).where(col(LedgerTransfer.reference) == reference)).scalar_one_or_none()


def balance_cents(session: Session, *, code: str) -> int:
    row = session.execute(
        select(_account.c.credits_posted_cents - _account.c.debits_posted_cents).where(_account.c.code == code)
    ).scalar_one_or_none()
    return int(row or 0)


def balances_by_code(session: Session, *, codes: Iterable[str]) -> dict[str, int]:
    codes = list(set(codes))
    if not codes:
        return {}
    rows = session.execute(
        select(_account.c.code, _account.c.credits_posted_cents - _account.c.debits_posted_cents).where(
            _account.c.code.in_(codes)
        )
    )
    return {code: int(balance) for code, balance in rows}


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    accounts: int
    transfers: int
    debits_posted_cents: int
    credits_posted_cents: int
    transfers_amount_cents: int

    @property
    def balance_sum_cents(self) -> int:
        return self.credits_posted_cents - self.debits_posted_cents


def summary(session: Session) -> LedgerSummary:
    accounts, debits, credits = session.execute(
        select(
            func.count(_account.c.id),
            func.coalesce(func.sum(_account.c.debits_posted_cents), 0),
            func.coalesce(func.sum(_account.c.credits_posted_cents), 0),
        )
    ).one()
    transfers, amount = session.execute(
        select(func.count(_transfer.c.id), func.coalesce(func.sum(_transfer.c.amount_cents), 0))
    ).one()
    return LedgerSummary(
        accounts=int(accounts),
        transfers=int(transfers),
        debits_posted_cents=int(debits),
        credits_posted_cents=int(credits),
        transfers_amount_cents=int(amount),
    )
