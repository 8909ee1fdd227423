"""Terminal health reports (docs/protocol.md#health-report): what a terminal says about itself
on its sync (firmware, restarts, errors by part, battery, records waiting), kept for the staff.

The report rides on the sync request in two headers, signed with the terminal's key over the
request's X-Caisse-Time. It is optional and informational: a terminal without it (protocol v1)
syncs as before, and a report that is malformed or does not verify is dropped without failing
the sync. One row per terminal, replaced only by a report with a later terminal time, so a
replayed older report never hides a newer one.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from caisse.db import is_postgresql, table_of
from caisse.models import Terminal, TerminalHealth, utcnow
from caisse.terminals.service import terminal_public_key
from caisse_common import protocol

MAX_HEADER_CHARS = 2048  # X-Caisse-Health, base64: a report is ~450 bytes
ERROR_KINDS = ("i2c", "nfc", "secure_element", "flash", "sync", "other")
ERROR_KIND_FR = {
    "i2c": "Bus I2C", "nfc": "Lecteur de cartes", "secure_element": "Puce de sécurité", "flash": "Mémoire flash",
    "sync": "Synchronisation", "other": "Autres",
}
_U32 = Annotated[StrictInt, Field(ge=0, le=0xFFFFFFFF)]
_health = table_of(TerminalHealth)


class HealthReport(BaseModel):
    """The report's JSON body; keys a newer firmware adds are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    firmware: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,32}$")]
    uptime_s: _U32
    boots: _U32
    watchdog_resets: _U32
    crash_resets: _U32
    task_restarts: _U32
    safe_mode_boots: _U32
    errors: dict[str, _U32]
    last_error: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{0,80}$")]
    battery_mv: Annotated[StrictInt, Field(ge=0, le=10_000)] | None
    battery_low: StrictBool
    unsent_records: _U32
    unsigned_records: _U32
    log_free_bytes: _U32
    # Added later (docs/protocol.md, "Re-sending after a restore"); absent from older firmware.
    acked_seq: _U32 | None = None
    lost_first: _U32 | None = None
    lost_last: _U32 | None = None


def parse(header: str) -> HealthReport | None:
    """The report in an X-Caisse-Health header, or None when it is not one."""
    if len(header) > MAX_HEADER_CHARS:
        return None
    try:
        body = json.loads(base64.b64decode(header, validate=True))
        report = HealthReport.model_validate(body)
    except (binascii.Error, ValueError, ValidationError):
        return None
    if set(report.errors) - set(ERROR_KINDS):
        return None
    first, last = report.lost_first, report.lost_last
    if (first, last) != (None, None) and (first is None or last is None or not 0 < first <= last):
        return None
    return report


def record_report(session: Session, *, terminal_id: int, time_s: int, header: str, signature_hex: str | None) -> bool:
    """Keep the report of a sync that sync_terminal already authenticated (its terminal row is
    locked, its time in the window). Returns whether it was stored."""
    report = parse(header)
    try:
        signature = bytes.fromhex(signature_hex or "")
    except ValueError:
        return False
    if report is None:
        return False
    public_key, backend_acked = session.execute(
        select(col(Terminal.public_key), col(Terminal.acked_seq)).where(col(Terminal.id) == terminal_id)).one()
    digest = protocol.health_digest(terminal_id, time_s, base64.b64decode(header))
    if not protocol.verify_digest(terminal_public_key(bytes(public_key)), digest, signature):
        return False
    row = report.model_dump(exclude={"firmware", "acked_seq", "lost_first", "lost_last"}) | {
        "errors": {k: report.errors.get(k, 0) for k in ERROR_KINDS},
        "firmware_version": report.firmware, "terminal_id": terminal_id, "terminal_time": time_s,
        "received_at": utcnow(), "terminal_acked_seq": report.acked_seq,
        "lost_first_seq": report.lost_first, "lost_last_seq": report.lost_last}
    if report.acked_seq is not None and report.acked_seq > backend_acked:
        # The terminal was acknowledged further than this database knows: restored from a backup.
        row |= {"rewound_from_seq": report.acked_seq, "rewound_to_seq": backend_acked}
    insert = (postgresql if is_postgresql(session) else sqlite).insert(_health).values(row)
    session.execute(insert.on_conflict_do_update(
        index_elements=["terminal_id"], set_={k: insert.excluded[k] for k in row if k != "terminal_id"},
        where=_health.c.terminal_time <= insert.excluded.terminal_time,
    ))
    return True


def latest(session: Session, *, terminal_id: int) -> TerminalHealth | None:
    return session.get(TerminalHealth, terminal_id)
