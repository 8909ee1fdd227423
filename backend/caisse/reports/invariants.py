"""The ledger's invariants (docs/ledger.md, "Invariants"), checked against the database.

One module for every checker: the tests' auditor (tests/backend/audit.py), the simulation's
auditor (caisse.simulation.auditor) and `caisse verify` on the live database call these
functions. Each takes a session, reads (never writes), and returns the violations it found as
French sentences with the amounts, for the treasurer who reads `caisse verify`; an empty list
means the invariant holds. The checks are set-based SQL, so they run on a full-size database.

On PostgreSQL call them inside one REPEATABLE READ transaction (`caisse verify` does): each
check compares several queries, which must all see the same snapshot while terminals upload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from caisse.ingest.review import VOID_REFUNDED_SQL
from caisse.ledger import postings as ledger
from caisse.ledger.corrections import REVERSIBLE
from caisse.models import RecordStatus, SettlementStatus
from caisse.money import euros
from caisse.settlement.runs import payable_differences
from caisse_common import protocol

# Messages kept per check: a corrupt database could break an invariant a million times.
MAX_VIOLATIONS = 50

# Every kind of transfer, and the accounts it may join: (debit, credit), an account named by its
# code, or by its code's prefix for the per-household and per-vendor accounts. A transfer of a
# kind not listed here is a violation: a new kind of posting must say where its money goes.
# A reversal (caisse.ledger.corrections) mirrors the entry it takes back: reversals_mirror_their_entry.
MEMBER, VENDOR_PAYABLE, VENDOR_HELD = "member:", "vendor_payable:", "vendor_held:"
TRANSFER_ACCOUNTS: dict[str, frozenset[tuple[str, str]]] = {
    ledger.TransferKind.ALLOWANCE: frozenset({(ledger.Account.ALLOWANCE_FUND, MEMBER)}),
    ledger.TransferKind.EXPIRY: frozenset({(MEMBER, ledger.Account.ALLOWANCE_FUND)}),
    # Held as it arrives: a payment to the held account, a void held on its own from the payable to it.
    ledger.TransferKind.PAYMENT: frozenset({(MEMBER, VENDOR_PAYABLE), (MEMBER, VENDOR_HELD)}),
    ledger.TransferKind.VOID: frozenset({(VENDOR_PAYABLE, MEMBER), (VENDOR_HELD, MEMBER), (VENDOR_PAYABLE, VENDOR_HELD)}),
    # Held later; a void held before migration 0012 (its refund taken back from the member).
    ledger.TransferKind.HOLD: frozenset({(VENDOR_PAYABLE, VENDOR_HELD), (MEMBER, VENDOR_HELD)}),
    ledger.TransferKind.RELEASE: frozenset({(VENDOR_HELD, VENDOR_PAYABLE), (VENDOR_HELD, MEMBER)}),
    ledger.TransferKind.REJECT: frozenset({(VENDOR_HELD, MEMBER), (VENDOR_HELD, VENDOR_PAYABLE)}),
    ledger.TransferKind.SETTLEMENT: frozenset({(VENDOR_PAYABLE, ledger.Account.VENDOR_PAID)}),
    ledger.TransferKind.BANK_RETURN: frozenset({(ledger.Account.VENDOR_PAID, VENDOR_PAYABLE)}),
    ledger.TransferKind.DEPARTURE: frozenset({(MEMBER, ledger.Account.ALLOWANCE_FUND)}),
    ledger.TransferKind.DEPARTURE_COVER: frozenset({(ledger.Account.ALLOWANCE_FUND, MEMBER)}),
    ledger.TransferKind.CONTRIBUTION: frozenset({(ledger.Account.INCOME_CONTRIBUTIONS, ledger.Account.FUND)}),
    ledger.TransferKind.MATCHING: frozenset({(ledger.Account.INCOME_MATCHING, ledger.Account.FUND)}),
    ledger.TransferKind.GRANT: frozenset({(ledger.Account.INCOME_GRANTS, ledger.Account.FUND)}),
    ledger.TransferKind.FEE: frozenset({(ledger.Account.FUND, ledger.Account.EXPENSE_FEES)}),
}

_RECORD_REFERENCE = "'record:' || CAST(r.terminal_id AS VARCHAR(20)) || ':' || CAST(r.seq AS VARCHAR(20))"
_REJECT_REFERENCE = "'reject:' || CAST(r.terminal_id AS VARCHAR(20)) || ':' || CAST(r.seq AS VARCHAR(20))"


def _capped(found: list[str], total: int | None = None) -> list[str]:
    total = len(found) if total is None else total
    if total <= MAX_VIOLATIONS:
        return found
    return [*found[:MAX_VIOLATIONS], f"… et {total - MAX_VIOLATIONS} autre(s)"]


def _rows(session: Session, sql: str, **params: Any) -> Sequence[Any]:
    return session.execute(text(sql), params).all()


def _scalar(session: Session, sql: str, **params: Any) -> int:
    return int(session.execute(text(sql), params).scalar_one() or 0)


# 1. Every transfer balances --------------------------------------------------------------------

def transfers_balance(session: Session) -> list[str]:
    """Each transfer moves a positive amount between two accounts, so Σ debits = Σ credits =
    Σ transfer amounts."""
    found = []
    bad = _rows(session, "SELECT reference, amount_cents FROM ledger_transfer"
                         " WHERE amount_cents <= 0 OR debit_account_id = credit_account_id ORDER BY id")
    found += [f"l'écriture {reference} ({euros(amount)} €) ne va pas d'un compte à un autre pour un montant positif"
              for reference, amount in bad]
    debits, credits = _rows(session, "SELECT COALESCE(SUM(debits_posted_cents), 0),"
                                     " COALESCE(SUM(credits_posted_cents), 0) FROM ledger_account")[0]
    total = _scalar(session, "SELECT COALESCE(SUM(amount_cents), 0) FROM ledger_transfer")
    if int(debits) != total:
        found.append(f"total des débits des comptes {euros(int(debits))} €, total des écritures {euros(total)} €")
    if int(credits) != total:
        found.append(f"total des crédits des comptes {euros(int(credits))} €, total des écritures {euros(total)} €")
    return _capped(found)


# 2. The sum of all balances is zero ------------------------------------------------------------

def balances_sum_to_zero(session: Session) -> list[str]:
    total = ledger.summary(session).balance_sum_cents
    return [] if total == 0 else [f"la somme des soldes vaut {euros(total)} € au lieu de 0,00 €"]


# 3. A reference is posted at most once ---------------------------------------------------------

def references_unique(session: Session) -> list[str]:
    twice = _rows(session, "SELECT reference, COUNT(*) FROM ledger_transfer GROUP BY reference HAVING COUNT(*) > 1"
                           " ORDER BY reference")
    return _capped([f"la référence {reference} est passée {count} fois" for reference, count in twice])


# 4. Balances equal the sum of transfers --------------------------------------------------------

def balances_match_journal(session: Session) -> list[str]:
    debits = dict(_rows(session, "SELECT debit_account_id, SUM(amount_cents) FROM ledger_transfer GROUP BY debit_account_id"))
    credits = dict(_rows(session, "SELECT credit_account_id, SUM(amount_cents) FROM ledger_transfer GROUP BY credit_account_id"))
    found = []
    for account_id, code, debited, credited in _rows(
            session, "SELECT id, code, debits_posted_cents, credits_posted_cents FROM ledger_account ORDER BY code"):
        journal_debits, journal_credits = int(debits.pop(account_id, 0)), int(credits.pop(account_id, 0))
        if (int(debited), int(credited)) != (journal_debits, journal_credits):
            found.append(f"compte {code} : débits {euros(int(debited))} €, crédits {euros(int(credited))} € ;"
                         f" selon les écritures : débits {euros(journal_debits)} €, crédits {euros(journal_credits)} €")
    for account_id in sorted(debits.keys() | credits.keys()):
        found.append(f"des écritures visent le compte {account_id}, qui n'existe pas")
    return _capped(found)


# 5. Accepted records and transfers match one to one --------------------------------------------

def records_match_transfers(session: Session) -> list[str]:
    """Every accepted record has one transfer `record:{terminal}:{seq}` of its amount, between the
    household's and the vendor's accounts (a void: those of its payment); a rejected record has
    none; no payment or void transfer exists without its accepted record."""
    found = []
    member = "'member:' || CAST(CASE WHEN r.kind = 1 THEN r.household_id ELSE p.household_id END AS VARCHAR(20))"
    payable, held = ("'vendor_payable:' || CAST(tm.vendor_id AS VARCHAR(20))", "'vendor_held:' || CAST(tm.vendor_id AS VARCHAR(20))")
    # A payment from its household to its vendor (held as it arrived: to the vendor's held account);
    # a void back to its payment's household, or from the payable to the held account (held on its own).
    right_accounts = (f"(r.kind = 1 AND d.code = {member} AND c.code IN ({payable}, {held}))"
                      f" OR (r.kind = 2 AND ((d.code IN ({payable}, {held}) AND c.code = {member})"
                      f" OR (d.code = {payable} AND c.code = {held})))")
    rows = _rows(session, f"""
        SELECT r.terminal_id, r.seq, r.kind, r.status, r.amount_cents, t.amount_cents, t.kind, d.code, c.code,
               COALESCE({member}, '')
        FROM transaction_record r
        JOIN terminal tm ON tm.id = r.terminal_id
        LEFT JOIN transaction_record p ON r.kind = 2 AND p.terminal_id = r.terminal_id AND p.seq = r.ref_seq
        LEFT JOIN ledger_transfer t ON t.reference = {_RECORD_REFERENCE}
        LEFT JOIN ledger_account d ON d.id = t.debit_account_id
        LEFT JOIN ledger_account c ON c.id = t.credit_account_id
        WHERE (r.status = 'accepted' AND (t.id IS NULL OR t.amount_cents <> r.amount_cents
                 OR t.kind <> CASE WHEN r.kind = 1 THEN 'payment' ELSE 'void' END
                 OR NOT COALESCE({right_accounts}, FALSE)))
           OR (r.status <> 'accepted' AND t.id IS NOT NULL)
        ORDER BY r.terminal_id, r.seq""")
    for terminal_id, seq, kind, status, amount, posted, posted_kind, debit, credit, household in rows:
        nature = "paiement" if kind == protocol.Kind.PAYMENT else "annulation"
        what = f"l'enregistrement {seq} du terminal {terminal_id} ({nature} de {euros(amount)} €)"
        if status != RecordStatus.ACCEPTED:
            found.append(f"{what} est refusé mais a une écriture de {euros(posted)} €")
        elif posted is None:
            found.append(f"{what} est accepté mais n'a pas d'écriture au grand livre")
        elif posted != amount:
            found.append(f"{what} est passé au grand livre pour {euros(posted)} €")
        elif not household:
            found.append(f"{what} est accepté sans foyer connu" + (" (son paiement manque)" if kind == protocol.Kind.VOID else ""))
        else:
            found.append(f"{what} est passé comme « {posted_kind} » de {debit} vers {credit} : ni le compte de son foyer"
                         f" ({household}) ni celui de son commerçant")
    accepted = _scalar(session, "SELECT COUNT(*) FROM transaction_record WHERE status = 'accepted'")
    posted = _scalar(session, "SELECT COUNT(*) FROM ledger_transfer WHERE kind IN ('payment', 'void')"
                              " OR substr(reference, 1, 7) = 'record:'")
    if posted != accepted:  # named one by one only then: the references of every accepted record
        known = {f"record:{t}:{s}" for t, s in _rows(
            session, "SELECT terminal_id, seq FROM transaction_record WHERE status = 'accepted'")}
        extra = [(reference, kind, amount) for reference, kind, amount in _rows(
            session, "SELECT reference, kind, amount_cents FROM ledger_transfer WHERE kind IN ('payment', 'void')"
                     " OR substr(reference, 1, 7) = 'record:' ORDER BY id")
                 if reference not in known or kind not in ("payment", "void")]
        found += [f"l'écriture {reference} (« {kind} », {euros(amount)} €) n'a pas d'enregistrement accepté"
                  for reference, kind, amount in extra]
    return _capped(found)


# 6. Money is conserved per purpose -------------------------------------------------------------

def transfers_join_the_right_accounts(session: Session) -> list[str]:
    """Each kind of transfer goes from the account it must to the one it must (TRANSFER_ACCOUNTS),
    so adding transfers by kind gives what each account group holds."""
    role = ("CASE WHEN substr({0}.code, 1, 7) = 'member:' THEN 'member:'"
            " WHEN substr({0}.code, 1, 15) = 'vendor_payable:' THEN 'vendor_payable:'"
            " WHEN substr({0}.code, 1, 12) = 'vendor_held:' THEN 'vendor_held:' ELSE {0}.code END")
    rows = _rows(session, f"SELECT t.kind, {role.format('d')} AS debit, {role.format('c')} AS credit, COUNT(*),"
                          " SUM(t.amount_cents), MIN(t.reference) FROM ledger_transfer t"
                          " JOIN ledger_account d ON d.id = t.debit_account_id JOIN ledger_account c ON c.id = t.credit_account_id"
                          " GROUP BY t.kind, debit, credit ORDER BY t.kind, debit, credit")
    found = []
    for kind, debit, credit, count, amount, example in rows:
        expected = TRANSFER_ACCOUNTS.get(kind)
        if kind == ledger.TransferKind.REVERSAL:
            continue
        if expected is None:
            found.append(f"{count} écriture(s) de nature inconnue « {kind} » ({euros(int(amount))} €, par exemple {example})")
        elif (debit, credit) not in expected:
            allowed = " ou ".join(f"de {d}… vers {c}…" for d, c in sorted(expected))
            found.append(f"{count} écriture(s) « {kind} » de {debit} vers {credit} ({euros(int(amount))} €, par exemple"
                         f" {example}) : elles vont {allowed}")
    return _capped(found)


def money_per_purpose(session: Session) -> list[str]:
    """What households spent = accepted payments − those a reviewer rejected (given back) − voids
    that refunded (docs/ledger.md, "Holds and review"); Σ vendor payables, held and paid out =
    that spending; Σ member balances = allowances (monthly and manual) − those reversed −
    expiries − that spending."""
    by_kind = {kind: int(cents) for kind, cents in _rows(
        session, "SELECT kind, SUM(amount_cents) FROM ledger_transfer GROUP BY kind")}
    payments, rejected = _rows(session, "SELECT COALESCE(SUM(amount_cents), 0),"
                                        " COALESCE(SUM(CASE WHEN review = 'rejected' THEN amount_cents ELSE 0 END), 0)"
                                        " FROM transaction_record WHERE status = 'accepted' AND kind = 1")[0]
    refunded = _scalar(session, f"SELECT COALESCE(SUM(CASE WHEN {VOID_REFUNDED_SQL} THEN r.amount_cents ELSE 0 END), 0)"
                                " FROM transaction_record r LEFT JOIN transaction_record p"
                                " ON p.terminal_id = r.terminal_id AND p.seq = r.ref_seq WHERE r.status = 'accepted' AND r.kind = 2")
    balances = {prefix: int(cents) for prefix, cents in _rows(session, """
        SELECT CASE WHEN substr(code, 1, 7) = 'member:' THEN 'member'
                    WHEN substr(code, 1, 15) = 'vendor_payable:' OR substr(code, 1, 12) = 'vendor_held:' THEN 'vendor_payable'
                    ELSE code END AS purpose,
               SUM(credits_posted_cents - debits_posted_cents) FROM ledger_account GROUP BY purpose""")}
    spent = int(payments) - int(rejected) - refunded
    taken_back = _scalar(session, "SELECT COALESCE(SUM(t.amount_cents), 0) FROM ledger_transfer t"
                                  " JOIN ledger_account d ON d.id = t.debit_account_id"
                                  " WHERE t.kind = :kind AND substr(d.code, 1, 7) = 'member:'", kind=ledger.TransferKind.REVERSAL)
    vendors = balances.get("vendor_payable", 0) + balances.get(ledger.Account.VENDOR_PAID, 0)
    members = balances.get("member", 0)
    departed = by_kind.get(ledger.TransferKind.DEPARTURE, 0) - by_kind.get(ledger.TransferKind.DEPARTURE_COVER, 0)
    granted = by_kind.get(ledger.TransferKind.ALLOWANCE, 0) - taken_back - by_kind.get(ledger.TransferKind.EXPIRY, 0) - departed
    found = []
    if vendors != spent:
        found.append(f"commerçants (à payer, retenus et payés) : {euros(vendors)} € ; paiements acceptés {euros(int(payments))} €"
                     f" − rejetés {euros(int(rejected))} € − annulations remboursées {euros(refunded)} € = {euros(spent)} €")
    if members != granted - spent:
        found.append(f"soldes des foyers : {euros(members)} € ; allocations {euros(by_kind.get(ledger.TransferKind.ALLOWANCE, 0))} €"
                     f" − contre-passées {euros(taken_back)} € − reliquats rendus {euros(by_kind.get(ledger.TransferKind.EXPIRY, 0))} €"
                     f" − soldes rendus au départ {euros(departed)} €"
                     f" − dépenses {euros(spent)} € = {euros(granted - spent)} €")
    return found


def review_rejections(session: Session) -> list[str]:
    """A record a reviewer rejected is never settled. A rejected payment is marked voided and given
    back to its household exactly once, for its amount: by its rejection (`reject:{t}:{s}`,
    vendor_held -> member), or by a void of it (posted to the household, or released to it). A
    `reject:` transfer names a record a reviewer rejected."""
    found = []
    settled = _rows(session, "SELECT r.terminal_id, r.seq, r.amount_cents FROM transaction_record r"
                             " JOIN settlement_item i ON i.record_id = r.id WHERE r.review = 'rejected'"
                             " ORDER BY r.terminal_id, r.seq")
    found += [f"l'enregistrement {s} du terminal {t}, rejeté après vérification, a été réglé ({euros(a)} €)" for t, s, a in settled]
    to_member = ("SELECT COUNT(*), COALESCE(SUM(x.amount_cents), 0) FROM ledger_transfer x JOIN ledger_account c"
                 " ON c.id = x.credit_account_id WHERE substr(c.code, 1, 7) = 'member:' AND x.reference IN :references")
    rows = _rows(session, "SELECT terminal_id, seq, amount_cents, voided FROM transaction_record"
                          " WHERE kind = 1 AND status = 'accepted' AND review = 'rejected' ORDER BY terminal_id, seq")
    for terminal_id, seq, amount, voided in rows:
        voids = [v for (v,) in _rows(session, "SELECT seq FROM transaction_record WHERE terminal_id = :t AND kind = 2"
                                              " AND ref_seq = :s AND status = 'accepted'", t=terminal_id, s=seq)]
        references = [ledger.reject_reference(terminal_id, seq),
                      *(f(terminal_id, v) for v in voids for f in (ledger.record_reference, ledger.release_reference))]
        count, cents = session.execute(text(to_member).bindparams(bindparam("references", expanding=True)),
                                       {"references": references}).one()
        what = f"le paiement {seq} du terminal {terminal_id} ({euros(amount)} €), rejeté après vérification,"
        if not voided:
            found.append(f"{what} n'est pas marqué annulé")
        if int(count) != 1:
            found.append(f"{what} a été rendu au foyer {int(count)} fois")
        elif int(cents) != amount:
            found.append(f"{what} a été rendu au foyer pour {euros(int(cents))} €")
    rejected = {ledger.reject_reference(t, s) for t, s in _rows(
        session, "SELECT terminal_id, seq FROM transaction_record WHERE review = 'rejected'")}
    stray = [(reference, amount) for reference, amount in _rows(
        session, "SELECT reference, amount_cents FROM ledger_transfer WHERE kind = :kind ORDER BY id",
        kind=ledger.TransferKind.REJECT) if reference not in rejected]
    found += [f"le rejet {reference} ({euros(amount)} €) ne correspond à aucun enregistrement rejeté" for reference, amount in stray]
    return _capped(found)


def vendor_accounts_match_records(session: Session) -> list[str]:
    """Each vendor's payable holds what its records not paid out yet add to it (and the bank
    returns no exported run paid again), its held account the records held undecided: the
    comparison settlement runs and staff reports use (caisse.settlement.runs.payable_differences)."""

    return _capped([difference.french() for difference in payable_differences(session)])


def reversals_mirror_their_entry(session: Session) -> list[str]:
    """A reversal `reversal:{id}` takes back transfer `id`, an entry staff make by hand
    (corrections.REVERSIBLE), for its amount, between the same accounts the other way."""
    rows = _rows(session, "SELECT reference, amount_cents, debit_account_id, credit_account_id FROM ledger_transfer"
                          " WHERE kind = :kind ORDER BY id", kind=ledger.TransferKind.REVERSAL)
    ids = {reference: int(reference.split(":")[1]) for reference, *_ in rows
           if reference.startswith("reversal:") and reference.count(":") == 1 and reference.split(":")[1].isdigit()}
    originals = {}
    if ids:
        originals = {row[0]: row[1:] for row in session.execute(
            text("SELECT id, kind, reference, amount_cents, debit_account_id, credit_account_id FROM ledger_transfer"
                 " WHERE id IN :ids").bindparams(bindparam("ids", expanding=True)), {"ids": sorted(set(ids.values()))}).all()}
    found = []
    for reference, amount, debit, credit in rows:
        original = originals.get(ids.get(reference, -1))
        if original is None:
            found.append(f"la contre-passation {reference} ({euros(amount)} €) ne nomme pas une écriture existante")
            continue
        kind, original_reference, original_amount, original_debit, original_credit = original
        if kind not in REVERSIBLE:
            found.append(f"la contre-passation {reference} reprend {original_reference}, une écriture « {kind} » qu'on ne"
                         " contre-passe pas")
        elif (amount, debit, credit) != (original_amount, original_credit, original_debit):
            found.append(f"la contre-passation {reference} ({euros(amount)} €) ne reprend pas exactement {original_reference}"
                         f" ({euros(original_amount)} €) en sens inverse")
    return _capped(found)


# 7. What was paid out is what exported runs settled --------------------------------------------

def payouts_match_settlements(session: Session) -> list[str]:
    """Per run and vendor, the payout `settlement:{run}:{vendor}` equals the records the run
    settled for the vendor plus the bank returns it paid again (caisse.settlement.bank_returns); none when that is
    zero, none for a run not exported. vendor_paid holds what exported runs paid, less what the
    bank gave back."""
    found = []
    items = {(int(run), int(vendor)): (int(cents), status) for run, vendor, cents, status in _rows(
        session, "SELECT i.run_id, i.vendor_id, SUM(i.amount_cents), r.status FROM settlement_item i"
                 " JOIN settlement_run r ON r.id = i.run_id GROUP BY i.run_id, i.vendor_id, r.status")}
    repaid = {(int(run), int(vendor)): (int(cents), status) for run, vendor, cents, status in _rows(
        session, "SELECT b.repaid_run_id, b.vendor_id, SUM(b.amount_cents), r.status FROM bank_return b"
                 " JOIN settlement_run r ON r.id = b.repaid_run_id GROUP BY b.repaid_run_id, b.vendor_id, r.status")}
    paid: dict[tuple[int, int], int] = {}
    for reference, cents in _rows(session, "SELECT reference, amount_cents FROM ledger_transfer WHERE kind = :kind",
                                  kind=ledger.TransferKind.SETTLEMENT):
        parts = reference.split(":")
        key = (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else None
        if key is None:
            found.append(f"le virement {reference} ({euros(int(cents))} €) ne nomme pas un règlement et un commerçant")
        else:
            paid[key] = int(cents)
    for (run, vendor) in sorted(items.keys() | repaid.keys() | paid.keys()):
        settled, status = items.get((run, vendor), (0, None))
        again, again_status = repaid.get((run, vendor), (0, None))
        status = status or again_status
        due = settled + again if status == SettlementStatus.EXPORTED and settled + again > 0 else 0
        if paid.get((run, vendor), 0) != due:
            found.append(f"règlement {run}, commerçant {vendor} : viré {euros(paid.get((run, vendor), 0))} €,"
                         f" enregistrements réglés {euros(settled)} €"
                         + (f" et retours de la banque repayés {euros(again)} €" if again else "")
                         + ("" if status == SettlementStatus.EXPORTED else " (règlement non exporté)"))
    paid_out = ledger.balance_cents(session, code=ledger.Account.VENDOR_PAID)
    exported = sum(cents for cents, status in [*items.values(), *repaid.values()] if status == SettlementStatus.EXPORTED)
    returned = _scalar(session, "SELECT COALESCE(SUM(amount_cents), 0) FROM bank_return")
    if paid_out != exported - returned:
        found.append(f"compte des virements aux commerçants : {euros(paid_out)} € ; règlements exportés {euros(exported)} €"
                     f" − retours de la banque {euros(returned)} € = {euros(exported - returned)} €")
    return _capped(found)


def bank_returns_posted(session: Session) -> list[str]:
    """Each transfer the bank gave back (caisse.settlement.bank_returns) has its posting `return:{payment_id}` of its
    amount back to the vendor's payable, and no such posting exists without its return."""
    rows = _rows(session, """
        SELECT b.payment_id, b.amount_cents, t.amount_cents FROM bank_return b
        LEFT JOIN ledger_transfer t ON t.reference = 'return:' || b.payment_id AND t.kind = :kind
        WHERE t.id IS NULL OR t.amount_cents <> b.amount_cents
        UNION ALL
        SELECT t.reference, NULL, t.amount_cents FROM ledger_transfer t WHERE t.kind = :kind
          AND NOT EXISTS (SELECT 1 FROM bank_return b WHERE 'return:' || b.payment_id = t.reference)
        ORDER BY 1""", kind=ledger.TransferKind.BANK_RETURN)
    found = []
    for name, returned, posted in rows:
        if returned is None:
            found.append(f"l'écriture {name} ({euros(int(posted))} €) ne correspond à aucun retour de la banque")
        elif posted is None:
            found.append(f"le retour du virement {name} ({euros(int(returned))} €) n'est pas au grand livre")
        else:
            found.append(f"le retour du virement {name} vaut {euros(int(returned))} €, son écriture {euros(int(posted))} €")
    return _capped(found)


def settled_records(session: Session) -> list[str]:
    """A settlement item pays an accepted record once (its primary key), for the record's vendor
    and signed amount (a void negative), and never a record a reviewer rejected (review_rejections)."""
    rows = _rows(session, """
        SELECT i.record_id, i.run_id, i.vendor_id, i.amount_cents, r.terminal_id, r.seq, r.status, t.vendor_id,
               CASE WHEN r.kind = 1 THEN r.amount_cents ELSE -r.amount_cents END
        FROM settlement_item i LEFT JOIN transaction_record r ON r.id = i.record_id
        LEFT JOIN terminal t ON t.id = r.terminal_id
        WHERE r.id IS NULL OR r.status <> 'accepted' OR t.vendor_id <> i.vendor_id
           OR i.amount_cents <> CASE WHEN r.kind = 1 THEN r.amount_cents ELSE -r.amount_cents END
        ORDER BY i.record_id""")
    found = []
    for record_id, run, vendor, cents, terminal_id, seq, status, owner, signed in rows:
        if terminal_id is None:
            found.append(f"le règlement {run} paie l'enregistrement {record_id}, qui n'existe pas ({euros(cents)} €)")
        elif status != RecordStatus.ACCEPTED:
            found.append(f"le règlement {run} paie l'enregistrement {seq} du terminal {terminal_id}, qui est refusé")
        else:
            found.append(f"le règlement {run} paie l'enregistrement {seq} du terminal {terminal_id} {euros(cents)} € au"
                         f" commerçant {vendor} ; il vaut {euros(signed)} € pour le commerçant {owner}")
    return _capped(found)


def watermark_sound(session: Session) -> list[str]:
    """Below the settlement watermark every accepted record is settled, or rejected for good (a
    rejected payment, or a void of one): docs/settlement.md, "Watermark"."""
    rows = _rows(session, """
        SELECT r.id, r.terminal_id, r.seq, r.amount_cents FROM transaction_record r
        WHERE r.id < (SELECT COALESCE(MAX(value), 0) FROM counter WHERE name = 'settlement_scan_from')
          AND r.status = 'accepted' AND NOT EXISTS (SELECT 1 FROM settlement_item i WHERE i.record_id = r.id)
          AND COALESCE(r.review, '') <> 'rejected' AND NOT EXISTS (SELECT 1 FROM transaction_record p
              WHERE r.kind = 2 AND p.terminal_id = r.terminal_id AND p.seq = r.ref_seq AND p.review = 'rejected')
        ORDER BY r.id""")
    return _capped([f"l'enregistrement {seq} du terminal {terminal_id} ({euros(amount)} €) est sous le repère des"
                    f" règlements (enregistrement {record_id}) sans avoir été réglé : aucun règlement ne le relira"
                    for record_id, terminal_id, seq, amount in rows])


def contributions_registered(session: Session) -> list[str]:
    """The register of contributions and the ledger's contribution transfers name the same
    references for the same amounts."""
    rows = _rows(session, """
        SELECT c.reference, c.amount_cents, t.amount_cents FROM contribution c
        LEFT JOIN ledger_transfer t ON t.reference = c.reference AND t.kind = 'contribution'
        WHERE t.id IS NULL OR t.amount_cents <> c.amount_cents
        UNION ALL
        SELECT t.reference, NULL, t.amount_cents FROM ledger_transfer t
        WHERE t.kind = 'contribution' AND NOT EXISTS (SELECT 1 FROM contribution c WHERE c.reference = t.reference)
        ORDER BY 1""")
    found = []
    for reference, registered, posted in rows:
        if registered is None:
            found.append(f"la cotisation {reference} ({euros(int(posted))} €) est au grand livre mais pas au registre")
        elif posted is None:
            found.append(f"la cotisation {reference} ({euros(int(registered))} €) est au registre mais pas au grand livre")
        else:
            found.append(f"la cotisation {reference} vaut {euros(int(registered))} € au registre et"
                         f" {euros(int(posted))} € au grand livre")
    return _capped(found)


def departures(session: Session) -> list[str]:
    """A household that left gets no allowance for a month after its leaving month, and its
    departure transfers never take back from the fund more than it gave (caisse.members.service). The
    allowances are looked up by reference (the unique index), month by month since each leaving
    up to the last allocated month: no scan of the journal."""
    last = _rows(session, "SELECT MAX(month) FROM allowance_month")[0][0]
    wanted: dict[str, tuple[int, str]] = {}
    for household, left_on in _rows(session, "SELECT id, left_on FROM household WHERE left_on IS NOT NULL"):
        left = str(left_on)[:7]
        year, month = int(left[:4]), int(left[5:7])
        while last is not None:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if f"{year:04d}-{month:02d}" > last:
                break
            wanted[f"allowance:{household}:{year:04d}-{month:02d}"] = (int(household), str(left_on)[:10])
    keys = sorted(wanted)
    found = []
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        posted = session.execute(text("SELECT reference FROM ledger_transfer WHERE reference IN :keys")
                                 .bindparams(bindparam("keys", expanding=True)), {"keys": chunk}).scalars()
        found += [f"le foyer {wanted[reference][0]} (parti le {wanted[reference][1]}) a reçu l'allocation {reference}"
                  for reference in posted]
    found += [f"le foyer {h} a repris au fonds {euros(int(covered))} € pour {euros(int(returned))} € rendus à son départ"
              for h, returned, covered in _rows(session, f"""
        SELECT substr(c.code, 8), SUM(CASE WHEN t.kind = '{ledger.TransferKind.DEPARTURE}' THEN t.amount_cents ELSE 0 END),
               SUM(CASE WHEN t.kind = '{ledger.TransferKind.DEPARTURE_COVER}' THEN t.amount_cents ELSE 0 END)
        FROM ledger_transfer t JOIN ledger_account c ON c.id IN (t.debit_account_id, t.credit_account_id)
        WHERE t.kind IN ('{ledger.TransferKind.DEPARTURE}', '{ledger.TransferKind.DEPARTURE_COVER}') AND substr(c.code, 1, 7) = 'member:'
        GROUP BY c.code HAVING SUM(CASE WHEN t.kind = '{ledger.TransferKind.DEPARTURE_COVER}' THEN t.amount_cents ELSE 0 END)
                             > SUM(CASE WHEN t.kind = '{ledger.TransferKind.DEPARTURE}' THEN t.amount_cents ELSE 0 END)""")]
    return _capped(found)


# All of them ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    title: str  # French, for `caisse verify`
    check: Callable[[Session], list[str]]


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("transfers_balance", "chaque écriture s'équilibre", transfers_balance),
    Invariant("balances_sum_to_zero", "la somme des soldes est nulle", balances_sum_to_zero),
    Invariant("references_unique", "chaque référence est passée au plus une fois", references_unique),
    Invariant("balances_match_journal", "chaque solde est la somme de ses écritures", balances_match_journal),
    Invariant("records_match_transfers", "chaque enregistrement accepté a exactement une écriture, et seulement lui",
              records_match_transfers),
    Invariant("transfers_join_the_right_accounts", "chaque nature d'écriture va du bon compte au bon compte",
              transfers_join_the_right_accounts),
    Invariant("reversals_mirror_their_entry", "chaque contre-passation reprend exactement une saisie, en sens inverse",
              reversals_mirror_their_entry),
    Invariant("money_per_purpose", "l'argent se conserve : foyers, commerçants, allocations", money_per_purpose),
    Invariant("review_rejections", "un paiement rejeté après vérification n'est jamais réglé et rendu une fois",
              review_rejections),
    Invariant("vendor_accounts_match_records", "chaque compte de commerçant, à payer et retenu, est celui de ses enregistrements",
              vendor_accounts_match_records),
    Invariant("settled_records", "chaque règlement paie un enregistrement accepté, une fois, à son commerçant",
              settled_records),
    Invariant("payouts_match_settlements", "les virements sont les règlements exportés, commerçant par commerçant",
              payouts_match_settlements),
    Invariant("bank_returns_posted", "chaque retour de la banque est au grand livre, une fois, pour son montant",
              bank_returns_posted),
    Invariant("watermark_sound", "aucun enregistrement n'est oublié sous le repère des règlements", watermark_sound),
    Invariant("contributions_registered", "le registre des cotisations est celui du grand livre", contributions_registered),
    Invariant("departures", "un foyer parti ne reçoit plus d'allocation et ne reprend au fonds que ce qu'il a rendu", departures),
)


def check_all(session: Session) -> list[tuple[Invariant, list[str]]]:
    """Every invariant with its violations (empty when it holds), in the order of INVARIANTS."""
    return [(invariant, invariant.check(session)) for invariant in INVARIANTS]


def violations(session: Session) -> list[str]:
    """Every violation, each prefixed with the invariant it breaks: empty when the ledger is sound."""
    return [f"{invariant.title} : {problem}" for invariant, problems in check_all(session) for problem in problems]

