"""What a run prints: a JSON document (keys in English, sorted) or a French summary for people.

Both come from the same `dict`, built from the database and the auditor only: no paths, no wall
clock, no ids that depend on anything but the seed, so one seed gives one output, byte for byte.
"""

from __future__ import annotations

import json
from collections import Counter

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import Session, col

from caisse.ledger import postings as ledger
from caisse.models import LedgerAccount, LedgerTransfer
from caisse.money import euros
from caisse.simulation.auditor import Check
from caisse.simulation.faults import Fault, Outcome

WIDTH = 110
OUTCOME_FR = {Outcome.DETECTED: "détectée", Outcome.SURVIVED: "surmontée", Outcome.RESIDUAL: "risque résiduel",
              Outcome.NOT_TRIGGERED: "non déclenchée", Outcome.FAILED: "ÉCHEC"}
FAULT_FR = {"power_cut": "coupure de courant", "offline": "réseau coupé", "upload_cut_before": "envoi coupé avant",
            "upload_cut_after": "envoi coupé après", "batch_sent_twice": "lot envoyé deux fois",
            "upload_corrupted": "envoi altéré en route",
            "lost_card": "carte perdue bloquée", "clone_basic": "copie de carte simple",
            "clone_secure": "message SUN rejoué", "tamper": "enregistrements falsifiés",
            "offline_spree": "foyer dépensant hors ligne", "lying_clock": "horloge menteuse",
            "false_over_limit": "faux dépassements signalés", "garbage_flood": "déluge de déchets",
            "reject_in_flight": "rejet pendant une annulation", "revoke_in_flight": "révocation mal placée",
            "iban_mid_settlement": "IBAN changé en plein règlement", "credit_twice": "crédit saisi deux fois"}


CHECKS_FR = {
    "every approved payment reached the backend with the verdict expected":
        "chaque paiement approuvé est arrivé au serveur avec le verdict attendu",
    "the backend stored nothing a terminal did not approve": "le serveur n'a rien enregistré qu'un terminal n'ait approuvé",
    "every balance equals the auditor's": "chaque solde est celui que l'auditeur attend",
    "every accepted record of a trusted terminal is settled":
        "chaque enregistrement accepté d'un terminal de confiance est réglé",
    "no terminal gave one seq to two approved records": "aucun terminal n'a donné un numéro à deux paiements",
    "allowances follow the rule": "les allocations suivent la règle",
    "each fault detected or survived": "chaque panne est détectée ou surmontée",
    "records rebuilt and signed under MicroPython equal the CPython terminals'":
        "les enregistrements refaits sous MicroPython sont ceux des terminaux CPython",
}


def money(session: Session) -> dict[str, int]:
    """Totals by purpose, in cents, from the ledger."""
    by_kind = dict(session.execute(select(col(LedgerTransfer.kind), func.sum(col(LedgerTransfer.amount_cents)))
                                   .group_by(col(LedgerTransfer.kind))).all())
    balances: Counter[str] = Counter()
    for kind, credits, debits in session.execute(select(col(LedgerAccount.kind), col(LedgerAccount.credits_posted_cents),
                                                        col(LedgerAccount.debits_posted_cents))).all():
        balances[kind] += credits - debits
    kinds = ledger.TransferKind
    return {
        "allowances_cents": int(by_kind.get(kinds.ALLOWANCE, 0)),
        "expired_cents": int(by_kind.get(kinds.EXPIRY, 0)),
        "spent_cents": int(by_kind.get(kinds.PAYMENT, 0)) - int(by_kind.get(kinds.VOID, 0)),
        "members_balance_cents": balances["member"],
        "vendors_payable_cents": balances["vendor_payable"],
        "paid_out_cents": balances["vendor_paid"],
        "ledger_balance_sum_cents": ledger.summary(session).balance_sum_cents,
    }


def as_json(report: dict[str, object]) -> str:
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False)


def print_french(report: dict, console: Console | None = None) -> None:
    """The summary for people. A fixed width, so a seed prints the same lines in any terminal."""
    console = console or Console(width=WIDTH, highlight=False)
    terminals, backend, cash = report["terminals"], report["backend"], report["money"]
    c = report["config"]
    console.print(f"[bold]Simulation de la caisse[/bold] — graine {report['seed']} : {c['terminals']} terminaux, "
                  f"{c['members']} foyers, {c['days']} jours")
    lines = [
        f"Terminaux : {terminals['approved']['payments']} paiements et {terminals['approved']['voids']} annulations "
        f"approuvés, {terminals['reboots']} redémarrages après coupure",
        f"Refus sur place : {_counts(terminals['declined']) or 'aucun'}",
        f"Serveur : {backend['accepted']} acceptés (dont {backend['held_for_review']} en attente de revue), "
        f"{backend['duplicates']} doublons reconnus",
        f"Rejets : {_counts(backend['rejected']) or 'aucun'} ; approuvés puis refusés : "
        f"{euros(backend['refused_after_approval_cents'], grouped=True)} €",
        f"Terminaux suspects ou révoqués : {', '.join(str(t) for t in backend['flagged_terminals']) or 'aucun'} ; non réglés : "
        f"{backend['held_records']} enregistrements, {euros(backend['held_cents'], grouped=True)} €",
        f"Allocations {euros(cash['allowances_cents'], grouped=True)} €, expiré {euros(cash['expired_cents'], grouped=True)} €, "
        f"dépensé {euros(cash['spent_cents'], grouped=True)} €, versé aux commerçants "
        f"{euros(cash['paid_out_cents'], grouped=True)} €",
        f"Somme des soldes du grand livre : {euros(cash['ledger_balance_sum_cents'])} €",
    ]
    for line in lines:
        console.print("  " + line)
    faults = Table("panne injectée", "jour", "term.", "résultat", "constat", title="Pannes injectées")
    for fault in report["faults"]:
        faults.add_row(FAULT_FR.get(fault["kind"], fault["kind"]), str(fault["day"] + 1), str(fault["terminal"] or "—"),
                       OUTCOME_FR[Outcome(fault["outcome"])], fault["why"])
    console.print(faults)
    if report.get("micropython") is not None:
        mpy = report["micropython"]
        console.print(f"  MicroPython : {mpy['records']} enregistrements de {len(mpy['terminals'])} terminaux refaits "
                      f"et signés, {'identiques' if mpy['identical'] else 'DIFFÉRENTS'} à ceux de CPython")
    for check in report["checks"]:
        mark = "[green]✓[/green]" if check["passed"] else "[red]✗[/red]"
        title = check.get("title") or CHECKS_FR[check["name"]]
        console.print(f"  {mark} {title}" + ("" if check["passed"] else f" — {check['detail']}"))
    if report["passed"]:
        console.print("[green]Tous les invariants tiennent.[/green]")
    else:
        console.print(f"[red]Invariant rompu.[/red] Rejouer avec --seed {report['seed']}.")


def broken_summary(report: dict) -> str:
    """What broke in a run, in one French line: the checks, and the faults that failed."""
    checks = [check.get("title") or CHECKS_FR[check["name"]] for check in report["checks"]
              if not check["passed"] and check["name"] != "each fault detected or survived"]
    faults = [FAULT_FR.get(f["kind"], f["kind"]) for f in report["faults"] if f["outcome"] == Outcome.FAILED]
    return "; ".join([*checks, *(f"{name} : échec" for name in faults)])


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{reason} ×{n}" for reason, n in sorted(counter.items()))


def checks_json(checks: list[Check]) -> list[dict[str, object]]:
    return [{"name": c.name, "passed": c.passed, "detail": "" if c.passed else c.detail,
             **({"title": c.title} if c.title else {})} for c in checks]


def faults_json(faults: list[Fault]) -> list[dict[str, object]]:
    return [f.as_json() for f in sorted(faults, key=lambda f: (f.time_s, f.kind.value))]
