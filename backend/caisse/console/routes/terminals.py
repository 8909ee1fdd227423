"""Terminals: status, vendor, last sync, records waiting or flagged, health; revoke, clear a
suspect one, decide all the held records of one. Each action is audited by its service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse import admin, directory, review, terminal_health
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.messages import french
from caisse.console.templating import LABELS, redirect, render
from caisse.errors import CaisseError

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
    admin.revoke_terminal(session, terminal_id=terminal_id, by=user.email)
    session.commit()
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} révoqué : le serveur refusera ses envois."
                                                " Ses enregistrements non réglés attendent une décision.")


@router.post("/{terminal_id}/clear")
def clear(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    try:
        admin.clear_suspect_terminal(session, terminal_id=terminal_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return redirect("/console/terminals", flash=french(error))
    session.commit()
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} remis en service. Ses enregistrements retenus"
                                                " attendent toujours une décision.")


@router.post("/{terminal_id}/accept-loss")
def accept_loss(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    try:
        first, last = admin.accept_lost_records(session, terminal_id=terminal_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return redirect(f"/console/terminals/{terminal_id}", flash=french(error))
    session.commit()
    return redirect(f"/console/terminals/{terminal_id}",
                    flash=f"Terminal {terminal_id} : perte des n° {first} à {last} constatée. Le terminal peut de nouveau"
                          " libérer sa mémoire ; le paiement suivant la perte sera réglé au prochain règlement.")


@router.post("/{terminal_id}/release")
def release_all(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    return _decide_all(session, user.email, terminal_id=terminal_id, decision=review.RELEASE)


@router.post("/{terminal_id}/reject")
def reject_all(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    return _decide_all(session, user.email, terminal_id=terminal_id, decision=review.REJECT)


def _decide_all(session: DbSession, by: str, *, terminal_id: int, decision: str) -> Response:
    try:
        decided = review.decide_all(session, decision=decision, by=by, terminal_id=terminal_id)
    except CaisseError as error:
        session.rollback()
        return redirect("/console/terminals", flash=french(error))
    session.commit()
    done = ("libéré(s) : le commerçant sera payé au prochain règlement" if decision == review.RELEASE
            else "rejeté(s) : jamais payés, les foyers sont remboursés")
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} : {len(decided)} enregistrement(s) {done}.")
