"""The files people read after a settlement run (docs/settlement.md), all in French:

- one statement per vendor paid, as CSV (semicolons, decimal commas, UTF-8 with a byte order
  mark: what a French Excel opens as is) and as PDF (to print or mail): the vendor, the period,
  each transaction (date, time, terminal, number, operation, amount), a total per day, the
  transfers the bank returned that this run pays again, the total, and the vendor's records still
  held for review;
- the run summary `resume.csv`: every vendor paid or held back with the reason, the total paid,
  then each record held for review, so the person deciding knows what to look at, then every
  vendor account that disagrees with its records (caisse.settlement.runs.payable_differences).

No CSV cell can run as a formula: a text starting with = + - @ or a tab/CR gets a leading
apostrophe (OWASP "CSV injection"); amounts keep their sign. Long names wrap in the PDF.

Written from the run's items in one pass ordered by vendor (one query, not one per vendor). The
PDF draws one line of a monospaced core font per transaction: a cell per column costs ~160 µs a
line in fpdf2, too slow for a million records; a line of text ~5 µs.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import itertools
import multiprocessing
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlmodel import Session

from caisse.db import is_postgresql
from caisse.models import BankReturn, LineStatus, ReviewStatus, SettlementLine, SettlementRun, Terminal, TransactionRecord, Vendor
from caisse.money import euros
from caisse_common.protocol import Kind

if TYPE_CHECKING:
    from fpdf import FPDF

KIND: dict[int, str] = {Kind.PAYMENT: "paiement", Kind.VOID: "annulation"}  # the operation, in French


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


class Line(NamedTuple):
    """One statement line, in its columns' order."""
    day: str
    hour: str
    terminal_id: int
    seq: int
    kind: str  # the operation, in French
    amount_cents: int


class Repaid(NamedTuple):
    """A transfer the bank returned that this run pays again."""
    payment_id: str
    reason: str
    amount_cents: int


# Runs with at least this many records render their statements in worker processes, one per
# core: starting them (an interpreter importing fpdf2) costs more than it saves on a small run.
PARALLEL_FROM_RECORDS = 100_000
# Statements handed to the workers and not written yet: bounds the memory of a large run.
_IN_FLIGHT = 64


@dataclass(frozen=True, slots=True)
class RunHeading:
    """What a statement says of its run (a picklable stand-in for the SettlementRun row)."""

    id: int
    run_date: date


# One item of a statement as read: unix time, terminal, number, record kind, amount in cents. A
# plain tuple from the driver's cursor, unpacked by name once into a Line (_render_statement).
Item = tuple[int, int, int, int, int]


def write_statements(session: Session, folder: Path, *, run: SettlementRun, vendors: Iterable[StatementVendor],
                     timezone: str) -> None:
    """`releve-commercant-<vendor>.csv` and `.pdf` for each vendor in `vendors` (those paid).

    Three reads for the whole run (its items streamed in vendor order, the transfers it pays
    again, the records held for review); each vendor's files are then rendered from plain tuples,
    in worker processes when the run is large (the same bytes either way)."""
    by_vendor = {vendor.vendor_id: vendor for vendor in vendors}
    assert run.id is not None
    heading = RunHeading(run.id, run.run_date)
    repaid = _repaid_by_vendor(session, run_id=run.id)
    held = _held_by_vendor(session, before_time=run.cutoff_time)
    with _renderer(parallel=_record_count(session, run_id=run.id) >= PARALLEL_FROM_RECORDS) as render:
        for vendor_id, items in _items_by_vendor(session, run_id=run.id):
            vendor = by_vendor.pop(vendor_id, None)
            if vendor is not None:  # else netted to zero: nothing paid, no statement
                render(folder, heading, vendor, items, repaid.get(vendor_id, []), held.get(vendor_id, []), timezone)
        for vendor in by_vendor.values():  # paid only transfers the bank returned: no record in this run
            render(folder, heading, vendor, [], repaid.get(vendor.vendor_id, []), held.get(vendor.vendor_id, []), timezone)


def _render_statement(folder: Path, heading: RunHeading, vendor: StatementVendor, items: list[Item],
                      repaid: list[Repaid], held: list[HeldRecord], timezone: str) -> None:
    """One vendor's CSV and PDF. Module-level and fed plain values: it runs in worker processes."""
    clock = LocalClock(ZoneInfo(timezone))
    local = clock.local
    lines = [Line(*local(moment), terminal_id, seq, KIND.get(kind, str(kind)), amount)
                         for moment, terminal_id, seq, kind, amount in items]
    statement = Statement(run=heading, vendor=vendor, lines=lines, repaid=repaid, held=held)
    stem = folder / f"releve-commercant-{vendor.vendor_id}"
    _write_csv(stem.with_suffix(".csv"), statement, clock=clock)
    _write_pdf(stem.with_suffix(".pdf"), statement, clock=clock)


@contextlib.contextmanager
def _renderer(*, parallel: bool) -> Iterator[Callable[..., None]]:
    """_render_statement, called here or handed to a pool of worker processes (one per core).
    Leaving the block waits for every statement; a worker's error is raised here."""
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not parallel or workers < 2:
        yield _render_statement
        return
    try:  # spawn: a fresh interpreter, never a fork of a process that may hold threads and connections
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    except OSError:  # no POSIX semaphores here (a locked-down container): the statements still get written
        yield _render_statement
        return
    pending: collections.deque[Future[None]] = collections.deque()

    def submit(*args: Any) -> None:
        pending.append(pool.submit(_render_statement, *args))
        while len(pending) > _IN_FLIGHT:
            pending.popleft().result()

    try:
        yield submit
        while pending:
            pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the statements not started are dropped


def _record_count(session: Session, *, run_id: int) -> int:
    return int(session.execute(select(func.coalesce(func.sum(SettlementLine.record_count), 0))
                               .where(SettlementLine.run_id == run_id)).scalar_one())  # type: ignore[arg-type]


_ITEMS_SQL = ("SELECT i.vendor_id, r.time, r.terminal_id, r.seq, r.kind, i.amount_cents FROM settlement_item i"
              " JOIN transaction_record r ON r.id = i.record_id WHERE i.run_id = {run}"
              " ORDER BY i.vendor_id, r.time, r.terminal_id, r.seq")


def _items_by_vendor(session: Session, *, run_id: int) -> Iterator[tuple[int, list[Item]]]:
    """(vendor id, its items in statement order), vendor by vendor: the run's items streamed from
    the driver's cursor as plain tuples (a million rows as SQLAlchemy rows cost seconds)."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    if is_postgresql(session):
        cursor = driver.cursor(name="statement_items")  # server side: the rows come as they are read
        cursor.itersize = 10_000
        cursor.execute(_ITEMS_SQL.format(run="%s"), (run_id,))
    else:
        cursor = driver.cursor()
        cursor.execute(_ITEMS_SQL.format(run="?"), (run_id,))
    try:
        for vendor_id, rows in itertools.groupby(cursor, key=operator.itemgetter(0)):
            yield vendor_id, [row[1:] for row in rows]
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class Statement:
    run: RunHeading
    vendor: StatementVendor
    lines: list[Line]
    repaid: list[Repaid]
    held: list[HeldRecord]

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines) + sum(repaid.amount_cents for repaid in self.repaid)

    def days(self) -> Iterator[tuple[str, list[Line]]]:
        """The lines grouped by local day, in order."""
        for day, group in itertools.groupby(self.lines, key=operator.attrgetter("day")):
            yield day, list(group)


def _repaid_by_vendor(session: Session, *, run_id: int) -> dict[int, list[Repaid]]:
    """Per vendor, the transfers the bank returned that this run pays again, in the order received."""
    repaid: dict[int, list[Repaid]] = {}
    for vendor_id, payment_id, reason, cents in session.execute(
        select(BankReturn.vendor_id, BankReturn.payment_id, BankReturn.reason, BankReturn.amount_cents)  # type: ignore[call-overload]
        .where(BankReturn.repaid_run_id == run_id).order_by(BankReturn.id)  # type: ignore[arg-type]
    ):
        repaid.setdefault(vendor_id, []).append(Repaid(payment_id, reason, int(cents)))
    return repaid


def _title(run: RunHeading | SettlementRun) -> str:
    return f"Relevé du règlement {run.id} du {run.run_date:%d/%m/%Y}"


def _period(lines: list[Line]) -> str:
    return f"Période : opérations du {lines[0].day} au {lines[-1].day}" if lines else "Période : aucune opération"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_AMOUNT = re.compile(r"^-?\d+,\d\d$")


def safe_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs: a text that a spreadsheet would read as a
    formula gets a leading apostrophe; an amount such as -12,50 stays a number."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _AMOUNT.match(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer for people's spreadsheets: semicolons, and every cell through safe_cell."""

    def __init__(self, handle: Any) -> None:
        self._writer = csv.writer(handle, delimiter=";")

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)

    def writerows_unchecked(self, rows: Iterable[Iterable[object]]) -> None:
        """Rows whose cells the caller made safe: written in bulk by the csv module."""
        self._writer.writerows(rows)


def open_spreadsheet(path: Path) -> Any:
    """UTF-8 with a byte order mark: without it Excel reads the accents as windows-1252."""
    return path.open("w", newline="", encoding="utf-8-sig")


def _write_csv(path: Path, statement: Statement, *, clock: LocalClock) -> None:
    with open_spreadsheet(path) as handle:
        writer = SafeWriter(handle)
        writer.writerow([_title(statement.run), statement.vendor.name, statement.vendor.iban])
        writer.writerow(["date", "heure", "terminal", "numéro", "opération", "montant (EUR)"])
        for day, lines in statement.days():
            # Straight to csv.writer: dates, hours, numbers and amounts (matching _AMOUNT) never
            # need safe_cell's apostrophe; only the operation could, for an unknown kind.
            writer.writerows_unchecked((d, hour, terminal, seq, safe_cell(kind), euros(amount))
                                       for d, hour, terminal, seq, kind, amount in lines)
            writer.writerow([f"total du {day}", "", "", len(lines), "", euros(sum(line.amount_cents for line in lines))])
        for payment_id, reason, cents in statement.repaid:
            writer.writerow([f"virement {payment_id} retourné par la banque ({reason}), payé à nouveau", "", "", "", "",
                             euros(cents)])
        writer.writerow(["total", "", "", len(statement.lines), "", euros(statement.total_cents)])
        if statement.held:
            writer.writerow([])
            writer.writerow(["Paiements retenus pour vérification (non payés par ce règlement)"])
            writer.writerow(["date", "heure", "terminal", "numéro", "opération", "montant (EUR)", "motif"])
            for record in statement.held:
                day, hour = clock.local(record.time)
                writer.writerow([day, hour, record.terminal_id, record.seq, record.kind, euros(record.amount_cents),
                                 record.reason])


_PAGE_TOP_MM, _PAGE_BOTTOM_MM, _LINE_MM, _LEFT_MM = 20.0, 280.0, 4.5, 15.0
_COLUMNS = f"{'Date':<12}{'Heure':<10}{'Terminal':>8}{'Numéro':>9}  {'Opération':<12}{'Montant (EUR)':>14}"


def _pdf_line(day: str, hour: str, terminal: int, seq: int, kind: str, amount_cents: int) -> str:
    return f"{day:<12}{hour:<10}{terminal:>8}{seq:>9}  {kind:<12}{euros(amount_cents):>14}"


def _latin(value: str) -> str:
    """Core PDF fonts cover windows-1252 (French letters, œ, €): anything else becomes '?'."""
    return value.encode("cp1252", "replace").decode("cp1252")


_TEXT_WIDTH_MM = 180.0


def _write_pdf(path: Path, statement: Statement, *, clock: LocalClock) -> None:
    from fpdf import FPDF

    run, vendor, lines = statement.run, statement.vendor, statement.lines
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_auto_page_break(False)  # pages are turned by _pdf_rows, line by line
    pdf.set_title(_latin(_title(run)))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=13)
    pdf.text(_LEFT_MM, _PAGE_TOP_MM, _latin(_title(run)))
    pdf.set_font("Helvetica", size=10)
    y = _PAGE_TOP_MM
    for value in (f"Commerçant : {vendor.name} (n° {vendor.vendor_id})", f"IBAN : {vendor.iban}", _period(lines)):
        for part in _wrap(pdf, _latin(value)):  # a long name on several lines, never past the margin
            y += 6
            pdf.text(_LEFT_MM, y, part)
    pdf.set_font("Courier", size=9)
    rows: list[tuple[str, bool]] = []
    for day, group in statement.days():
        rows.extend((_pdf_line(*line), False) for line in group)
        rows.append((f"{'Total du ' + day:<22}{'':>8}{len(group):>9}  {'opérations':<12}"
                     f"{euros(sum(line.amount_cents for line in group)):>14}", True))
    for payment_id, _, cents in statement.repaid:
        rows.append((f"{'Virement ' + payment_id + ' retourné, payé à nouveau':<57}{euros(cents):>14}", True))
    _pdf_rows(pdf, rows, y=y + 12)
    total = f"{'Total':<22}{'':>8}{len(lines):>9}  {'opérations':<12}{euros(statement.total_cents):>14}"
    pdf.set_font("Courier", style="B", size=9)
    pdf.text(_LEFT_MM, pdf.get_y(), _latin(total))
    if statement.held:
        _pdf_held(pdf, statement.held, clock=clock)
    pdf.output(str(path))


def _wrap(pdf: FPDF, value: str) -> list[str]:
    """`value` cut between words (inside a word longer than a line) into lines that fit the text width."""
    lines: list[str] = []
    current = ""
    for word in value.split(" "):
        candidate = f"{current} {word}" if current else word
        if pdf.get_string_width(candidate) <= _TEXT_WIDTH_MM:
            current = candidate
            continue
        if current:
            lines.append(current)
        while pdf.get_string_width(word) > _TEXT_WIDTH_MM:
            cut = next(i for i in range(len(word) - 1, 0, -1) if pdf.get_string_width(word[:i]) <= _TEXT_WIDTH_MM)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    return [*lines, current]


def _pdf_held(pdf: FPDF, held: list[HeldRecord], *, clock: LocalClock) -> None:
    """The vendor's records held for review: not paid by this run, listed so the vendor knows."""
    pdf.set_font("Helvetica", style="B", size=10)
    y = pdf.get_y() + _LINE_MM * 2
    if y > _PAGE_BOTTOM_MM - 3 * _LINE_MM:
        pdf.add_page()
        y = _PAGE_TOP_MM
    pdf.text(_LEFT_MM, y, _latin("Paiements retenus pour vérification (non payés par ce règlement)"))
    pdf.set_font("Courier", size=9)
    rows: list[tuple[str, bool]] = []
    for record in held:
        day, hour = clock.local(record.time)
        rows.append((_pdf_line(day, hour, record.terminal_id, record.seq, record.kind, record.amount_cents), False))
        rows.extend((_latin(f"    {part}"), False) for part in _wrap(pdf, record.reason))
    _pdf_rows(pdf, rows, y=y + _LINE_MM * 1.5)


def _pdf_rows(pdf: FPDF, rows: list[tuple[str, bool]], *, y: float) -> None:
    """Column titles, then one text line per row (bold when flagged: the totals), a new page (with
    titles) when full. Leaves pdf.y on the line after the last one.

    A plain row is written straight into the page's content, as pdf.text() would write it in the
    font the titles selected (the same bytes: tests/backend/settlement/test_statements.py compares them):
    fpdf2's text() checks its state and converts the string on every call, ~6 µs a line, which
    is seconds for a million statement lines."""
    plain = _plain_text_applies(pdf)
    left_pt, scale, height = _LEFT_MM * pdf.k, pdf.k, pdf.h
    starts: dict[float, bytes] = {}  # "BT x y Td (" by y: every page repeats the same heights
    pdf.text(_LEFT_MM, y, _latin(_COLUMNS))  # also selects the font on the page
    contents = _page_content(pdf)
    y += _LINE_MM * 1.5
    for row, bold in rows:
        if y > _PAGE_BOTTOM_MM:
            pdf.add_page()
            y = _PAGE_TOP_MM
            pdf.text(_LEFT_MM, y, _latin(_COLUMNS))
            contents = _page_content(pdf)
            y += _LINE_MM * 1.5
        if bold:
            pdf.set_font("Courier", style="B", size=9)
            pdf.text(_LEFT_MM, y, _latin(row))
            pdf.set_font("Courier", size=9)
        elif plain:
            text = row.encode("cp1252")
            if b"(" in text or b")" in text or b"\\" in text or b"\r" in text:  # as fpdf2's escape_parens
                text = text.replace(b"\\", b"\\\\").replace(b")", b"\\)").replace(b"(", b"\\(").replace(b"\r", b"\\r")
            start = starts.get(y)
            if start is None:
                start = starts[y] = b"BT %.2f %.2f Td (" % (left_pt, (height - y) * scale)
            contents += start + text + b") Tj ET\n"
        else:
            pdf.text(_LEFT_MM, y, row)  # ASCII or already windows-1252: digits, '/', ':', ',', the KIND words
        y += _LINE_MM
    if y > _PAGE_BOTTOM_MM:
        pdf.add_page()
        y = _PAGE_TOP_MM
    pdf.set_y(y + _LINE_MM / 2)


def _page_content(pdf: FPDF) -> bytearray:
    """The current page's content, to extend in place (a throwaway when fpdf2 keeps another type:
    _plain_text_applies is then false and nothing is written into it)."""
    contents = pdf.pages[pdf.page].contents
    return contents if isinstance(contents, bytearray) else bytearray()


def _plain_text_applies(pdf: FPDF) -> bool:
    """Whether pdf.text() would write nothing but the text itself: no text mode, decoration or
    colour change, and a page content that can be extended in place (fpdf2 keeps a bytearray)."""
    from fpdf.enums import TextMode

    return (pdf.text_mode == TextMode.FILL and not pdf.underline and not pdf.strikethrough
            and not pdf._record_text_quad_points and pdf.fill_color == pdf.text_color  # noqa: SLF001
            and isinstance(pdf.pages[pdf.page].contents, bytearray))


# The run summary ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HeldRecord:
    """An accepted record held for review (caisse.ingest.review), as staff see it."""

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
    query = _held_query(before_time=before_time)
    if vendor_id is not None:
        query = query.where(Terminal.vendor_id == vendor_id)  # type: ignore[arg-type]
    return [_held_record(row) for row in session.execute(query.limit(limit))]


def _held_by_vendor(session: Session, *, before_time: int, limit: int = 10_000) -> dict[int, list[HeldRecord]]:
    """held_for_review of every vendor at once (one query, not one per vendor), `limit` each."""
    held: dict[int, list[HeldRecord]] = {}
    for row in session.execute(_held_query(before_time=before_time)):
        records = held.setdefault(int(row.vendor_id), [])
        if len(records) < limit:
            records.append(_held_record(row))
    return held


def _held_query(*, before_time: int | None) -> Select[Any]:
    record = TransactionRecord
    query = (select(record.id, Terminal.vendor_id, Vendor.name, record.terminal_id, record.seq, record.kind, record.time,
                    record.amount_cents, record.hold_reason)
             .join(Terminal, Terminal.id == record.terminal_id)  # type: ignore[arg-type]
             .join(Vendor, Vendor.id == Terminal.vendor_id)  # type: ignore[arg-type]
             .where(record.review == str(ReviewStatus.HELD)))  # type: ignore[arg-type]
    if before_time is not None:
        query = query.where(record.time < before_time)  # type: ignore[arg-type, operator]
    return query.order_by(Terminal.vendor_id, record.time, record.id)  # type: ignore[arg-type]


def _held_record(row: Any) -> HeldRecord:
    r_id, v_id, name, terminal, seq, kind, moment, amount, reason = row
    return HeldRecord(int(r_id), int(v_id), name, int(terminal), int(seq), KIND.get(kind, str(kind)), int(moment),
                      int(amount), reason or "")


def write_summary(session: Session, path: Path, *, run: SettlementRun, timezone: str, differences: list[str]) -> None:
    lines = session.execute(
        select(SettlementLine.vendor_id, Vendor.name, SettlementLine.status, SettlementLine.record_count,
               SettlementLine.amount_cents, SettlementLine.reason)
        .join(Vendor, Vendor.id == SettlementLine.vendor_id)  # type: ignore[arg-type]
        .where(SettlementLine.run_id == run.id)  # type: ignore[arg-type]
        .order_by(SettlementLine.status.desc(), SettlementLine.vendor_id)  # type: ignore[union-attr, attr-defined]
    ).all()
    with open_spreadsheet(path) as handle:
        writer = SafeWriter(handle)
        writer.writerow([f"Règlement {run.id} du {run.run_date:%d/%m/%Y}", f"préparé par {run.prepared_by}",
                         f"approuvé par {run.approved_by}"])
        writer.writerow(["commerçant", "nom", "statut", "opérations", "montant (EUR)", "motif"])
        for vendor_id, name, status, count, amount, reason in lines:
            writer.writerow([vendor_id, name, "payé" if status == LineStatus.PAID else "retenu", count, euros(amount), reason or ""])
        paid = [line for line in lines if line.status == LineStatus.PAID]
        writer.writerow(["total payé", "", "", sum(line.record_count for line in paid),
                         euros(sum(line.amount_cents for line in paid)), ""])
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
