"""Staff pages and their commands: cards, terminals, vendors' IBANs, console accounts, lists.

The same service writes the same audit entry whether a person acts in the console or on the
command line (the command also records the system user); every confirmation page changes
nothing; doing a thing twice does it once; roles and outsiders are refused (in-process, SQLite:
the command line runs on the same database file)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from caisse import audit
from caisse.cards import service as card_service
from caisse.cli.main import app
from caisse.db import session_factory
from caisse.members import households as household_service
from caisse.models import AuditEvent, CardStatus, Role, TerminalStatus
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from tests.console.conftest import EMAILS, PASSWORD, TestClient, csrf_token, post_form, sign_in, sign_in_directly

IBAN = "FR7630006000011234567890189"
NEW_IBAN = "DE89370400440532013000"
KEYS = ["04" + "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
               "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"]
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def _seed(engine: Engine) -> dict[str, Any]:
    """Two of everything: one for the console, one for the command line."""
    from caisse_common import protocol
    from tests.backend.factories import new_key

    with session_factory(engine)() as session:
        vendors = [vendor_service.create_vendor(session, name=f"Ferme {n}", kind="producer", zone="Nord", iban=IBAN).id for n in "AB"]
        household = household_service.create_household(session, name="Famille Diallo", members=4, zone="Mosson")
        assert household.id is not None
        cards = [card_service.issue_card(session, household_id=household.id, uid_hex=uid).uid.hex()
                 for uid in ("04a1b2c3d4e5f6", "04a1b2c3d4e5f7")]
        terminals = [terminal_registry.register_terminal(session, vendor_id=vendor or 0,
                                             public_key_hex=protocol.public_key_bytes(new_key()).hex()).id
                     for vendor in vendors]
        for email in ("partie@caisse.test", "partie2@caisse.test"):
            accounts.create_user(session, email=email, password=PASSWORD, role="committee")
        session.commit()
        return {"vendors": vendors, "household": household.id, "cards": cards, "terminals": terminals}


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    from tests.fixtures.database import ADMIN_TOKEN

    monkeypatch.setenv("CAISSE_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")  # not development: the schema is not checked at every command
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", ADMIN_TOKEN)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return invoke


def _events(engine: Engine, prefix: str = "") -> list[AuditEvent]:
    with session_factory(engine)() as session:
        return [e for e in audit.events(session, action_prefix=prefix, limit=1000) if e.actor != accounts.SYSTEM]


def _without(event: AuditEvent, *keys: str) -> tuple[str, str, dict[str, Any]]:
    detail = json.loads(event.detail or "{}")
    return event.actor, event.action, {k: v for k, v in detail.items() if k not in {"os_user", *keys}}


@sqlite_only
def test_the_console_and_the_command_line_write_the_same_audit_entry_but_the_system_user(
    console_client: TestClient, users: Any, engine: Engine, cli: Callable[..., tuple[int, str]],
) -> None:
    ids = _seed(engine)
    coordinator, treasurer, administrator = EMAILS[Role.COORDINATOR], EMAILS[Role.TREASURER], EMAILS[Role.ADMIN]
    sign_in(console_client, Role.COORDINATOR)
    [card_web, card_cli], [term_web, term_cli] = ids["cards"], ids["terminals"]
    assert post_form(console_client, "/console/cards", f"/console/cards/{card_web}/block", {"reason": "lost"}).status_code == 303
    assert post_form(console_client, "/console/terminals", f"/console/terminals/{term_web}/revoke", {}).status_code == 303
    assert cli("card", "block", card_cli, "--motif", "perdue", "--by", coordinator)[0] == 0
    assert cli("terminal", "revoke", str(term_cli), "--by", coordinator)[0] == 0
    assert post_form(console_client, f"/console/cards/{card_web}", f"/console/cards/{card_web}/unblock", {}).status_code == 303
    assert cli("card", "unblock", card_cli, "--by", coordinator)[0] == 0

    console_client.cookies.clear()
    sign_in(console_client, Role.TREASURER)
    vendor_web, vendor_cli = ids["vendors"]
    answer = post_form(console_client, f"/console/vendors/{vendor_web}/iban", f"/console/vendors/{vendor_web}/iban",
                       {"iban": NEW_IBAN, "confirmed": "1"})
    assert answer.status_code == 303
    assert cli("vendor", "iban-request", str(vendor_cli), "--iban", NEW_IBAN, "--by", treasurer)[0] == 0

    console_client.cookies.clear()
    sign_in(console_client, Role.ADMIN)
    with session_factory(engine)() as session:
        web_user = accounts.get_user(session, email="partie@caisse.test").id
    assert post_form(console_client, "/console/users", f"/console/users/{web_user}/disable", {}).status_code == 303
    assert cli("user", "disable", "partie2@caisse.test", "--by", administrator)[0] == 0

    pairs = {"card.block": (card_web, card_cli), "card.unblock": (card_web, card_cli),
             "terminal.revoke": (term_web, term_cli), "vendor.iban_request": (vendor_web, vendor_cli),
             "user.disable": ("partie@caisse.test", "partie2@caisse.test")}
    for action, (web_subject, cli_subject) in pairs.items():
        [from_cli, from_web] = [e for e in _events(engine, action) if e.action == action]
        assert from_web.subject.endswith(f":{web_subject}") and from_cli.subject.endswith(f":{cli_subject}")
        varying = ("change", "blocked_at", "vendor_id")  # which change, when blocked, whose terminal
        assert _without(from_web, *varying) == _without(from_cli, *varying), action
        assert "os_user" not in json.loads(from_web.detail or "{}")
        assert json.loads(from_cli.detail or "{}")["os_user"]


@sqlite_only
def test_a_command_naming_a_disabled_or_unknown_account_is_refused_and_writes_nothing(
    users: Any, engine: Engine, cli: Callable[..., tuple[int, str]],
) -> None:
    ids = _seed(engine)
    assert cli("user", "disable", EMAILS[Role.COORDINATOR], "--by", EMAILS[Role.ADMIN])[0] == 0
    before = len(_events(engine))
    for args in (("card", "block", ids["cards"][0]), ("terminal", "revoke", str(ids["terminals"][0])),
                 ("terminal", "clear", str(ids["terminals"][0])), ("vendor", "iban-request", str(ids["vendors"][0]),
                                                                   "--iban", NEW_IBAN)):
        for by in (EMAILS[Role.COORDINATOR], "personne@caisse.test"):
            code, output = cli(*args, "--by", by)
            assert (code, "not_an_active_account" in output, "Traceback" in output) == (1, True, False), args
    code, output = cli("user", "reset-password", EMAILS[Role.TREASURER], "--by", EMAILS[Role.COORDINATOR])
    assert code == 1 and "not_an_active_account" in output
    code, output = cli("user", "add", "x@caisse.test", "--password", PASSWORD, "--by", EMAILS[Role.TREASURER])
    assert code == 1 and "admin_required" in output
    assert len(_events(engine)) == before
    with session_factory(engine)() as session:
        assert card_service.get_card(session, uid_hex=ids["cards"][0]).status == CardStatus.ACTIVE


@sqlite_only
def test_a_new_iban_needs_a_second_person_to_be_approved(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    vendor = ids["vendors"][0]
    page = f"/console/vendors/{vendor}"
    sign_in(console_client, Role.TREASURER)
    preview = post_form(console_client, f"{page}/iban", f"{page}/iban", {"iban": "de89 3704 0044 0532 0130 00"})
    assert preview.status_code == 200 and NEW_IBAN in preview.text and "Ce qui va se passer" in preview.text
    assert _events(engine, "vendor.iban") == []  # shown, not requested
    token = csrf_token(preview.text)
    assert console_client.post(f"{page}/iban", data={"iban": NEW_IBAN, "confirmed": "1", "csrf_token": token}).status_code == 303
    twice = console_client.post(f"{page}/iban", data={"iban": NEW_IBAN, "confirmed": "1", "csrf_token": token})
    assert twice.status_code == 409 and "attend déjà" in twice.text
    with session_factory(engine)() as session:
        change = vendor_service.pending_iban_change(session, vendor_id=vendor)
        assert change is not None and change.id is not None
    approve = f"{page}/iban/{change.id}/approve"
    assert console_client.get(approve).status_code == 409  # the requester sees no approval page
    refused = console_client.post(approve, data={"csrf_token": token})
    assert refused.status_code == 409 and "Une autre personne" in refused.text
    with session_factory(engine)() as session:
        assert vendor_service.get_vendor(session, vendor_id=vendor).iban == IBAN
    console_client.cookies.clear()
    sign_in(console_client, Role.COORDINATOR)
    assert console_client.get(approve).status_code == 403  # a coordinator approves no IBAN
    console_client.cookies.clear()
    sign_in(console_client, Role.ADMIN)
    shown = console_client.get(approve)
    assert shown.status_code == 200 and IBAN in shown.text and NEW_IBAN in shown.text and "Action définitive" in shown.text
    assert console_client.post(approve, data={"csrf_token": csrf_token(shown.text)}).status_code == 303
    assert console_client.post(approve, data={"csrf_token": csrf_token(shown.text)}).status_code == 409  # decided already
    with session_factory(engine)() as session:
        assert vendor_service.get_vendor(session, vendor_id=vendor).iban == NEW_IBAN
    assert [e.action for e in _events(engine, "vendor.iban")] == ["vendor.iban_approve", "vendor.iban_request"]


@sqlite_only
def test_confirmation_pages_change_nothing_and_a_second_click_does_nothing_more(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    card, terminal = ids["cards"][0], ids["terminals"][0]
    sign_in(console_client, Role.COORDINATOR)
    pages = {f"/console/cards/{card}/block?reason=stolen": ("ne se débloque jamais", "Action définitive"),
             f"/console/terminals/{terminal}/revoke": ("Révoquer le terminal", "Action définitive")}
    for path, sentences in pages.items():
        shown = console_client.get(path)
        assert shown.status_code == 200 and all(s in shown.text for s in sentences), path
    assert console_client.get(f"/console/terminals/{terminal}/clear").status_code == 409  # not suspect
    assert console_client.get(f"/console/cards/{card}/unblock").status_code == 409  # not blocked
    assert _events(engine) == []
    token = csrf_token(console_client.get("/console/cards").text)
    for _ in range(2):
        assert console_client.post(f"/console/cards/{card}/block", data={"reason": "stolen", "csrf_token": token}).status_code == 303
        assert console_client.post(f"/console/terminals/{terminal}/revoke", data={"csrf_token": token}).status_code == 303
    assert sorted(e.action for e in _events(engine)) == ["card.block", "terminal.revoke"]
    final = console_client.post(f"/console/cards/{card}/unblock", data={"csrf_token": token})
    assert final.status_code == 409 and "ne se débloque pas" in final.text
    with session_factory(engine)() as session:
        assert card_service.get_card(session, uid_hex=card).block_reason == "stolen"
        assert terminal_registry.get_terminal(session, terminal_id=terminal).status == TerminalStatus.REVOKED


@sqlite_only
def test_an_administrator_creates_an_account_whose_password_is_shown_once_and_only_admins_may(
    console_client: TestClient, users: Any, engine: Engine, settings: Any,
) -> None:
    sign_in(console_client, Role.COORDINATOR)
    assert console_client.get("/console/users").status_code == 403
    token = csrf_token(console_client.get("/console/cards").text)
    forbidden = console_client.post("/console/users", data={"email": "n@caisse.test", "role": "admin", "confirmed": "1",
                                                            "csrf_token": token})
    assert forbidden.status_code == 403
    console_client.cookies.clear()
    sign_in(console_client, Role.ADMIN)
    preview = post_form(console_client, "/console/users", "/console/users", {"email": " Nouvelle@Caisse.test ", "role": "treasurer"})
    assert preview.status_code == 200 and "nouvelle@caisse.test" in preview.text and _events(engine, "user.") == []
    form = {"email": "nouvelle@caisse.test", "role": "treasurer", "confirmed": "1", "csrf_token": csrf_token(preview.text)}
    created = console_client.post("/console/users", data=form)
    password = re.search(r'aria-label="Mot de passe provisoire">([^<]+)<', created.text)
    assert created.status_code == 200 and password and created.headers["cache-control"] == "no-store"
    again = console_client.post("/console/users", data=form)  # reloaded, or clicked twice
    assert again.status_code == 409 and password.group(1) not in again.text
    [event] = _events(engine, "user.create")
    assert (event.actor, event.subject) == (EMAILS[Role.ADMIN], "user:nouvelle@caisse.test")
    assert password.group(1) not in (event.detail or "")
    with session_factory(engine)() as session:
        assert sign_in_directly(session, email="nouvelle@caisse.test", password=password.group(1), settings=settings)[0]


@sqlite_only
def test_a_reset_clicked_twice_resets_once_and_the_person_changes_it(console_client: TestClient, users: Any, engine: Engine) -> None:
    with session_factory(engine)() as session:
        target = accounts.get_user(session, email=EMAILS[Role.TREASURER]).id
    sign_in(console_client, Role.ADMIN)
    shown = console_client.get(f"/console/users/{target}/reset")
    assert shown.status_code == 200 and "Action définitive" in shown.text
    stamp = re.search(r'name="stamp" value="([^"]+)"', shown.text)
    assert stamp
    form = {"stamp": stamp.group(1), "csrf_token": csrf_token(shown.text)}
    first = console_client.post(f"/console/users/{target}/reset", data=form)
    second = console_client.post(f"/console/users/{target}/reset", data=form)
    assert (first.status_code, second.status_code) == (200, 409)
    password = re.search(r'aria-label="Mot de passe provisoire">([^<]+)<', first.text)
    assert password and len(_events(engine, "user.reset")) == 1
    console_client.cookies.clear()
    page = console_client.get("/console/login")
    assert console_client.post("/console/login", data={"email": EMAILS[Role.TREASURER], "password": password.group(1),
                                                       "csrf_token": csrf_token(page.text)}).status_code == 303
    mismatch = post_form(console_client, "/console/password", "/console/password",
                         {"current": password.group(1), "new": "un-nouveau-mot-de-passe", "again": "autre-chose-encore"})
    assert mismatch.status_code == 422 and "pas identiques" in mismatch.text
    changed = post_form(console_client, "/console/password", "/console/password",
                        {"current": password.group(1), "new": "un-nouveau-mot-de-passe", "again": "un-nouveau-mot-de-passe"})
    assert changed.status_code == 303
    assert [e.action for e in _events(engine, "user.")] == ["user.change_password", "user.reset_password"]


@sqlite_only
def test_an_outsider_posting_to_the_staff_pages_is_refused_and_nothing_is_written(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    for path in (f"/console/cards/{ids['cards'][0]}/block", f"/console/terminals/{ids['terminals'][0]}/revoke",
                 "/console/users", "/console/users/1/reset", f"/console/vendors/{ids['vendors'][0]}/iban"):
        answer = console_client.post(path, data={"email": "pirate@example.org", "role": "admin", "confirmed": "1",
                                                 "iban": NEW_IBAN, "csrf_token": "devine"})
        assert answer.status_code == 403, path
    assert _events(engine) == []
    for path in ("/console/cards", "/console/users", f"/console/terminals/{ids['terminals'][0]}/revoke"):
        assert console_client.get(path).status_code == 303  # to the sign-in page


def test_the_lists_search_filter_and_page_with_french_columns(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.ADMIN)
    cards = console_client.get("/console/cards", params={"q": "diallo", "status": "active"})
    assert cards.status_code == 200 and ids["cards"][0] in cards.text and "2 résultats" in cards.text
    assert "Aucune carte." in console_client.get("/console/cards", params={"q": "%'"}).text
    vendors = console_client.get("/console/vendors", params={"q": "FERME", "convention": "active"})
    assert "Ferme A" in vendors.text and "Ferme B" in vendors.text
    paged = console_client.get("/console/users", params={"q": "caisse.test", "page": "2"})
    assert paged.status_code == 200 and "page 1 sur 1" in paged.text  # past the last page: the last one, empty
    terminals = console_client.get("/console/terminals", params={"q": str(ids["terminals"][1])})
    assert "1 résultat " in terminals.text
    runs = console_client.get("/console/settlements", params={"q": "2026-11", "status": "approved"})
    assert runs.status_code == 200 and "0 résultat" in runs.text


@sqlite_only
def test_the_lists_on_the_command_line_print_a_table_or_french_csv_and_refuse_unknown_values(
    users: Any, engine: Engine, cli: Callable[..., tuple[int, str]],
) -> None:
    ids = _seed(engine)
    assert cli("card", "block", ids["cards"][1], "--motif", "volée", "--by", EMAILS[Role.COORDINATOR])[0] == 0
    code, french_csv = cli("liste", "cartes", "--etat", "bloquée", "--format", "csv")
    assert code == 0
    header, row, *rest = [line for line in french_csv.splitlines() if not line.startswith("Page ")]
    assert header == "carte,type,état,motif,depuis,foyer,nom du foyer" and rest == []
    assert row.startswith(f"{ids['cards'][1]},simple,bloquée,volée,") and row.endswith(",Famille Diallo")
    assert cli("liste", "cartes", "--etat", "blocked", "--format", "csv") == (0, french_csv)  # English aliases
    code, table = cli("liste", "commercants", "-r", "FERME", "--format", "table")
    assert code == 0 and "┃" in table and "Ferme" in table and "Page 1 sur 1 : 2 ligne(s)" in table  # a rich table
    assert "0 ligne(s) affichée(s) sur 0" in cli("liste", "foyers", "-r", "%")[1]
    assert "0 ligne(s) affichée(s) sur 0" in cli("liste", "foyers", "-r", "' OR 1=1 --")[1]
    assert cli("liste", "terminaux", "--etat", "À vérifier")[0] == cli("liste", "terminaux", "--etat", "a-verifier")[0] == 0
    code, refused = cli("liste", "terminaux", "--etat", "cassé")
    assert code == 2 and "« cassé »" in refused and "révoqué" in refused and "Traceback" not in refused
    assert cli("liste", "reglements", "--format", "xml")[0] == 2
    code, accounts_csv = cli("liste", "comptes", "--role", "tresorerie", "--format", "csv")
    assert accounts_csv.splitlines()[:2] == ["adresse,rôle,état,créé le,dernière connexion",
                                             f"{EMAILS[Role.TREASURER]},trésorerie,actif,{accounts_csv.splitlines()[1].split(',')[3]},"]
