"""The caisse's month, YYYY-MM: allowances, contributions, means and budgets all count by it, in
the caisse's time zone (a payment at 2026-03-31T22:30Z is April's in Paris)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from caisse.errors import InvalidInput

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.match(text.strip())
        if found is None:
            raise InvalidInput("invalid_month", f"a month is written YYYY-MM, not {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_start(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)

    def shifted(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def starts_at(self, zone: ZoneInfo) -> datetime:
        """Local midnight of the first day: where the caisse's month begins (Europe/Paris)."""
        return datetime.combine(self.first_day, time.min, tzinfo=zone)

    def ends_at(self, zone: ZoneInfo) -> datetime:
        return self.shifted(1).starts_at(zone)

    @classmethod
    def of(cls, moment: datetime, zone: ZoneInfo) -> Month:
        """The local month of an instant (a naive time is UTC, as SQLite hands it back)."""
        local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
        return cls(local.year, local.month)
