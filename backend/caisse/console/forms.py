"""What the console's forms send, read the same way on every page."""

from __future__ import annotations

from datetime import date

from caisse.errors import InvalidInput


def optional_date(text: str) -> date | None:
    """A date field (`<input type="date">` sends YYYY-MM-DD): None when left empty."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("invalid_date", "a date is YYYY-MM-DD") from None
