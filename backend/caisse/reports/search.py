"""Text search the same on SQLite and PostgreSQL: case and accents ignored (caisse.db.folded),
typed `%`, `_` and quotes taken literally, results in pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from caisse.db import fold_text

MAX_PER_PAGE = 500
T = TypeVar("T")


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
