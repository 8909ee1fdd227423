"""The audit log, for administrators: who changed what, newest first, filtered."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse import audit
from caisse.console.deps import DbSession, require_page
from caisse.console.templating import render

router = APIRouter(prefix="/audit", dependencies=[Depends(require_page("audit"))])
PAGE_EVENTS = 200


@router.get("")
def audit_log(request: Request, session: DbSession, actor: str = "", subject: str = "", action: str = "") -> Response:
    events = audit.events(session, actor=actor.strip().lower() or None, subjects=[subject.strip()] if subject.strip() else None,
                          action_prefix=action.strip() or None, limit=PAGE_EVENTS)
    return render(request, "audit/list.html", title="Journal", events=events, actor=actor, subject=subject, action=action,
                  limit=PAGE_EVENTS)
