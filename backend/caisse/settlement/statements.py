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
line in fpdf2, too slow for a million records. Each line is one f-string for the PDF and one for the
CSV, from the texts of its time and of its amount kept per process (_Texts), and a PDF page's
plain lines go into its content in one join (_pdf_rows): about 1 µs a line for both files.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import itertools
import multiprocessing
import operator
import os
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlmodel import Session, col

from caisse.db import is_postgresql, table_of
from caisse.models import BankReturn, LineStatus, ReviewStatus, SettlementLine, SettlementRun, Terminal, TransactionRecord, Vendor
from caisse.money import euros
from caisse_common.protocol import Kind

if TYPE_CHECKING:
    from fpdf import FPDF

_T = TypeVar("_T")

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


class Day(NamedTuple):
    """One local day of a statement: its lines as the PDF and the CSV write them (in the columns
    date, time, terminal, number, operation, amount), and their sum in cents."""
    day: str
    pdf: list[str]
    csv: list[str]
    cents: int


class Repaid(NamedTuple):
    """A transfer the bank returned that this run pays again."""
    payment_id: str
    reason: str
    amount_cents: int


# Runs with at least this many records render their statements in worker processes, one per
# core: starting them (an interpreter importing fpdf2 and the models) costs more than it saves on
# a small run, even one of a thousand statements (10 000 records: 4.9 s in one process, 12.2 s
# with two workers starting on a loaded machine).
PARALLEL_FROM_RECORDS = 100_000
# Vendors go to the workers in batches of about this many records (one message per batch, not one
# per vendor), at most _IN_FLIGHT batches not written yet: bounds the memory of a large run.
_BATCH_RECORDS = 20_000
_IN_FLIGHT = 8


@dataclass(frozen=True, slots=True)
class RunHeading:
    """What a statement says of its run (a picklable stand-in for the SettlementRun row)."""

    id: int
    run_date: date


# The items of a vendor's statement as read (_ITEMS_SQL), one after the other in a flat array of
# 64-bit integers, _ITEM_FIELDS each: vendor, unix time, terminal, number, record kind, amount in
# cents. A worker receives them as one block of bytes (pickling a million tuples costs seconds).
_ITEM_FIELDS = 6
# One vendor's statement as handed to a worker: the vendor, its items, what is paid again, what is held.
_StatementInput = tuple[StatementVendor, "array[int]", list[Repaid], list["HeldRecord"]]


def write_statements(session: Session, folder: Path, *, run: SettlementRun, vendors: Iterable[StatementVendor],
                     timezone: str, jobs: Jobs | None = None) -> None:
    """`releve-commercant-<vendor>.csv` and `.pdf` for each vendor in `vendors` (those paid), all
    written when this returns.

    Three reads for the whole run (its items streamed in vendor order, the transfers it pays
    again, the records held for review); the vendors' files are then rendered from plain tuples,
    by `jobs` (by default worker processes when the run is large; the same bytes either way)."""
    by_vendor = {vendor.vendor_id: vendor for vendor in vendors}
    assert run.id is not None
    heading = RunHeading(run.id, run.run_date)
    repaid = _repaid_by_vendor(session, run_id=run.id)
    held = _held_by_vendor(session, before_time=run.cutoff_time)
    with contextlib.ExitStack() as stack:
        if jobs is None:
            jobs = stack.enter_context(worker_pool(parallel=is_large(session, run_id=run.id)))
        pending: collections.deque[Future[None]] = collections.deque()
        batch: list[_StatementInput] = []
        records = 0
        for vendor_id, items in _items_by_vendor(session, run_id=run.id):
            vendor = by_vendor.pop(vendor_id, None)
            if vendor is None:  # netted to zero: nothing paid, no statement
                continue
            batch.append((vendor, items, repaid.get(vendor_id, []), held.get(vendor_id, [])))
            records += len(items) // _ITEM_FIELDS
            if records >= _BATCH_RECORDS:
                pending.append(jobs.submit(_render_statements, folder, heading, timezone, batch))
                batch, records = [], 0
                while len(pending) > _IN_FLIGHT:
                    pending.popleft().result()
        for vendor in by_vendor.values():  # paid only transfers the bank returned: no record in this run
            batch.append((vendor, array("q"), repaid.get(vendor.vendor_id, []), held.get(vendor.vendor_id, [])))
        pending.append(jobs.submit(_render_statements, folder, heading, timezone, batch))
        while pending:
            pending.popleft().result()


def _render_statements(folder: Path, heading: RunHeading, timezone: str, statements: list[_StatementInput]) -> None:
    """Each vendor's CSV and PDF. Module-level and fed plain values: it runs in worker processes."""
    texts = _texts(timezone)
    for vendor, items, repaid, held in statements:
        statement = Statement(run=heading, vendor=vendor, days=_days(items, texts), repaid=repaid, held=held)
        stem = folder / f"releve-commercant-{vendor.vendor_id}"
        _write_csv(stem.with_suffix(".csv"), statement, clock=texts.clock)
        _write_pdf(stem.with_suffix(".pdf"), statement, clock=texts.clock)


class _Texts:
    """The texts of a record's local time and of its operation and amount, as the statements'
    lines write them, kept per process: a night's million lines share some 50 000 seconds and a
    few thousand amounts, so a line costs two dictionary lookups and two f-strings."""

    _MOST = 500_000  # entries kept, then started afresh: bounds a long-lived process's memory

    def __init__(self, timezone: str) -> None:
        self.clock = LocalClock(ZoneInfo(timezone))
        self.moments: dict[int, tuple[str, str, str]] = {}
        self.amounts: dict[tuple[int, int], tuple[str, str]] = {}

    def moment(self, moment: int) -> tuple[str, str, str]:
        """(local day, the PDF line's date and time columns, the CSV line's date and time cells)."""
        if len(self.moments) >= self._MOST:
            self.moments.clear()
        day, hour = self.clock.local(moment)
        found = self.moments[moment] = (day, f"{day:<12}{hour:<10}", _csv_cells(day, hour))
        return found

    def amount(self, kind: int, cents: int) -> tuple[str, str]:
        """(the PDF line's operation and amount columns, the CSV line's operation and amount cells
        and its end). Only the operation could need safe_cell's apostrophe, for an unknown kind."""
        if len(self.amounts) >= self._MOST:
            self.amounts.clear()
        name = KIND.get(kind, str(kind))
        found = self.amounts[kind, cents] = (f"{name:<12}{euros(cents):>14}",
                                             _csv_cells(safe_cell(name), euros(cents))[:-1] + "\r\n")
        return found


_TEXTS: dict[str, _Texts] = {}


def _texts(timezone: str) -> _Texts:
    texts = _TEXTS.get(timezone)
    if texts is None:
        texts = _TEXTS[timezone] = _Texts(timezone)
    return texts


def _csv_cells(*cells: object) -> str:
    """`cells` as csv.writer writes them in a statement's row (quoted where it must), then `;`."""
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="").writerow(cells)
    return out.getvalue() + ";"


def _days(items: array[int], texts: _Texts) -> list[Day]:
    """The items' lines, grouped by local day in the order read (time order)."""
    moments, amounts = texts.moments, texts.amounts
    days: list[Day] = []
    day, cents = "", 0
    pdf: list[str] = []
    csv_lines: list[str] = []
    fields = iter(items)
    for _, moment, terminal_id, seq, kind, amount in zip(*[fields] * _ITEM_FIELDS, strict=True):
        when = moments.get(moment) or texts.moment(moment)
        what = amounts.get((kind, amount)) or texts.amount(kind, amount)
        if when[0] != day:
            if pdf:
                days.append(Day(day, pdf, csv_lines, cents))
            day, pdf, csv_lines, cents = when[0], [], [], 0
        pdf.append(f"{when[1]}{terminal_id:>8}{seq:>9}  {what[0]}")
        csv_lines.append(f"{when[2]}{terminal_id};{seq};{what[1]}")
        cents += amount
    if pdf:
        days.append(Day(day, pdf, csv_lines, cents))
    return days


class Jobs:
    """Runs work here, at once, or in a pool of worker processes (worker_pool)."""

    def __init__(self, pool: ProcessPoolExecutor | None) -> None:
        self._pool = pool

    def submit(self, function: Callable[..., _T], *args: Any) -> Future[_T]:
        if self._pool is not None:
            return self._pool.submit(function, *args)
        done: Future[_T] = Future()
        done.set_result(function(*args))
        return done


@contextlib.contextmanager
def worker_pool(*, parallel: bool) -> Iterator[Jobs]:
    """Jobs run in a pool of worker processes (one per core) when `parallel`, here otherwise.
    Leaving the block after an error drops the work not started."""
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not parallel or workers < 2:
        yield Jobs(None)
        return
    try:  # spawn: a fresh interpreter, never a fork of a process that may hold threads and connections
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    except OSError:  # no POSIX semaphores here (a locked-down container): the statements still get written
        yield Jobs(None)
        return
    try:
        yield Jobs(pool)
    finally:
        pool.shutdown(cancel_futures=True)


def is_large(session: Session, *, run_id: int) -> bool:
    """Whether a run's files are worth writing in worker processes (PARALLEL_FROM_RECORDS)."""
    line = table_of(SettlementLine)
    records = session.execute(select(func.coalesce(func.sum(line.c.record_count), 0)).where(line.c.run_id == run_id)).scalar_one()
    return int(records) >= PARALLEL_FROM_RECORDS


_ITEMS_SQL = ("SELECT i.vendor_id, r.time, r.terminal_id, r.seq, r.kind, i.amount_cents FROM settlement_item i"
              " JOIN transaction_record r ON r.id = i.record_id WHERE i.run_id = {run}"
              " ORDER BY i.vendor_id, r.time, r.terminal_id, r.seq")


def _items_by_vendor(session: Session, *, run_id: int) -> Iterator[tuple[int, array[int]]]:
    """(vendor id, its items in statement order), vendor by vendor: the run's items streamed from
    the driver's cursor, 10 000 rows a fetch, straight into arrays."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    if is_postgresql(session):
        # The sort of a million items in memory, not in files: 64 MB here, for this transaction only.
        driver.execute("SET LOCAL work_mem = '256MB'")
        cursor = driver.cursor(name="statement_items")  # server side: the rows come as they are read
        cursor.itersize = 10_000
        cursor.execute(_ITEMS_SQL.format(run="%s"), (run_id,))
    else:
        cursor = driver.cursor()
        cursor.execute(_ITEMS_SQL.format(run="?"), (run_id,))
    try:
        rows = itertools.chain.from_iterable(iter(lambda: cursor.fetchmany(10_000), []))
        for vendor_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            yield vendor_id, array("q", itertools.chain.from_iterable(group))
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class Statement:
    run: RunHeading
    vendor: StatementVendor
    days: list[Day]
    repaid: list[Repaid]
    held: list[HeldRecord]

    @property
    def count(self) -> int:
        return sum(len(day.pdf) for day in self.days)

    @property
    def total_cents(self) -> int:
        return sum(day.cents for day in self.days) + sum(repaid.amount_cents for repaid in self.repaid)


def _repaid_by_vendor(session: Session, *, run_id: int) -> dict[int, list[Repaid]]:
    """Per vendor, the transfers the bank returned that this run pays again, in the order received."""
    repaid: dict[int, list[Repaid]] = {}
    for vendor_id, payment_id, reason, cents in session.execute(
        select(col(BankReturn.vendor_id), col(BankReturn.payment_id), col(BankReturn.reason), col(BankReturn.amount_cents))
        .where(col(BankReturn.repaid_run_id) == run_id).order_by(col(BankReturn.id))
    ):
        repaid.setdefault(vendor_id, []).append(Repaid(payment_id, reason, int(cents)))
    return repaid


def _title(run: RunHeading | SettlementRun) -> str:
    return f"Relevé du règlement {run.id} du {run.run_date:%d/%m/%Y}"


def _period(days: list[Day]) -> str:
    return f"Période : opérations du {days[0].day} au {days[-1].day}" if days else "Période : aucune opération"


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
        for day in statement.days:
            handle.write("".join(day.csv))  # the lines as csv.writer writes them (_Texts)
            writer.writerow([f"total du {day.day}", "", "", len(day.csv), "", euros(day.cents)])
        for payment_id, reason, cents in statement.repaid:
            writer.writerow([f"virement {payment_id} retourné par la banque ({reason}), payé à nouveau", "", "", "", "",
                             euros(cents)])
        writer.writerow(["total", "", "", statement.count, "", euros(statement.total_cents)])
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

    run, vendor = statement.run, statement.vendor
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_auto_page_break(False)  # pages are turned by _pdf_rows, line by line
    pdf.set_title(_latin(_title(run)))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=13)
    pdf.text(_LEFT_MM, _PAGE_TOP_MM, _latin(_title(run)))
    pdf.set_font("Helvetica", size=10)
    y = _PAGE_TOP_MM
    for value in (f"Commerçant : {vendor.name} (n° {vendor.vendor_id})", f"IBAN : {vendor.iban}", _period(statement.days)):
        for part in _wrap(pdf, _latin(value)):  # a long name on several lines, never past the margin
            y += 6
            pdf.text(_LEFT_MM, y, part)
    pdf.set_font("Courier", size=9)
    blocks: list[tuple[list[str], bool]] = []
    for day in statement.days:
        blocks.append((day.pdf, False))
        blocks.append(([f"{'Total du ' + day.day:<22}{'':>8}{len(day.pdf):>9}  {'opérations':<12}{euros(day.cents):>14}"], True))
    blocks.append(([f"{'Virement ' + payment_id + ' retourné, payé à nouveau':<57}{euros(cents):>14}"
                    for payment_id, _, cents in statement.repaid], True))
    _pdf_rows(pdf, blocks, y=y + 12)
    total = f"{'Total':<22}{'':>8}{statement.count:>9}  {'opérations':<12}{euros(statement.total_cents):>14}"
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
    rows: list[str] = []
    for record in held:
        day, hour = clock.local(record.time)
        rows.append(_pdf_line(day, hour, record.terminal_id, record.seq, record.kind, record.amount_cents))
        rows.extend(_latin(f"    {part}") for part in _wrap(pdf, record.reason))
    _pdf_rows(pdf, [(rows, False)], y=y + _LINE_MM * 1.5)


def _pdf_rows(pdf: FPDF, blocks: list[tuple[list[str], bool]], *, y: float) -> None:
    """Column titles, then one text line per row (bold for the blocks flagged: the totals), a new
    page (with titles) when full. Leaves pdf.y on the line after the last one.

    The plain rows that fit on a page are written straight into its content, in one join, as
    pdf.text() would write them in the font the titles selected (the same bytes:
    tests/backend/settlement/test_statements.py compares them): fpdf2's text() checks its state
    and converts the string on every call, ~6 µs a line, which is seconds for a million lines."""
    plain = _plain_text_applies(pdf)
    pdf.text(_LEFT_MM, y, _latin(_COLUMNS))  # also selects the font on the page
    contents = _page_content(pdf)
    heights, starts = _slots(pdf, y + _LINE_MM * 1.5)
    slot = 0
    for rows, bold in blocks:
        done = 0
        while done < len(rows):
            if slot == len(heights):  # the page is full
                pdf.add_page()
                pdf.text(_LEFT_MM, _PAGE_TOP_MM, _latin(_COLUMNS))
                contents = _page_content(pdf)
                heights, starts = _slots(pdf, _PAGE_TOP_MM + _LINE_MM * 1.5)
                slot = 0
            if plain and not bold:
                count = min(len(rows) - done, len(heights) - slot)
                contents += _plain_lines(starts[slot:slot + count], rows[done:done + count])
            else:
                count = 1
                if bold:
                    pdf.set_font("Courier", style="B", size=9)
                    pdf.text(_LEFT_MM, heights[slot], _latin(rows[done]))
                    pdf.set_font("Courier", size=9)
                else:  # ASCII or already windows-1252: digits, '/', ':', ',', the KIND words
                    pdf.text(_LEFT_MM, heights[slot], rows[done])
            done += count
            slot += count
    if slot < len(heights):
        y = heights[slot]
    else:
        pdf.add_page()
        y = _PAGE_TOP_MM
    pdf.set_y(y + _LINE_MM / 2)


_SLOTS: dict[tuple[float, float, float], tuple[list[float], list[str]]] = {}


def _slots(pdf: FPDF, y: float) -> tuple[list[float], list[str]]:
    """The heights of a page's lines from `y` down (each a line below the one before, as long as
    it is not past the bottom), and the start of pdf.text()'s content at each: every page repeats them."""
    key = (y, pdf.k, pdf.h)
    found = _SLOTS.get(key)
    if found is None:
        heights: list[float] = []
        while y <= _PAGE_BOTTOM_MM:
            heights.append(y)
            y += _LINE_MM
        found = _SLOTS[key] = (heights, [f"BT {_LEFT_MM * pdf.k:.2f} {(pdf.h - at) * pdf.k:.2f} Td (" for at in heights])
    return found


_ESCAPED = ("(", ")", "\\", "\r")
_TEXT_END = ") Tj ET\n"


def _plain_lines(starts: list[str], rows: list[str]) -> bytes:
    """Each row as pdf.text() writes it at its start: in one join when no row needs escaping (as
    fpdf2's escape_parens) nor anything but ASCII, else row by row."""
    text = "".join(rows)
    if text.isascii() and not any(character in text for character in _ESCAPED):
        return "".join(itertools.chain.from_iterable(zip(starts, rows, itertools.repeat(_TEXT_END)))).encode("ascii")
    out = bytearray()
    for start, row in zip(starts, rows, strict=True):
        data = row.encode("cp1252")
        if b"(" in data or b")" in data or b"\\" in data or b"\r" in data:
            data = data.replace(b"\\", b"\\\\").replace(b")", b"\\)").replace(b"(", b"\\(").replace(b"\r", b"\\r")
        out += start.encode("ascii") + data + b") Tj ET\n"
    return bytes(out)


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
        query = query.where(col(Terminal.vendor_id) == vendor_id)
    return [_held_record(row) for row in session.execute(query.limit(limit))]


def _held_by_vendor(session: Session, *, before_time: int, limit: int = 10_000) -> dict[int, list[HeldRecord]]:
    """held_for_review of every vendor at once (one query, not one per vendor), `limit` each."""
    held: dict[int, list[HeldRecord]] = {}
    for row in session.execute(_held_query(before_time=before_time)):
        records = held.setdefault(int(row.vendor_id), [])
        if len(records) < limit:
            records.append(_held_record(row))
    return held


# A held record as _held_query reads it: id, vendor, vendor's name, terminal, number, kind, time, amount, reason.
_HeldRow = Select[int | None, int, str, int, int, int, int, int, str | None]


def _held_query(*, before_time: int | None) -> _HeldRow:
    record = TransactionRecord
    query = (select(col(record.id), col(Terminal.vendor_id), col(Vendor.name), col(record.terminal_id), col(record.seq),
                    col(record.kind), col(record.time), col(record.amount_cents), col(record.hold_reason))
             .join(Terminal, col(Terminal.id) == col(record.terminal_id))
             .join(Vendor, col(Vendor.id) == col(Terminal.vendor_id))
             .where(col(record.review) == str(ReviewStatus.HELD)))
    if before_time is not None:
        query = query.where(col(record.time) < before_time)
    return query.order_by(col(Terminal.vendor_id), col(record.time), col(record.id))


def _held_record(row: Any) -> HeldRecord:
    r_id, v_id, name, terminal, seq, kind, moment, amount, reason = row
    return HeldRecord(int(r_id), int(v_id), name, int(terminal), int(seq), KIND.get(kind, str(kind)), int(moment),
                      int(amount), reason or "")


def write_summary(session: Session, path: Path, *, run: SettlementRun, timezone: str, differences: list[str]) -> None:
    lines = session.execute(
        select(col(SettlementLine.vendor_id), col(Vendor.name), col(SettlementLine.status), col(SettlementLine.record_count),
               col(SettlementLine.amount_cents), col(SettlementLine.reason))
        .join(Vendor, col(Vendor.id) == col(SettlementLine.vendor_id))
        .where(col(SettlementLine.run_id) == run.id)
        .order_by(col(SettlementLine.status).desc(), col(SettlementLine.vendor_id))
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
