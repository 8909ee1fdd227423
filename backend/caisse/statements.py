"""The files people read after a settlement run (docs/settlement.md), all in French:

- one statement per vendor paid, as CSV (semicolons, decimal commas, for a French spreadsheet)
  and as PDF (to print or mail): the vendor, the period, each transaction (date, time, terminal,
  number, operation, amount) and the total;
- the run summary `resume.csv`: every vendor paid or held back with the reason, the total paid,
  then each record held for review, so the person deciding knows what to look at, then every
  vendor account that disagrees with its records (caisse.settlement.payable_differences).

Written from the run's items in one pass ordered by vendor (one query, not one per vendor). The
PDF draws one line of a monospaced core font per transaction: a cell per column costs ~160 µs a
line in fpdf2, too slow for a million records; a line of text ~5 µs.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlmodel import Session

from caisse.money import euros
from caisse.models import ReviewStatus, SettlementLine, SettlementRun, Terminal, TransactionRecord, Vendor

if TYPE_CHECKING:
    from fpdf import FPDF

KIND = {1: "paiement", 2: "annulation"}
PAID = "paid"


class LocalClock:
    """Unix seconds -> ('dd/mm/yyyy', 'hh:mm:ss') in local time, the zone's offset looked up once
    per hour of records instead of a datetime per record."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.offsets: dict[int, int] = {}
        self.days: dict[int, str] = {}

    def local(self, moment: int) -> tuple[str, str]:
        offset = self.offsets.get(moment // 3600)
        if offset is None:
            delta = datetime.fromtimestamp(moment, UTC).astimezone(self.zone).utcoffset()
            offset = self.offsets[moment // 3600] = int(delta.total_seconds()) if delta else 0
        day, second = divmod(moment + offset, 86_400)
        text_day = self.days.get(day)
        if text_day is None:
            text_day = self.days[day] = f"{datetime.fromtimestamp(day * 86_400, UTC):%d/%m/%Y}"
        hours, rest = divmod(second, 3600)
        return text_day, f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True, slots=True)
class StatementVendor:
    vendor_id: int
    name: str
    iban: str


# One statement line: date, time, terminal, number, operation, amount in cents.
Line = tuple[str, str, int, int, str, int]


def write_statements(session: Session, folder: Path, *, run: SettlementRun, vendors: Iterable[StatementVendor],
                     timezone: str) -> None:
    """`releve-commercant-<vendor>.csv` and `.pdf` for each vendor in `vendors` (those paid)."""
    by_vendor = {vendor.vendor_id: vendor for vendor in vendors}
    clock = LocalClock(ZoneInfo(timezone))
    rows = session.execute(
        text("SELECT i.vendor_id, r.time, r.terminal_id, r.seq, r.kind, i.amount_cents FROM settlement_item i"
             " JOIN transaction_record r ON r.id = i.record_id WHERE i.run_id = :run"
             " ORDER BY i.vendor_id, r.time, r.terminal_id, r.seq"),
        {"run": run.id},
    )
    for vendor_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        vendor = by_vendor.get(vendor_id)
        if vendor is None:
            continue  # netted to zero: nothing paid, no statement
        lines: list[Line] = []
        for _, moment, terminal_id, seq, kind, amount in group:
            day, hour = clock.local(moment)
            lines.append((day, hour, terminal_id, seq, KIND.get(kind, str(kind)), amount))
        stem = folder / f"releve-commercant-{vendor_id}"
        _write_csv(stem.with_suffix(".csv"), run=run, vendor=vendor, lines=lines)
        _write_pdf(stem.with_suffix(".pdf"), run=run, vendor=vendor, lines=lines)


def _title(run: SettlementRun) -> str:
    return f"Relevé du règlement {run.id} du {run.run_date:%d/%m/%Y}"


def _period(lines: list[Line]) -> str:
    return f"Période : opérations du {lines[0][0]} au {lines[-1][0]}" if lines else "Période : aucune opération"


def _write_csv(path: Path, *, run: SettlementRun, vendor: StatementVendor, lines: list[Line]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow([_title(run), vendor.name, vendor.iban])
        writer.writerow(["date", "heure", "terminal", "numéro", "opération", "montant (EUR)"])
        writer.writerows((day, hour, terminal, seq, kind, euros(amount)) for day, hour, terminal, seq, kind, amount in lines)
        writer.writerow(["total", "", "", len(lines), "", euros(sum(line[5] for line in lines))])


_PAGE_TOP_MM, _PAGE_BOTTOM_MM, _LINE_MM, _LEFT_MM = 20.0, 280.0, 4.5, 15.0
_COLUMNS = f"{'Date':<12}{'Heure':<10}{'Terminal':>8}{'Numéro':>9}  {'Opération':<12}{'Montant (EUR)':>14}"


def _pdf_line(day: str, hour: str, terminal: int, seq: int, kind: str, amount_cents: int) -> str:
    return f"{day:<12}{hour:<10}{terminal:>8}{seq:>9}  {kind:<12}{euros(amount_cents):>14}"


def _latin(value: str) -> str:
    """Core PDF fonts cover windows-1252 (French letters, œ, €): anything else becomes '?'."""
    return value.encode("cp1252", "replace").decode("cp1252")


def _write_pdf(path: Path, *, run: SettlementRun, vendor: StatementVendor, lines: list[Line]) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_auto_page_break(False)  # pages are turned by _pdf_rows, line by line
    pdf.set_title(_latin(_title(run)))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=13)
    pdf.text(_LEFT_MM, _PAGE_TOP_MM, _latin(_title(run)))
    pdf.set_font("Helvetica", size=10)
    header = [f"Commerçant : {vendor.name} (n° {vendor.vendor_id})", f"IBAN : {vendor.iban}", _period(lines)]
    for index, value in enumerate(header, start=1):
        pdf.text(_LEFT_MM, _PAGE_TOP_MM + 6 * index, _latin(value))
    pdf.set_font("Courier", size=9)
    y = _PAGE_TOP_MM + 6 * (len(header) + 2)
    _pdf_rows(pdf, lines, y=y)
    total = f"{'Total':<22}{'':>8}{len(lines):>9}  {'opérations':<12}{euros(sum(line[5] for line in lines)):>14}"
    pdf.set_font("Courier", style="B", size=9)
    pdf.text(_LEFT_MM, pdf.get_y(), _latin(total))
    pdf.output(str(path))


def _pdf_rows(pdf: FPDF, lines: list[Line], *, y: float) -> None:
    """Column titles, then one text line per transaction, a new page (with titles) when full.
    Leaves pdf.y on the line after the last one."""
    pdf.text(_LEFT_MM, y, _latin(_COLUMNS))
    y += _LINE_MM * 1.5
    for line in lines:
        if y > _PAGE_BOTTOM_MM:
            pdf.add_page()
            y = _PAGE_TOP_MM
            pdf.text(_LEFT_MM, y, _latin(_COLUMNS))
            y += _LINE_MM * 1.5
        pdf.text(_LEFT_MM, y, _pdf_line(*line))  # ASCII only: digits, '/', ':', ',' and the KIND words
        y += _LINE_MM
    if y > _PAGE_BOTTOM_MM:
        pdf.add_page()
        y = _PAGE_TOP_MM
    pdf.set_y(y + _LINE_MM / 2)


# The run summary ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HeldRecord:
    """An accepted record held for review (caisse.review), as staff see it."""

    record_id: int
    vendor_id: int
    vendor_name: str
    terminal_id: int
    seq: int
    kind: str
    time: int  # unix seconds, as stamped by the terminal
    amount_cents: int
    reason: str


def held_for_review(session: Session, *, vendor_id: int | None = None, before_time: int | None = None,
                    limit: int = 10_000) -> list[HeldRecord]:
    """Records waiting for a person's decision, by vendor then oldest first."""
    record = TransactionRecord
    query = (select(record.id, Terminal.vendor_id, Vendor.name, record.terminal_id, record.seq, record.kind, record.time,
                    record.amount_cents, record.hold_reason)
             .join(Terminal, Terminal.id == record.terminal_id)  # type: ignore[arg-type]
             .join(Vendor, Vendor.id == Terminal.vendor_id)  # type: ignore[arg-type]
             .where(record.review == str(ReviewStatus.HELD)))  # type: ignore[arg-type]
    if vendor_id is not None:
        query = query.where(Terminal.vendor_id == vendor_id)  # type: ignore[arg-type]
    if before_time is not None:
        query = query.where(record.time < before_time)  # type: ignore[arg-type, operator]
    rows = session.execute(query.order_by(Terminal.vendor_id, record.time, record.id).limit(limit)).all()  # type: ignore[arg-type]
    return [HeldRecord(int(r_id), int(v_id), name, int(terminal), int(seq), KIND.get(kind, str(kind)), int(moment),
                       int(amount), reason or "")
            for r_id, v_id, name, terminal, seq, kind, moment, amount, reason in rows]


def write_summary(session: Session, path: Path, *, run: SettlementRun, timezone: str, differences: list[str]) -> None:
    lines = session.execute(
        select(SettlementLine.vendor_id, Vendor.name, SettlementLine.status, SettlementLine.record_count,
               SettlementLine.amount_cents, SettlementLine.reason)
        .join(Vendor, Vendor.id == SettlementLine.vendor_id)  # type: ignore[arg-type]
        .where(SettlementLine.run_id == run.id)  # type: ignore[arg-type]
        .order_by(SettlementLine.status.desc(), SettlementLine.vendor_id)  # type: ignore[union-attr, attr-defined]
    ).all()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow([f"Règlement {run.id} du {run.run_date:%d/%m/%Y}", f"préparé par {run.prepared_by}",
                         f"approuvé par {run.approved_by}"])
        writer.writerow(["commerçant", "nom", "statut", "opérations", "montant (EUR)", "motif"])
        for vendor_id, name, status, count, amount, reason in lines:
            writer.writerow([vendor_id, name, "payé" if status == PAID else "retenu", count, euros(amount), reason or ""])
        paid = [line for line in lines if line[2] == PAID]
        writer.writerow(["total payé", "", "", sum(line[3] for line in paid), euros(sum(line[4] for line in paid)), ""])
        _write_held_records(writer, held_for_review(session, before_time=run.cutoff_time), timezone=timezone)
        if differences:
            writer.writerow([])
            writer.writerow(["Écarts entre les comptes des commerçants et leurs enregistrements (à examiner : caisse verify)"])
            writer.writerows([difference] for difference in differences)


def _write_held_records(writer: Any, held: list[HeldRecord], *, timezone: str) -> None:
    """Each record held for review, per vendor: `caisse review release|reject <enregistrement>`."""
    if not held:
        return
    clock = LocalClock(ZoneInfo(timezone))
    writer.writerow([])
    writer.writerow(["Paiements retenus pour vérification (caisse review release|reject <enregistrement>)"])
    writer.writerow(["commerçant", "nom", "enregistrement", "date", "heure", "terminal", "numéro", "opération",
                     "montant (EUR)", "motif"])
    for record in held:
        day, hour = clock.local(record.time)
        writer.writerow([record.vendor_id, record.vendor_name, record.record_id, day, hour, record.terminal_id,
                         record.seq, record.kind, euros(record.amount_cents), record.reason])
