"""Cards: find one (by UID or household), see its state and history, block it as lost or stolen,
unblock a lost card that was found (card_service.LIFTABLE_BLOCKS). Each action first shows what it will
do; the services write the audit entries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import audit
from caisse.cards import service as card_service
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import LABELS, confirm, redirect, render
from caisse.errors import CaisseError, french
from caisse.members import households as household_service
from caisse.models import BlockReason, Card, CardStatus
from caisse.reports import directory

router = APIRouter(prefix="/cards", dependencies=[Depends(require_page("cards"))])
PER_PAGE = 50


@router.get("")
def cards(request: Request, session: DbSession, q: str = "", status: str = "", page: int = 1) -> Response:
    status = status if status in LABELS["card_status"] else ""
    found = directory.cards_page(session, query=q, status=status or None, page=page, per_page=PER_PAGE)
    return render(request, "cards/list.html", title="Cartes", found=found, q=q, status=status)


@router.get("/{uid}")
def card(request: Request, session: DbSession, uid: str) -> Response:
    found = card_service.get_card(session, uid_hex=uid)
    household = household_service.get_household(session, household_id=found.household_id)
    return render(request, "cards/detail.html", title=f"Carte {found.uid.hex()}", card=found, household=household,
                  liftable=_liftable(found), history=audit.events(session, subjects=[f"card:{found.uid.hex()}"], limit=20))


@router.get("/{uid}/block")
def block_form(request: Request, session: DbSession, uid: str, reason: str = BlockReason.LOST) -> Response:
    found = card_service.get_card(session, uid_hex=uid)
    reason = BlockReason.STOLEN if reason == BlockReason.STOLEN else BlockReason.LOST
    household = household_service.get_household(session, household_id=found.household_id)
    lines = [f"La carte {found.uid.hex()} du foyer « {household.name} » (n° {household.id}) sera bloquée comme "
             f"{LABELS['block_reason'][reason]} : chaque terminal la refusera dès sa prochaine synchronisation.",
             "Le solde reste celui du foyer ; les paiements faits avant le blocage restent dus."]
    if reason == BlockReason.STOLEN:
        lines.append("Une carte volée ne se débloque jamais : le foyer recevra une nouvelle carte (Remplacer).")
    else:
        lines.append("Si la carte est retrouvée, elle pourra être débloquée.")
    return confirm(request, title=f"Bloquer la carte {found.uid.hex()}", lines=lines, final=reason == BlockReason.STOLEN,
                   danger=True, action=f"/console/cards/{found.uid.hex()}/block", hidden={"reason": reason},
                   button=f"Bloquer la carte ({LABELS['block_reason'][reason]})", back=f"/console/cards/{found.uid.hex()}")


@router.post("/{uid}/block")
def block(session: DbSession, user: CurrentUser, uid: str, reason: Annotated[str, Form()] = BlockReason.LOST) -> Response:
    found = card_service.block_card(session, uid_hex=uid, reason=reason, by=user.email)
    session.commit()
    return redirect(f"/console/cards/{found.uid.hex()}",
                    flash=f"Carte {found.uid.hex()} bloquée : les terminaux la refuseront dès leur prochaine synchronisation.")


@router.get("/{uid}/unblock")
def unblock_form(request: Request, session: DbSession, uid: str) -> Response:
    found = card_service.get_card(session, uid_hex=uid)
    if not _liftable(found):
        return render(request, "error.html", status_code=409, title="Déblocage impossible",
                      message=french(CaisseError("card_block_final" if found.status == CardStatus.BLOCKED
                                                 else "card_not_blocked", "")))
    return confirm(request, title=f"Débloquer la carte {found.uid.hex()}",
                   lines=[f"La carte {found.uid.hex()}, bloquée comme perdue, redeviendra active : chaque terminal "
                          "l'acceptera de nouveau dès sa prochaine synchronisation.",
                          "Ne débloquez que si la personne du foyer a la carte en main."],
                   action=f"/console/cards/{found.uid.hex()}/unblock", button="Débloquer la carte",
                   back=f"/console/cards/{found.uid.hex()}")


@router.post("/{uid}/unblock")
def unblock(request: Request, session: DbSession, user: CurrentUser, uid: str) -> Response:
    try:
        found = card_service.unblock_card(session, uid_hex=uid, by=user.email)
    except CaisseError as error:
        session.rollback()
        return render(request, "error.html", status_code=error.status_code, title="Déblocage impossible", message=french(error))
    session.commit()
    return redirect(f"/console/cards/{found.uid.hex()}",
                    flash=f"Carte {found.uid.hex()} débloquée : les terminaux l'accepteront dès leur prochaine synchronisation.")


def _liftable(card: Card) -> bool:
    return card.status == CardStatus.BLOCKED and card.block_reason in card_service.LIFTABLE_BLOCKS
