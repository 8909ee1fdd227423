"""Domain errors raised by the services, free of HTTP.

    CaisseError            code + human detail; the API maps each subclass to a status
    ├── NotFound           404: no such vendor, household, card, terminal
    ├── Conflict           409: the thing exists already, or an idempotency key is reused
    ├── InvalidInput       422: a value breaks a rule (bad UID, bad key, bad kind)
    ├── Forbidden          403: the acting account's role does not allow this
    ├── TerminalRefused    403: unknown or revoked terminal (docs/protocol.md)
    └── SyncUnauthorized   401: clock skew or bad signature on sync
"""

from __future__ import annotations


class CaisseError(Exception):
    status_code = 400

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class NotFound(CaisseError):
    status_code = 404


class Conflict(CaisseError):
    status_code = 409


class InvalidInput(CaisseError):
    status_code = 422


class Forbidden(CaisseError):
    status_code = 403


class TerminalRefused(CaisseError):
    status_code = 403


class SyncUnauthorized(CaisseError):
    status_code = 401

    def __init__(self, code: str, detail: str, *, server_time: int | None = None) -> None:
        super().__init__(code, detail)
        self.server_time = server_time


def require_text(**fields: str) -> None:
    """Refuse an empty or blank field, named in the error's code (`invalid_<name>`)."""
    for name, value in fields.items():
        if not value or not value.strip():
            raise InvalidInput(f"invalid_{name}", f"{name} must not be empty")
