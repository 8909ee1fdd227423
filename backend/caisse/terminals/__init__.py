"""Payment terminals: registration, what a terminal receives at sync, offline limits, health."""
