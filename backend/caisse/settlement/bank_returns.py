"""The bank's answers to the caisse's transfers (docs/settlement.md, "Bank returns").

Three ISO 20022 messages, as the EPC's SEPA Credit Transfer guidelines and the French banks'
(CFONB) implementation guides use them:

- pain.002 (Customer Payment Status Report): the file, a batch or a single payment rejected
  (status RJCT) with an ISO reason code;
- camt.054 (Debit/Credit Notification) and camt.053 (Statement): entries booked on the caisse's
  account. A debit carrying a payment's EndToEndId confirms that transfer left; a credit carrying
  return information (RtrInf) is a transfer given back by the vendor's bank.

A payment is found by its EndToEndId, the `payment_id` frozen on its settlement line. Returning it
posts vendor_paid -> vendor_payable (reference `return:{payment_id}`, once per payment), records
a `bank_return` the next run pays again (caisse.settlement.runs) and an audit entry, all in the
caller's transaction. A whole file is refused, changing nothing, if one of its answers is wrong
(an unknown payment, an amount that is not the one sent); a file imported before changes nothing.
Nothing here commits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from sqlalchemy import select
from sqlmodel import Session, col

from caisse import audit
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.ledger import postings as ledger
from caisse.models import BankFile, BankReturn, LineStatus, SettlementLine, SettlementRun, SettlementStatus
from caisse.money import euros
from caisse.staff import accounts

MAX_FILE_BYTES = 20_000_000  # a month of statements is far below; a larger file is not one of these
_NAMESPACE = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:(pain\.002|camt\.054|camt\.053)\.001\.(\d\d)\}Document$")
# Payment ids the caisse gives (caisse.settlement.runs): an entry with another id is someone else's.
_OURS = re.compile(r"^CAISSE-\d+-\d+$")

# ISO 20022 ExternalStatusReason1Code / ExternalReturnReason1Code, the ones SEPA banks send, in French.
REASONS = {
    "AC01": "IBAN incorrect",
    "AC04": "compte clôturé",
    "AC06": "compte bloqué",
    "AC13": "type de compte invalide",
    "AG01": "opération interdite sur ce compte",
    "AG02": "code opération invalide",
    "AM05": "paiement en double",
    "BE01": "nom du bénéficiaire différent de celui du compte",
    "BE04": "adresse du bénéficiaire manquante",
    "CNOR": "banque du bénéficiaire injoignable",
    "CUST": "refusé par le client",
    "DNOR": "banque de la caisse injoignable",
    "DUPL": "paiement en double",
    "FF01": "fichier au format invalide",
    "FOCR": "retour demandé par la caisse",
    "MD07": "titulaire du compte décédé",
    "MS02": "refusé par le bénéficiaire",
    "MS03": "motif non précisé par la banque",
    "RC01": "BIC incorrect",
    "RR01": "identification du titulaire manquante (réglementation)",
    "RR02": "nom ou adresse du titulaire manquant (réglementation)",
    "RR03": "nom ou adresse du bénéficiaire manquant (réglementation)",
    "RR04": "motif réglementaire",
    "TECH": "problème technique à la banque",
}
# The account itself is wrong: paying it again would come back again. Such a return waits until the
# vendor's IBAN has changed (two people, caisse.vendors.service); the others are paid again by the next run.
NEEDS_NEW_IBAN = frozenset({"AC01", "AC04", "AC06", "AC13", "AG01", "BE01", "MD07", "RC01"})
# The bank refused a second copy of a transfer it has already paid: nothing came back.
DUPLICATE = frozenset({"AM05", "DUPL"})


def reason_text(code: str) -> str:
    return f"{REASONS.get(code, 'motif non répertorié')} ({code})"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A transfer the bank refused (pain.002) or gave back (camt). `payment_id` None: every payment
    of the original message (`message_id`) or batch (`batch_id`)."""

    payment_id: str | None
    message_id: str | None
    batch_id: str | None
    reason_code: str
    amount_cents: int | None


@dataclass(frozen=True, slots=True)
class Debit:
    """A transfer, or a whole batch booked as one entry, seen debited from the caisse's account."""

    payment_id: str | None
    batch_id: str | None
    booked_on: date | None


@dataclass(slots=True)
class BankMessage:
    message_type: str  # e.g. pain.002.001.03
    message_id: str
    rejections: list[Rejection] = field(default_factory=list)
    debits: list[Debit] = field(default_factory=list)
    foreign_returns: list[str] = field(default_factory=list)  # returns of transfers the caisse did not send


def parse(content: bytes) -> BankMessage:
    """Read a pain.002, camt.054 or camt.053 message (any version of the ISO 20022 namespace).
    Entity declarations and other XML tricks are refused (defusedxml)."""
    if len(content) > MAX_FILE_BYTES:
        raise InvalidInput("bank_file_unreadable", "fichier trop gros pour un message de la banque")
    try:
        root = fromstring(content, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as error:
        raise InvalidInput("bank_file_unreadable", f"ce fichier n'est pas un message XML de la banque ({error})") from None
    kind = _NAMESPACE.match(root.tag)
    if kind is None:
        raise InvalidInput("bank_file_unknown", f"ce fichier n'est ni un pain.002, ni un camt.054, ni un camt.053 (racine {root.tag})")
    name, version = kind.groups()
    message = BankMessage(message_type=f"{name}.001.{version}", message_id="")
    body = next(iter(root), None)
    if body is None:
        raise InvalidInput("bank_file_unknown", "message vide")
    message.message_id = _text(body, "GrpHdr/MsgId") or ""
    if not message.message_id:
        raise InvalidInput("bank_file_unknown", "message sans identifiant (GrpHdr/MsgId)")
    if name == "pain.002":
        _read_status_report(body, message)
    else:
        _read_entries(body, message)
    return message


def _children(element: Element, path: str) -> Iterator[Element]:
    """Elements under `path` (names separated by '/'), whatever their namespace."""
    found = [element]
    for step in path.split("/"):
        found = [child for parent in found for child in parent if child.tag.rsplit("}", 1)[-1] == step]
    return iter(found)


def _text(element: Element, path: str) -> str | None:
    first = next(_children(element, path), None)
    return None if first is None or first.text is None else first.text.strip()


def _cents(element: Element, path: str) -> int | None:
    amount = next(_children(element, path), None)
    if amount is None or amount.text is None:
        return None
    if amount.get("Ccy", "EUR") != "EUR":
        raise InvalidInput("bank_file_unknown", f"montant en {amount.get('Ccy')} : la caisse paie en euros")
    try:
        cents = Decimal(amount.text.strip()) * 100
    except InvalidOperation:
        raise InvalidInput("bank_file_unknown", f"montant « {amount.text} » illisible") from None
    if cents != cents.to_integral_value() or cents <= 0:
        raise InvalidInput("bank_file_unknown", f"montant « {amount.text} » : un nombre positif de centimes est attendu")
    return int(cents)


def _reason(element: Element) -> str:
    return _text(element, "StsRsnInf/Rsn/Cd") or _text(element, "RtrInf/Rsn/Cd") or "MS03"


def _read_status_report(body: Element, message: BankMessage) -> None:
    group = next(_children(body, "OrgnlGrpInfAndSts"), None)
    original = _text(group, "OrgnlMsgId") if group is not None else None
    if group is not None and _text(group, "GrpSts") == "RJCT":
        message.rejections.append(Rejection(None, original, None, _reason(group), None))
        return
    for batch in _children(body, "OrgnlPmtInfAndSts"):
        batch_id = _text(batch, "OrgnlPmtInfId")
        if _text(batch, "PmtInfSts") == "RJCT":
            message.rejections.append(Rejection(None, original, batch_id, _reason(batch), None))
            continue
        for payment in _children(batch, "TxInfAndSts"):
            if _text(payment, "TxSts") != "RJCT":
                continue  # accepted, pending: nothing to do
            message.rejections.append(Rejection(_text(payment, "OrgnlEndToEndId"), original, batch_id, _reason(payment),
                                                _cents(payment, "OrgnlTxRef/Amt/InstdAmt")))


def _read_entries(body: Element, message: BankMessage) -> None:
    for report in (*_children(body, "Ntfctn"), *_children(body, "Stmt")):
        for entry in _children(report, "Ntry"):
            status = _text(entry, "Sts") or _text(entry, "Sts/Cd")
            if status not in ("BOOK", None):
                continue  # pending or informational: only booked entries moved money
            booked = _date(_text(entry, "BookgDt/Dt") or (_text(entry, "BookgDt/DtTm") or "")[:10])
            debit = _text(entry, "CdtDbtInd") == "DBIT"
            details = list(_children(entry, "NtryDtls/TxDtls"))
            batch_id = _text(entry, "NtryDtls/Btch/PmtInfId")
            if debit and batch_id and not any(_text(d, "Refs/EndToEndId") for d in details):
                message.debits.append(Debit(None, batch_id, booked))  # a batch booked as one entry
                continue
            for detail in details:
                payment_id = _text(detail, "Refs/EndToEndId")
                returned = next(_children(detail, "RtrInf"), None)
                if payment_id is None or not _OURS.match(payment_id):
                    if returned is not None and not debit:  # shown to staff: never dropped silently
                        message.foreign_returns.append(payment_id or "sans référence")
                    continue  # another movement of the account (contributions, fees...)
                if returned is not None and not debit:
                    amount = _cents(detail, "AmtDtls/TxAmt/Amt") or _cents(detail, "Amt") or (
                        _cents(entry, "Amt") if len(details) == 1 else None)
                    message.rejections.append(Rejection(payment_id, None, None, _reason(detail), amount))
                elif debit:
                    message.debits.append(Debit(payment_id, _text(detail, "Refs/PmtInfId"), booked))


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise InvalidInput("bank_file_unknown", f"date de comptabilisation « {value} » illisible") from None


# Import ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class ImportResult:
    message_type: str
    message_id: str
    already_imported: bool = False
    returned: list[BankReturn] = field(default_factory=list)
    already_returned: list[str] = field(default_factory=list)  # payment ids returned by an earlier file
    duplicates_ignored: list[str] = field(default_factory=list)
    foreign_returns: list[str] = field(default_factory=list)  # EndToEndIds that are not the caisse's
    debited: int = 0


def import_file(session: Session, *, content: bytes, by: str, os_user: str | None = None) -> ImportResult:
    """Apply one bank message, as the active console account `by` (the caller commits)."""
    by = accounts.active_user(session, email=by).email
    message = parse(content)
    digest = hashlib.sha256(content).hexdigest()
    result = ImportResult(message.message_type, message.message_id, foreign_returns=message.foreign_returns)
    if session.get(BankFile, digest) is not None:
        result.already_imported = True
        return result
    session.add(BankFile(sha256=digest, message_type=message.message_type, message_id=message.message_id, imported_by=by))
    session.flush()
    for rejection in message.rejections:
        for line in _lines_of(session, rejection):
            _return(session, line, rejection, digest=digest, by=by, result=result, os_user=os_user)
    for debit in message.debits:
        for line in _lines_of(session, Rejection(debit.payment_id, None, debit.batch_id, "", None)):
            if line.debited_on is None:
                line.debited_on = debit.booked_on
                session.add(line)
            result.debited += 1
    audit.record(session, actor=by, action="bank.import", subject=f"bank_file:{digest[:16]}",
                 detail={"message_type": message.message_type, "message_id": message.message_id,
                         "returned": [r.payment_id for r in result.returned], "debited": result.debited,
                         **({"os_user": os_user} if os_user else {})})
    session.flush()
    return result


def _lines_of(session: Session, answer: Rejection) -> list[SettlementLine]:
    """The paid lines an answer is about: one payment, or every payment of a batch or a message."""
    query = select(SettlementLine).where(col(SettlementLine.status) == LineStatus.PAID, col(SettlementLine.amount_cents) > 0)
    if answer.payment_id is not None:
        line = session.execute(query.where(col(SettlementLine.payment_id) == answer.payment_id)).scalar_one_or_none()
        if line is None:
            raise NotFound("bank_payment_unknown", f"le virement {answer.payment_id} est inconnu de la caisse (EndToEndId) : rien n'est importé")
        return [line]
    run_column = SettlementRun.payment_info_id if answer.batch_id else SettlementRun.message_id
    run = session.execute(select(SettlementRun).where(col(run_column) == (answer.batch_id or answer.message_id))).scalar_one_or_none()
    if run is None:
        raise NotFound("bank_payment_unknown", f"aucun règlement n'a envoyé {answer.batch_id or answer.message_id} : rien n'est importé")
    return list(session.execute(query.where(col(SettlementLine.run_id) == run.id).order_by(col(SettlementLine.id))).scalars())


def _return(session: Session, line: SettlementLine, rejection: Rejection, *, digest: str, by: str,
            result: ImportResult, os_user: str | None) -> None:
    assert line.payment_id is not None and line.id is not None
    if rejection.reason_code in DUPLICATE:
        result.duplicates_ignored.append(line.payment_id)  # the first copy was paid; this one moved nothing
        return
    run = session.get(SettlementRun, line.run_id)
    assert run is not None
    if run.status != SettlementStatus.EXPORTED:
        raise Conflict("bank_run_not_exported", f"le règlement {run.id} n'a pas été exporté : "
                                                f"le virement {line.payment_id} n'est jamais parti, rien n'est importé")
    if rejection.amount_cents is not None and rejection.amount_cents != line.amount_cents:
        raise InvalidInput("bank_amount_mismatch",
                           f"virement {line.payment_id} : la banque retourne {euros(rejection.amount_cents)} EUR, la caisse a envoyé"
                           f" {euros(line.amount_cents)} EUR : rien n'est importé")
    reference = ledger.return_reference(line.payment_id)
    if ledger.find_transfer(session, reference=reference) is not None:
        result.already_returned.append(line.payment_id)
        return
    paid = ledger.ensure_account(session, code=ledger.Account.VENDOR_PAID, kind=ledger.AccountKind.VENDOR_PAID)
    payable = ledger.ensure_account(session, code=ledger.vendor_payable_code(line.vendor_id), kind=ledger.AccountKind.VENDOR_PAYABLE)
    reason = reason_text(rejection.reason_code)
    ledger.post_transfer(session, debit=paid, credit=payable, amount_cents=line.amount_cents,
                         kind=ledger.TransferKind.BANK_RETURN, reference=reference,
                         memo=f"virement {line.payment_id} retourné par la banque : {reason}")
    returned = BankReturn(payment_id=line.payment_id, run_id=line.run_id, vendor_id=line.vendor_id,
                          amount_cents=line.amount_cents, iban=line.payee_iban or "", reason_code=rejection.reason_code,
                          reason=reason, needs_new_iban=rejection.reason_code in NEEDS_NEW_IBAN, file_sha256=digest)
    session.add(returned)
    session.flush()
    audit.record(session, actor=by, action="bank.return", subject=f"vendor:{line.vendor_id}",
                 detail={"payment_id": line.payment_id, "run_id": line.run_id, "amount_cents": line.amount_cents,
                         "reason_code": rejection.reason_code, **({"os_user": os_user} if os_user else {})})
    result.returned.append(returned)


def returns(session: Session, *, waiting_only: bool = False, run_id: int | None = None) -> list[BankReturn]:
    """Returned transfers, newest first; `waiting_only`: those no run has paid again yet; `run_id`:
    those sent by that run."""
    query = select(BankReturn).order_by(col(BankReturn.id).desc())
    if run_id is not None:
        query = query.where(col(BankReturn.run_id) == run_id)
    if waiting_only:
        query = query.where(col(BankReturn.repaid_run_id).is_(None))
    return list(session.execute(query).scalars())
