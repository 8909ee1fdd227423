"""Reading the CSV files staff make with a spreadsheet (every import goes through here).

Staff export from Excel or LibreOffice: `;`-separated in France (`,` and tabs are accepted too),
UTF-8 with or without a byte-order mark, or Windows-1252 when Excel saves "CSV (séparateur :
point-virgule)". Column headers are matched without case, accents, spaces or underscores, so
"Quartile de revenu", "quartile_revenu" and "QUARTILE REVENU" are the same column.

`read_table` only finds the columns and the rows; each import checks its own cells and reports
every bad row with its line number (`RowErrors`), then imports nothing unless asked to skip them.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from caisse.errors import InvalidInput

MAX_FILE_BYTES = 5_000_000
MAX_ROWS = 100_000
DELIMITERS = (";", ",", "\t")


def header_key(text: str) -> str:
    """'Quartile de revenu' -> 'quartilederevenu': what two spellings of a header share."""
    letters = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in letters if c.isalnum())


@dataclass(frozen=True, slots=True)
class Column:
    """A column an import reads: its name in the code and the headers staff may give it."""

    name: str
    headers: Sequence[str]
    required: bool = True


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # line number in the file, the header being line 1
    cells: Mapping[str, str]  # column name -> stripped text ("" when empty or absent)

    def __getitem__(self, name: str) -> str:
        return self.cells.get(name, "")


@dataclass(slots=True)
class RowErrors:
    """Every bad row of a file, in French, with its line number."""

    errors: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def lines(self) -> list[str]:
        return [f"ligne {line} : {message}" for line, message in self.errors]


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Windows-1252, which decodes any byte Excel writes."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput("file_too_large", f"le fichier dépasse {MAX_FILE_BYTES // 1_000_000} Mo")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_table(data: bytes | str, columns: Sequence[Column]) -> list[Row]:
    """The rows of a file with a header line, blank lines skipped. A missing required column or
    an empty file raises InvalidInput in French; cells are not checked here."""
    text = decode(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise InvalidInput("empty_file", "le fichier est vide")
    delimiter = max(DELIMITERS, key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = _header(reader)
    positions = _positions(header, columns)
    rows: list[Row] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) == MAX_ROWS:
            raise InvalidInput("too_many_rows", f"le fichier a plus de {MAX_ROWS} lignes")
        rows.append(Row(line=reader.line_num, cells={
            name: cells[index].strip() if index < len(cells) else "" for name, index in positions.items()}))
    return rows


def _header(reader: Iterator[list[str]]) -> list[str]:
    for cells in reader:
        if any(cell.strip() for cell in cells):
            return cells
    raise InvalidInput("empty_file", "le fichier est vide")


def _positions(header: list[str], columns: Sequence[Column]) -> dict[str, int]:
    keys = [header_key(cell) for cell in header]
    positions: dict[str, int] = {}
    missing: list[str] = []
    for column in columns:
        wanted = {header_key(name) for name in (column.name, *column.headers)}
        index = next((i for i, key in enumerate(keys) if key in wanted), None)
        if index is not None:
            positions[column.name] = index
        elif column.required:
            missing.append(column.headers[0] if column.headers else column.name)
    if missing:
        raise InvalidInput("missing_columns", "ligne 1 : colonne(s) manquante(s) : " + ", ".join(missing)
                           + " ; en-têtes attendus : " + ", ".join(c.headers[0] if c.headers else c.name for c in columns))
    return positions
