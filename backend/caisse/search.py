"""Text search the same on SQLite and PostgreSQL: case and accents ignored, typed `%`, `_` and
quotes taken literally, results in pages.

`folded(column)` compares as `fold_text` does in Python: lower case, then the accented Latin
letters French names use replaced by their plain letter ("Élodie" and "elodie" match). On
PostgreSQL it is `translate(lower(...))`; SQLite's lower() knows only ASCII, so caisse.db
registers `fold_text` on each SQLite connection as the function `caisse_fold`.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

_ACCENTED = "àáâãäåāăąçćčďèéêëēėęěìíîïīįñńňòóôõöōőŕřśšşťùúûüūůűųýÿźżž"
_PLAIN = "".join(unicodedata.normalize("NFKD", letter)[0] for letter in _ACCENTED)
_TABLE = str.maketrans(_ACCENTED, _PLAIN)
MAX_PER_PAGE = 500
T = TypeVar("T")


def fold_text(text: str | None) -> str | None:
    return None if text is None else text.lower().translate(_TABLE)


class folded(FunctionElement[str]):  # noqa: N801 (an SQL function, named like one)
    type = String()
    inherit_cache = True


@compiles(folded, "postgresql")
def _folded_postgresql(element: folded, compiler: Any, **kw: Any) -> str:
    return f"translate(lower({compiler.process(element.clauses, **kw)}), '{_ACCENTED}', '{_PLAIN}')"


@compiles(folded)
def _folded_sqlite(element: folded, compiler: Any, **kw: Any) -> str:
    return f"caisse_fold({compiler.process(element.clauses, **kw)})"


def contains_pattern(query: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `query` anywhere, folded, taken literally."""
    escaped = (fold_text(query.strip()) or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: list[T]
    total: int  # rows matching, every page together
    page: int  # from 1
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def bounded(page: int, per_page: int) -> tuple[int, int]:
    """(page, per_page) within bounds: a page number below 1 is the first, at most 500 a page."""
    return max(1, page), min(max(1, per_page), MAX_PER_PAGE)


def last_page_at_most(page: int, per_page: int, total: int) -> int:
    """`page`, or the last page when it is past it (a list that shrank since its link was made)."""
    return min(page, max(1, math.ceil(total / per_page)))
