"""Amounts shown to people: French notation, computed from integer cents, never through a float."""


def euros(cents: int, *, grouped: bool = False) -> str:
    """1234 -> '12,34', -5 -> '-0,05'; grouped: 123456 -> '1 234,56' (narrow no-break spaces)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    whole_text = f"{whole:,}".replace(",", "\u202f") if grouped else str(whole)
    return f"{sign}{whole_text},{part:02d}"
