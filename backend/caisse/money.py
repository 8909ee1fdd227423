"""Amounts as people read and type them: French notation, computed from integer cents, never through a float."""

import re
from decimal import Decimal

from caisse.errors import InvalidInput

MAX_AMOUNT_CENTS = 100_000_000  # 1 000 000 EUR: catches a misplaced decimal point

_EUROS = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


def euros(cents: int, *, grouped: bool = False) -> str:
    """1234 -> '12,34', -5 -> '-0,05'; grouped: 123456 -> '1 234,56' (narrow no-break spaces)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    whole_text = f"{whole:,}".replace(",", "\u202f") if grouped else str(whole)
    return f"{sign}{whole_text},{part:02d}"


def parse_euros(value: str, *, zero_allowed: bool = False) -> int:
    """'12,50' or '12.50' -> 1250 cents, exactly (Decimal, never float). At most 2 decimals, > 0
    (or >= 0 with `zero_allowed`: a rule's amount may be nothing, a payment may not)."""
    cleaned = value.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    if not _EUROS.match(cleaned):  # digits, then at most 2 decimals: no sign, exponent, NaN
        raise InvalidInput("invalid_amount", f"{value!r} is not an amount in euros with at most 2 decimals")
    amount = Decimal(cleaned)
    cents = int(amount * 100)
    if not (0 if zero_allowed else 1) <= cents <= MAX_AMOUNT_CENTS:
        raise InvalidInput("invalid_amount", f"{value!r}: the amount must be positive and at most 1 000 000 EUR")
    return cents
