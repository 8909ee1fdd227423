"""The demo caisse that `caisse demo` builds."""
