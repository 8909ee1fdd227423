"""SEPA credit transfers (pain.001) for a settlement run, in the version the caisse's bank accepts.

Banks move from pain.001.001.03 to the 2019 versions at their own pace, so the version is chosen
by the BIC of the caisse's own account (`sepa_schema_by_bank`, full BIC or its first 8 letters),
with `sepa_schema` as the default. sepaxml builds the file; it is validated against the XSD of
that version (shipped with sepaxml) before it is written, so an invalid file is never sent.

What a rewrite after a crash must not change is stored with the run before any file is written
(docs/settlement.md, "Payees and files"): the message id, the payment information id, each
payment's end-to-end id and payee (name, IBAN, BIC), and the creation time (the approval's). Only
the execution date is worked out at export: the first TARGET2 business day on or after the day
the file is written, so a file is never dated in the past.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from caisse.config import Settings, sepa_text
from caisse.models import SettlementRun


@dataclass(frozen=True, slots=True)
class Payout:
    """One transfer of a settlement run, as frozen when the run was prepared: what the file pays."""

    vendor_id: int
    name: str
    iban: str
    bic: str | None
    amount_cents: int
    record_count: int
    payment_id: str


def schema_for_bank(settings: Settings) -> str:
    """The pain.001 version for the caisse's bank (its BIC, then the BIC's first 8 letters)."""
    by_bank = {bic.upper(): schema for bic, schema in settings.sepa_schema_by_bank.items()}
    bic = settings.debtor_bic.upper()
    return by_bank.get(bic) or by_bank.get(bic[:8]) or settings.sepa_schema


def is_target2_business_day(day: date) -> bool:
    """TARGET2 settles euro payments on weekdays except its closing days (the `holidays` package's
    ECB calendar: New Year, Good Friday, Easter Monday, 1 May, 25 and 26 December)."""
    return day.weekday() < 5 and day not in _target2_closed(day.year)


@lru_cache(maxsize=8)
def _target2_closed(year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.financial_holidays("XECB", years=year))


def execution_date(run_date: date, *, today: date) -> date:
    """ReqdExctnDt: the first TARGET2 business day on or after the run's date, and never before
    the day the file is written (a run settled late is paid as soon as possible)."""
    day = max(run_date, today)
    while not is_target2_business_day(day):
        day += timedelta(days=1)
    return day


@dataclass(frozen=True, slots=True)
class Message:
    """What a run's file says of the run, stored when it was prepared and approved: a plain value,
    so that the file can be written by a worker process (caisse.settlement.statements.worker_pool)."""

    run_id: int
    run_date: date
    message_id: str
    payment_info_id: str
    created_at: datetime  # the approval's time (the preparation's when there is none)

    @classmethod
    def of(cls, run: SettlementRun) -> Message:
        assert run.id is not None and run.message_id and run.payment_info_id, "ids are given when the run is prepared"
        return cls(run.id, run.run_date, run.message_id, run.payment_info_id, run.approved_at or run.prepared_at)


def write_sepa(path: Path, message: Message, payouts: Sequence[Payout], settings: Settings, today: date) -> date | None:
    """One credit transfer per payout; returns the execution date, None (and no file) when none."""
    if not payouts:
        return None
    schema = schema_for_bank(settings)
    config = {"name": sepa_text(settings.debtor_name), "IBAN": settings.debtor_iban, "BIC": settings.debtor_bic,
              "batch": True, "currency": "EUR"}
    stamped = message.created_at
    created = (stamped if stamped.tzinfo else stamped.replace(tzinfo=UTC)).astimezone(ZoneInfo(settings.settlement_timezone))
    transfer = _transfer_with_stored_ids(config, schema, message_id=message.message_id,
                                         payment_info_id=message.payment_info_id, created=created)
    when = execution_date(message.run_date, today=today)
    for payout in payouts:
        payment: dict[str, object] = {
            "name": sepa_text(payout.name), "IBAN": payout.iban, "amount": payout.amount_cents, "execution_date": when,
            "description": f"Caisse alimentaire - reglement {message.run_id} du {message.run_date:%d/%m/%Y}",
            "endtoend_id": payout.payment_id,
        }
        if payout.bic:
            payment["BIC"] = payout.bic
        transfer.add_payment(payment)
    document = transfer.export(validate=False, pretty_print=True)
    xsd(schema).validate(document.decode("utf-8"))  # raises when invalid
    path.write_bytes(document)
    return when


def _transfer_with_stored_ids(config: dict[str, Any], schema: str, *, message_id: str, payment_info_id: str,
                              created: datetime) -> Any:
    """sepaxml's SepaTransfer, with the run's stored ids and time instead of fresh random ones
    (sepaxml draws MsgId and PmtInfId at random and stamps the current time)."""
    from sepaxml import SepaTransfer

    class StoredIds(SepaTransfer):
        def _finalize_batch(self) -> None:
            super()._finalize_batch()
            document = self._xml
            assert document is not None
            _set_text(document, "CstmrCdtTrfInitn/GrpHdr/MsgId", message_id)
            _set_text(document, "CstmrCdtTrfInitn/GrpHdr/CreDtTm", created.strftime("%Y-%m-%dT%H:%M:%S"))
            for node in document.iter("PmtInfId"):  # one batch: one execution date
                node.text = payment_info_id

    return StoredIds(config, schema=schema, clean=False)


def _set_text(document: Any, path: str, value: str) -> None:
    node = document.find(path)
    assert node is not None, f"sepaxml writes {path}"
    node.text = value


@lru_cache(maxsize=4)
def xsd(name: str) -> Any:
    """The XSD shipped with sepaxml, parsed once per process (parsing costs ~0.3 s): the same
    check as `export(validate=True)`, which parses it again on every call."""
    import xmlschema
    from sepaxml import validation

    return xmlschema.XMLSchema(str(Path(validation.__file__).parent / "schemas" / f"{name}.xsd"))
