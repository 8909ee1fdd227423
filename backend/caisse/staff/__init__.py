"""The caisse's staff: console accounts, roles, sessions, and who an action is recorded as."""
