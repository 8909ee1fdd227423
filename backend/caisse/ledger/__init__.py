"""The double-entry ledger: accounts, transfers, corrections, and the invariants that must hold."""
