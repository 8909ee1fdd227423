"""Every error code a service can raise reaches staff in French (console pages and CLI alike):
the sources are read with `ast`, so a new raise without a sentence fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import caisse
from caisse import errors
from caisse.errors import FRENCH_DETAILS, MESSAGES, CaisseError, Conflict, InvalidInput, french

SERVICES = Path(caisse.__file__).parent
# Terminals get these over their protocol and show their own screens; staff never read them.
TERMINAL_ERRORS = {errors.TerminalRefused.__name__, errors.SyncUnauthorized.__name__}
NOT_SERVICES = {"console", "api", "simulation", "migrations"}
STAFF_ERRORS = {cls.__name__ for cls in (CaisseError, *CaisseError.__subclasses__())} - TERMINAL_ERRORS


def _raised_codes() -> dict[str, str]:
    """code -> where it is raised, for every staff error built with a literal code in the services
    (backend/caisse, its pages, routes, simulation and migrations aside)."""
    codes = {}
    for path in sorted(SERVICES.rglob("*.py")):
        if path.relative_to(SERVICES).parts[0] in NOT_SERVICES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in STAFF_ERRORS:
                codes.setdefault(node.args[0].value, f"{path.relative_to(SERVICES)}:{node.lineno}")
    return codes


def test_the_scan_finds_the_codes_it_must() -> None:
    codes = _raised_codes()
    assert {"month_closed", "reference_reused", "import_conflict", "too_many_cards", "draw_state"} <= codes.keys()
    assert "bad_signature" not in codes  # a terminal's error, not staff's


def test_every_code_a_service_raises_has_a_french_sentence() -> None:
    missing = {code: where for code, where in _raised_codes().items() if code not in MESSAGES and code not in FRENCH_DETAILS}
    assert missing == {}


def test_french_gives_the_sentence_or_the_services_own_french_detail() -> None:
    assert french(Conflict("month_closed", "month 2026-01 is closed")) == MESSAGES["month_closed"]
    detail = "ligne 3 : un nom est requis (200 caractères au plus)"
    assert french(InvalidInput("invalid_import", detail)) == detail
    assert french(InvalidInput("never_raised", "no such thing")) == "Opération refusée (never_raised) : no such thing"
