"""Terminals: status, vendor, last sync, records waiting or flagged, health; revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse import admin, audit, directory, terminal_health
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import LABELS, redirect, render

router = APIRouter(prefix="/terminals", dependencies=[Depends(require_page("terminals"))])


@router.get("")
def terminals(request: Request, session: DbSession, status: str = "") -> Response:
    status = status if status in LABELS["terminal"] else ""
    return render(request, "terminals/list.html", title="Terminaux", status=status,
                  terminals=directory.terminal_rows(session, status=status or None))


@router.get("/{terminal_id}")
def detail(request: Request, session: DbSession, terminal_id: int) -> Response:
    """A terminal's last health report (docs/protocol.md#health-report)."""
    terminal = admin.get_terminal(session, terminal_id=terminal_id)
    vendor = admin.get_vendor(session, vendor_id=terminal.vendor_id)
    return render(request, "terminals/detail.html", title=f"Terminal {terminal_id}", terminal=terminal,
                  vendor_name=vendor.name, health=terminal_health.latest(session, terminal_id=terminal_id),
                  error_labels=terminal_health.ERROR_KIND_FR)


@router.post("/{terminal_id}/revoke")
def revoke(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    terminal = admin.get_terminal(session, terminal_id=terminal_id)
    before = terminal.status
    admin.revoke_terminal(session, terminal_id=terminal_id)
    if before != terminal.status:
        audit.record(session, actor=user.email, action="terminal.revoke", subject=f"terminal:{terminal_id}",
                     detail={"vendor_id": terminal.vendor_id, "status_before": before})
    session.commit()
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} révoqué : le serveur refusera ses envois.")
