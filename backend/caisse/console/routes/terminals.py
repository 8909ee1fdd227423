"""Terminals: status, vendor, last sync, records waiting or flagged, health; revoke, clear a
suspect one, decide all the held records of one. Each action is audited by its service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import LABELS, confirm, redirect, render
from caisse.errors import CaisseError, french
from caisse.ingest import review, terminal_decisions
from caisse.models import TerminalStatus
from caisse.reports import directory
from caisse.terminals import health as terminal_health
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service

router = APIRouter(prefix="/terminals", dependencies=[Depends(require_page("terminals"))])
PER_PAGE = 50


@router.get("")
def terminals(request: Request, session: DbSession, q: str = "", status: str = "", page: int = 1) -> Response:
    status = status if status in LABELS["terminal"] else ""
    found = directory.terminals_page(session, query=q, status=status or None, page=page, per_page=PER_PAGE)
    return render(request, "terminals/list.html", title="Terminaux", status=status, q=q, found=found, terminals=found.rows)


@router.get("/{terminal_id}")
def detail(request: Request, session: DbSession, terminal_id: int) -> Response:
    """A terminal's last health report (docs/protocol.md#health-report)."""
    terminal = terminal_registry.get_terminal(session, terminal_id=terminal_id)
    vendor = vendor_service.get_vendor(session, vendor_id=terminal.vendor_id)
    return render(request, "terminals/detail.html", title=f"Terminal {terminal_id}", terminal=terminal,
                  vendor_name=vendor.name, health=terminal_health.latest(session, terminal_id=terminal_id),
                  error_labels=terminal_health.ERROR_KIND_FR)


@router.get("/{terminal_id}/revoke")
def revoke_form(request: Request, session: DbSession, terminal_id: int) -> Response:
    terminal_registry.get_terminal(session, terminal_id=terminal_id)  # NotFound: a French 404 page
    [row] = directory.terminal_rows(session, terminal_ids=[terminal_id])
    return confirm(request, title=f"Révoquer le terminal {terminal_id}", final=True, danger=True,
                   action=f"/console/terminals/{terminal_id}/revoke", button=f"Révoquer le terminal {terminal_id}",
                   back="/console/terminals",
                   lines=[f"Le terminal {terminal_id} du commerçant « {row.vendor_name} » sera refusé par le serveur à chacun"
                          " de ses envois, définitivement (un terminal remis en état est enregistré à nouveau).",
                          f"Ses {row.unsettled} enregistrement(s) pas encore réglés seront retenus : une personne décidera de"
                          " les payer ou non (Transactions). Révoquer ne paie et ne rembourse rien."])


@router.get("/{terminal_id}/clear")
def clear_form(request: Request, session: DbSession, terminal_id: int) -> Response:
    terminal = terminal_registry.get_terminal(session, terminal_id=terminal_id)
    if terminal.status != TerminalStatus.SUSPECT:
        return render(request, "error.html", status_code=409, title="Opération impossible",
                      message=french(CaisseError("terminal_not_suspect", "")))
    [row] = directory.terminal_rows(session, terminal_ids=[terminal_id])
    return confirm(request, title=f"Lever le soupçon sur le terminal {terminal_id}",
                   action=f"/console/terminals/{terminal_id}/clear", button="Remettre en service",
                   back="/console/terminals",
                   lines=[f"Le terminal {terminal_id} du commerçant « {row.vendor_name} » a été signalé « à vérifier » (un"
                          " trou ou un conflit dans la numérotation de ses enregistrements). Vous l'avez vérifié : il"
                          " repassera « en service ».",
                          f"Ses {row.held} enregistrement(s) retenus le restent jusqu'à votre décision (Libérer ou Rejeter)."])


@router.post("/{terminal_id}/revoke")
def revoke(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    terminal_decisions.revoke_terminal(session, terminal_id=terminal_id, by=user.email)
    session.commit()
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} révoqué : le serveur refusera ses envois."
                                                " Ses enregistrements non réglés attendent une décision.")


@router.post("/{terminal_id}/clear")
def clear(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    try:
        terminal_decisions.clear_suspect_terminal(session, terminal_id=terminal_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return redirect("/console/terminals", flash=french(error))
    session.commit()
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} remis en service. Ses enregistrements retenus"
                                                " attendent toujours une décision.")


@router.post("/{terminal_id}/accept-loss")
def accept_loss(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    try:
        first, last = terminal_decisions.accept_lost_records(session, terminal_id=terminal_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return redirect(f"/console/terminals/{terminal_id}", flash=french(error))
    session.commit()
    return redirect(f"/console/terminals/{terminal_id}",
                    flash=f"Terminal {terminal_id} : perte des n° {first} à {last} constatée. Le terminal peut de nouveau"
                          " libérer sa mémoire ; le paiement suivant la perte sera réglé au prochain règlement.")


@router.post("/{terminal_id}/release")
def release_all(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    return _decide_all(session, user.email, terminal_id=terminal_id, decision=review.Decision.RELEASE)


@router.post("/{terminal_id}/reject")
def reject_all(session: DbSession, user: CurrentUser, terminal_id: int) -> Response:
    return _decide_all(session, user.email, terminal_id=terminal_id, decision=review.Decision.REJECT)


def _decide_all(session: DbSession, by: str, *, terminal_id: int, decision: review.Decision) -> Response:
    try:
        decided = review.decide_all(session, decision=decision, by=by, terminal_id=terminal_id)
    except CaisseError as error:
        session.rollback()
        return redirect("/console/terminals", flash=french(error))
    session.commit()
    done = ("libéré(s) : le commerçant sera payé au prochain règlement" if decision == review.Decision.RELEASE
            else "rejeté(s) : jamais payés, les foyers sont remboursés")
    return redirect("/console/terminals", flash=f"Terminal {terminal_id} : {len(decided)} enregistrement(s) {done}.")
