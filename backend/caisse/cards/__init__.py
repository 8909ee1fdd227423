"""Member cards: issue, block, replace and return, the tap checks (SUN counters, deny list)
and member codes."""
