"""The audit log: who changed what, and when (docs/console.md).

`record` adds an event to the caller's transaction, so the event and the change it describes
commit together or not at all. Events are never updated or deleted.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from caisse.models import AuditEvent

MAX_DETAIL_CHARS = 2000


def record(
    session: Session, *, actor: str, action: str, subject: str, detail: dict[str, Any] | str | None = None,
    os_user: str | None = None,
) -> AuditEvent:
    """Log `actor` doing `action` (e.g. "card.block") to `subject` (e.g. "card:04a1b2c3").

    A dict detail is stored as JSON (sorted keys) so events are easy to read and to grep. A step
    taken from the command line adds `os_user` (who was logged in on the server) to it: the same
    step from the console leaves the same entry without it."""
    if os_user:
        detail = {**(detail if isinstance(detail, dict) else {} if detail is None else {"text": detail}), "os_user": os_user}
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str) if isinstance(detail, dict) else detail
    if text is not None and len(text) > MAX_DETAIL_CHARS:
        text = text[: MAX_DETAIL_CHARS - 1] + "…"
    event = AuditEvent(actor=actor, action=action, subject=subject, detail=text)
    session.add(event)
    session.flush()
    return event


def with_os_user(detail: dict[str, object], os_user: str | None) -> dict[str, object]:
    """`detail` naming who was logged in on the server, for a step taken from the command line."""
    return {**detail, "os_user": os_user} if os_user else detail


def events(
    session: Session, *, subjects: Collection[str] | None = None, actor: str | None = None,
    action_prefix: str | None = None, limit: int = 100,
) -> list[AuditEvent]:
    """The newest events first, optionally about some subjects, by one actor, or of one family of
    actions ("card." for every card action)."""
    query = select(AuditEvent)
    if subjects is not None:
        query = query.where(col(AuditEvent.subject).in_(list(subjects)))
    if actor is not None:
        query = query.where(col(AuditEvent.actor) == actor)
    if action_prefix is not None:
        query = query.where(col(AuditEvent.action).startswith(action_prefix))
    return list(session.execute(query.order_by(col(AuditEvent.id).desc()).limit(limit)).scalars())
