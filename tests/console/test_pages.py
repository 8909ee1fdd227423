"""Households, vendors and terminals pages: every change goes through a service and leaves an
audit event; bad input gets a French message and changes nothing (in-process, both databases)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from caisse import audit
from caisse.cards import authentication as card_auth
from caisse.cards import service as card_service
from caisse.db import session_factory
from caisse.members import households as household_service
from caisse.models import AuditEvent, CardStatus, Contribution, Household, Role, TerminalStatus, TransactionRecord
from caisse.months import Month
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from tests.console.conftest import EMAILS, TestClient, post_form, sign_in

IBAN = "FR7630006000011234567890189"
TERMINAL_KEY = "04" + "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" \
                      "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"


def _events(engine: Engine, action: str) -> list[AuditEvent]:
    """What people did (_seed writes as the system)."""
    with session_factory(engine)() as session:
        return [e for e in audit.events(session, action_prefix=action) if e.actor != accounts.SYSTEM]


def _seed(engine: Engine) -> dict[str, int]:
    with session_factory(engine)() as session:
        vendor = vendor_service.create_vendor(session, name="Ferme des Lilas", kind="producer", zone="Nord", iban=IBAN)
        household = household_service.create_household(session, name="Famille Diallo", members=4, zone="Mosson")
        assert vendor.id and household.id
        card_service.issue_card(session, household_id=household.id, uid_hex="04a1b2c3d4e5f6")
        terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id, public_key_hex=TERMINAL_KEY)
        session.commit()
        return {"vendor": vendor.id, "household": household.id, "terminal": terminal.id or 0}


def test_enrolling_a_household_creates_it_and_audits_who_did(console_client: TestClient, users: Any, engine: Engine) -> None:
    sign_in(console_client, Role.COORDINATOR)
    answer = post_form(console_client, "/console/households/new", "/console/households",
                       {"name": "Famille Martin", "members": "3", "zone": "Figuerolles"})
    assert answer.status_code == 303
    household_id = int(answer.headers["location"].rsplit("/", 1)[1])
    page = console_client.get(answer.headers["location"])
    assert "Foyer « Famille Martin » inscrit." in page.text and "Famille Martin" in page.text
    [event] = _events(engine, "household.enrol")
    assert (event.actor, event.subject) == (EMAILS[Role.COORDINATOR], f"household:{household_id}")
    assert json.loads(event.detail or "{}") == {"members": 3, "name": "Famille Martin", "zone": "Figuerolles"}


@pytest.mark.parametrize("members", ["0", "²", "99999999999999999999"])  # '²' passes isdigit(), not int()
def test_a_household_with_bad_input_is_refused_in_french_and_not_created(
    console_client: TestClient, users: Any, engine: Engine, members: str,
) -> None:
    sign_in(console_client, Role.COORDINATOR)
    answer = post_form(console_client, "/console/households/new", "/console/households",
                       {"name": "Famille Martin", "members": members, "zone": "Figuerolles"})
    assert answer.status_code == 422
    assert "Un foyer compte au moins une personne." in answer.text or "nombre entier" in answer.text
    assert 'value="Famille Martin"' in answer.text  # the form keeps what was typed
    with session_factory(engine)() as session:
        assert session.execute(select(Household)).first() is None
    assert _events(engine, "household.") == []


def test_editing_a_household_audits_before_and_after(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.ADMIN)
    page = f"/console/households/{ids['household']}"
    answer = post_form(console_client, page, page, {"name": "Famille Diallo", "members": "5", "zone": "Mosson"})
    assert answer.status_code == 303
    [event] = _events(engine, "household.edit")
    detail = json.loads(event.detail or "{}")
    assert (detail["before"]["members"], detail["after"]["members"]) == (4, 5)


def test_issuing_then_blocking_a_card(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{ids['household']}"
    answer = post_form(console_client, page, f"{page}/cards", {"uid": "04:A1:B2:C3:D4:E5:F7"})
    assert answer.status_code == 303
    answer = post_form(console_client, page, "/console/cards/04a1b2c3d4e5f7/block", {})
    assert answer.status_code == 303
    with session_factory(engine)() as session:
        assert card_service.get_card(session, uid_hex="04a1b2c3d4e5f7").status == CardStatus.BLOCKED
        assert card_service.get_card(session, uid_hex="04a1b2c3d4e5f6").status == CardStatus.ACTIVE
    assert [e.subject for e in _events(engine, "card.")] == ["card:04a1b2c3d4e5f7", "card:04a1b2c3d4e5f7"]
    assert [e.action for e in _events(engine, "card.")] == ["card.block", "card.issue"]
    history = console_client.get(page).text
    assert "carte bloquée <span class=\"mono\">04a1b2c3d4e5f7</span>" in history and "bloquée (perdue) le" in history


def test_replacing_a_card_blocks_the_old_one_and_issues_the_new_one_to_the_same_household(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{ids['household']}"
    shown = console_client.get(f"{page}/cards/04a1b2c3d4e5f6/replace", params={"new_uid": "04 11 22 33 44 55 66"})
    assert shown.status_code == 200 and "sera bloquée pour toujours" in shown.text and 'value="04112233445566"' in shown.text
    assert console_client.get(f"{page}/cards/04a1b2c3d4e5f6/replace", params={"new_uid": "zz"}).status_code == 422
    with session_factory(engine)() as session:  # shown, not done
        assert card_service.get_card(session, uid_hex="04a1b2c3d4e5f6").status == CardStatus.ACTIVE
    confirmation = f"{page}/cards/04a1b2c3d4e5f6/replace?new_uid=04112233445566"
    answer = post_form(console_client, confirmation, f"{page}/cards/04a1b2c3d4e5f6/replace", {"new_uid": "04112233445566"})
    assert answer.status_code == 303
    with session_factory(engine)() as session:
        old, new = (card_service.get_card(session, uid_hex=uid) for uid in ("04a1b2c3d4e5f6", "04112233445566"))
        assert (old.status, old.block_reason) == (CardStatus.BLOCKED, "replaced")
        assert (new.status, new.household_id) == (CardStatus.ACTIVE, ids["household"])
    [event] = _events(engine, "card.replace")
    assert event.subject == "card:04a1b2c3d4e5f6" and json.loads(event.detail or "{}")["new_uid"] == "04112233445566"
    refused = post_form(console_client, page, f"{page}/cards/04112233445566/replace", {"new_uid": "04112233445566"})
    assert refused.status_code == 409 and "Cette carte est déjà attribuée." in refused.text
    assert len(_events(engine, "card.replace")) == 1


def test_a_stolen_card_then_returned_card_is_audited_with_its_reason(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{ids['household']}"
    assert post_form(console_client, page, "/console/cards/04a1b2c3d4e5f6/block", {"reason": "stolen"}).status_code == 303
    shown = console_client.get(f"{page}/cards/04a1b2c3d4e5f6/return")
    assert shown.status_code == 200 and "quitte le foyer" in shown.text
    assert post_form(console_client, f"{page}/cards/04a1b2c3d4e5f6/return", f"{page}/cards/04a1b2c3d4e5f6/return", {}).status_code == 303
    with session_factory(engine)() as session:
        assert card_service.get_card(session, uid_hex="04a1b2c3d4e5f6").status == CardStatus.RETURNED
    assert [(e.action, json.loads(e.detail or "{}").get("reason")) for e in _events(engine, "card.")] == [
        ("card.return", None), ("card.block", "stolen")]
    assert "rendue (volée)" in console_client.get(page).text


def test_a_card_of_another_household_cannot_be_returned_from_this_one(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    with session_factory(engine)() as session:
        other = household_service.create_household(session, name="Famille Autre", members=1, zone="Nord")
        session.commit()
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{other.id}"
    answer = post_form(console_client, page, f"{page}/cards/04a1b2c3d4e5f6/return", {})
    assert answer.status_code == 404 and "Carte inconnue." in answer.text
    with session_factory(engine)() as session:
        assert card_service.get_card(session, uid_hex="04a1b2c3d4e5f6").status == CardStatus.ACTIVE
    assert ids and _events(engine, "card.") == []


def test_a_card_uid_already_issued_is_refused(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{ids['household']}"
    answer = post_form(console_client, page, f"{page}/cards", {"uid": "04a1b2c3d4e5f6"})
    assert answer.status_code == 409 and "Cette carte est déjà attribuée." in answer.text
    answer = post_form(console_client, page, f"{page}/cards", {"uid": "pas-hexa"})
    assert answer.status_code == 422 and "hexadécimal" in answer.text


def test_search_finds_a_household_by_name_zone_id_or_card(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    with session_factory(engine)() as session:
        household_service.create_household(session, name="Famille Bernard", members=2, zone="Centre")
        session.commit()
    sign_in(console_client, Role.COORDINATOR)
    for query in ("diallo", "MOSSON", str(ids["household"]), "04a1b2c3d4e5f6"):
        text = console_client.get("/console/households", params={"q": query}).text
        assert "Famille Diallo" in text and "Famille Bernard" not in text, query
    assert "Aucun foyer." in console_client.get("/console/households", params={"q": "personne"}).text


def test_household_page_shows_balance_allowances_contributions_and_payments(
    console_client: TestClient, users: Any, engine: Engine, session: Session, settings: Any,
) -> None:
    from caisse.fund import allowances
    from caisse.fund import service as fund
    from caisse.ledger import postings as ledger

    ids = _seed(engine)
    # The monthly allowance as caisse.fund.allowances posts it (a credit by hand cannot take its reference).
    member = ledger.ensure_account(session, code=ledger.member_code(ids["household"]), kind=ledger.AccountKind.MEMBER)
    ledger.post_transfer(session, debit=ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND,
                                                               kind=ledger.AccountKind.ALLOWANCE_FUND),
                         credit=member, amount_cents=10_000, kind=ledger.TransferKind.ALLOWANCE,
                         reference=allowances.allowance_reference(ids["household"], Month.parse("2026-11")))
    household_service.credit_household(session, household_id=ids["household"], amount_cents=1_234, memo="Rattrapage octobre")
    other = household_service.create_household(session, name="Famille Voisine", members=1, zone="Nord")
    household_service.credit_household(session, household_id=other.id or 0, amount_cents=555, memo="Pas pour ce foyer")
    fund.record_contribution(session, household_id=ids["household"], month="2026-11", amount_cents=2_500, settings=settings)
    session.commit()
    sign_in(console_client, Role.COORDINATOR)
    text = console_client.get(f"/console/households/{ids['household']}").text
    assert re.search(r"Solde disponible<strong>112,34 €", text)
    assert "<td>Allocation 2026-11</td><td class=\"num\">100,00 €</td>" in text
    assert "<td>Rattrapage octobre</td><td class=\"num\">12,34 €</td>" in text
    assert "Pas pour ce foyer" not in text
    assert "<td>2026-11</td><td class=\"num\">25,00 €</td>" in text


def test_a_vendor_is_created_and_edited_with_a_validated_iban(console_client: TestClient, users: Any, engine: Engine) -> None:
    sign_in(console_client, Role.COORDINATOR)
    form = {"name": "Épicerie du Plan", "kind": "epicerie", "zone": "Plan Cabanes", "market": "", "iban": "FR76 3000 6000 0112 3456 7890 189",
            "convention_status": "pending", "convention_start": "2026-11-01", "convention_end": ""}
    answer = post_form(console_client, "/console/vendors/new", "/console/vendors", form)
    assert answer.status_code == 303
    page = answer.headers["location"]
    bad = post_form(console_client, page, page, {**form, "iban": "FR76 3000 6000 0112 3456 7890 188"})
    assert bad.status_code == 422 and "IBAN invalide" in bad.text
    # The edit form cannot accredit: a crafted post of the accreditation's fields changes only the rest.
    good = post_form(console_client, page, page, {**form, "market": "Marché du Plan", "convention_status": "active",
                                                   "convention_end": "2027-10-31"})
    assert good.status_code == 303
    [created] = _events(engine, "vendor.create")
    [edited] = _events(engine, "vendor.edit")
    assert created.detail and "FR7630006000011234567890189" in created.detail
    assert json.loads(edited.detail or "{}") == {"market": {"before": None, "after": "Marché du Plan"}}
    assert "sa page</a>" in console_client.get(page).text
    listing = console_client.get("/console/vendors", params={"q": "plan"}).text
    assert "Épicerie du Plan" in listing and "En attente" in listing


def test_revoking_a_terminal_is_audited_once(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    listing = console_client.get("/console/terminals").text
    assert "Ferme des Lilas" in listing and "En service" in listing
    for _ in range(2):
        answer = post_form(console_client, "/console/terminals", f"/console/terminals/{ids['terminal']}/revoke", {})
        assert answer.status_code == 303
    with session_factory(engine)() as session:
        assert terminal_registry.get_terminal(session, terminal_id=ids["terminal"]).status == TerminalStatus.REVOKED
    assert [e.subject for e in _events(engine, "terminal.")] == [f"terminal:{ids['terminal']}"]
    assert "Révoqué" in console_client.get("/console/terminals", params={"status": "revoked"}).text


def test_a_suspect_terminal_is_cleared_and_its_held_records_released_from_the_console_each_audited(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    from caisse.ingest import review

    ids = _seed(engine)
    with session_factory(engine)() as session:  # a suspect terminal with two held records, as ingestion leaves it
        record_ids = [_record(session, ids, seq) for seq in (1, 2)]
        assert review.hold(session, record_ids=record_ids, reason="terminal signalé suspect") == 2
        terminal_registry.get_terminal(session, terminal_id=ids["terminal"]).status = TerminalStatus.SUSPECT
        session.commit()
    sign_in(console_client, Role.COORDINATOR)
    assert "Lever le soupçon" in console_client.get("/console/terminals").text
    answer = post_form(console_client, "/console/terminals", f"/console/terminals/{ids['terminal']}/clear", {})
    assert answer.status_code == 303
    assert "remis en service" in console_client.get(answer.headers["location"]).text
    answer = post_form(console_client, "/console/terminals", f"/console/terminals/{ids['terminal']}/release", {})
    assert "2 enregistrement(s) libéré(s)" in console_client.get(answer.headers["location"]).text
    with session_factory(engine)() as session:
        assert terminal_registry.get_terminal(session, terminal_id=ids["terminal"]).status == TerminalStatus.ACTIVE
        reviews = session.execute(select(TransactionRecord.review).where(TransactionRecord.id.in_(record_ids))).scalars().all()  # type: ignore[union-attr]
    assert reviews == ["released", "released"]
    assert [(e.actor, e.action) for e in _events(engine, "terminal.")] == [(EMAILS[Role.COORDINATOR], "terminal.clear")]
    assert sorted(e.subject for e in _events(engine, "record.release")) == sorted(f"record:{i}" for i in record_ids)
    answer = post_form(console_client, "/console/terminals", f"/console/terminals/{ids['terminal']}/clear", {})
    assert "pas signalé suspect" in console_client.get(answer.headers["location"]).text


def _record(session: Session, ids: dict[str, int], seq: int) -> int:
    """An accepted payment of the seeded terminal, stored as ingestion stores one (its ledger posting included)."""
    from caisse.ledger import postings as ledger

    record = TransactionRecord(terminal_id=ids["terminal"], seq=seq, raw=b"r", digest=bytes(32), kind=1, flags=0, time=0,
                               amount_cents=500, ref_seq=0, card_uid=bytes.fromhex("04a1b2c3d4e5f6"), card_auth=bytes(24),
                               prev_hash=bytes(32), household_id=ids["household"], status="accepted", chain_verified=True)
    session.add(record)
    member, payable = ledger.member_code(ids["household"]), ledger.vendor_payable_code(ids["vendor"])
    accounts = ledger.account_ids(session, codes=[member, payable])
    ledger.post_transfer(session, debit=accounts[member], credit=accounts[payable], amount_cents=500, kind=ledger.TransferKind.PAYMENT,
                         reference=ledger.record_reference(ids["terminal"], seq))
    session.flush()
    assert record.id is not None
    return record.id


def test_terminals_show_the_firmware_version_they_reported_or_inconnu(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    cell = re.compile(r"<td[^>]*>(inconnu|0\.1\.0)</td>")
    assert cell.findall(console_client.get("/console/terminals").text) == ["inconnu"]
    with session_factory(engine)() as session:  # as a sync with X-Caisse-Firmware leaves it
        terminal_registry.get_terminal(session, terminal_id=ids["terminal"]).firmware_version = "0.1.0"
        session.commit()
    for page in ("/console/terminals", f"/console/vendors/{ids['vendor']}"):
        assert cell.findall(console_client.get(page).text) == ["0.1.0"]


def test_an_unknown_household_is_a_french_404(console_client: TestClient, users: Any) -> None:
    sign_in(console_client, Role.COORDINATOR)
    answer = console_client.get("/console/households/999")
    assert answer.status_code == 404 and "Foyer introuvable." in answer.text
    answer = console_client.get("/console/households/abc")
    assert answer.status_code == 422 and "Formulaire incomplet" in answer.text


def test_the_audit_log_lists_changes_for_administrators_only(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    page = f"/console/households/{ids['household']}"
    assert post_form(console_client, page, "/console/cards/04a1b2c3d4e5f6/block", {"reason": "lost"}).status_code == 303
    assert console_client.get("/console/audit").status_code == 403
    console_client.cookies.clear()
    sign_in(console_client, Role.ADMIN)
    text = console_client.get("/console/audit", params={"action": "card."}).text
    assert "carte bloquée" in text and "card:04a1b2c3d4e5f6" in text and EMAILS[Role.COORDINATOR] in text
    assert "Aucune modification." in console_client.get("/console/audit", params={"actor": "personne@caisse.test"}).text


def test_a_contribution_is_recorded_on_the_household_page_in_cents_and_audited(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    ids = _seed(engine)
    page = f"/console/households/{ids['household']}"
    sign_in(console_client, Role.COORDINATOR)
    for amount in ("-3", "12,345", "douze"):
        refused = post_form(console_client, page, f"{page}/contributions", {"month": "2026-01", "amount": amount})
        assert refused.status_code == 422 and "Montant invalide" in refused.text
    bad_month = post_form(console_client, page, f"{page}/contributions", {"month": "janvier", "amount": "12,50"})
    assert bad_month.status_code == 422 and "écrit AAAA-MM." in bad_month.text
    assert _events(engine, "contribution.") == []
    answer = post_form(console_client, page, f"{page}/contributions", {"month": "2026-01", "amount": "12,50"})
    assert answer.status_code == 303
    shown = console_client.get(answer.headers["location"]).text
    assert "Cotisation de 12,50 € pour 2026-01 enregistrée." in shown and "cotisation enregistrée" in shown
    with session_factory(engine)() as session:
        [contribution] = session.execute(select(Contribution)).scalars().all()
        assert (contribution.household_id, contribution.month, contribution.amount_cents) == (ids["household"], "2026-01", 1250)
    [event] = _events(engine, "contribution.record")
    assert (event.actor, event.subject) == (EMAILS[Role.COORDINATOR], f"household:{ids['household']}")


def test_a_card_flagged_but_active_shows_its_flag_to_staff(console_client: TestClient, users: Any, engine: Engine) -> None:
    ids = _seed(engine)
    with session_factory(engine)() as session:
        card = card_service.get_card(session, uid_hex="04a1b2c3d4e5f6")
        card_auth.flag_cards(session, reasons={card.id or 0: "MAC SUN invalide : message falsifié"})
        session.commit()
    sign_in(console_client, Role.COORDINATOR)
    page = console_client.get(f"/console/households/{ids['household']}").text
    assert "Signalée, à vérifier : MAC SUN invalide : message falsifié" in page


def test_a_terminal_shows_its_last_health_report_in_french(console_client: TestClient, users: Any, engine: Engine) -> None:
    from caisse.models import TerminalHealth

    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)
    assert "aucun rapport" in console_client.get("/console/terminals").text
    assert "aucun rapport d'état" in console_client.get(f"/console/terminals/{ids['terminal']}").text
    with session_factory(engine)() as session:  # as caisse.terminals.health stores a signed report
        session.add(TerminalHealth(
            terminal_id=ids["terminal"], terminal_time=1767254400, firmware_version="0.2.0", uptime_s=11520, boots=5,
            watchdog_resets=1, crash_resets=1, task_restarts=9, safe_mode_boots=0,
            errors={"i2c": 3, "nfc": 2, "secure_element": 0, "flash": 1, "sync": 4, "other": 0},
            last_error="OSError: 19", battery_mv=3480, battery_low=True, unsent_records=12, unsigned_records=0,
            log_free_bytes=480000))
        session.commit()
    for page in ("/console/terminals", f"/console/vendors/{ids['vendor']}"):
        text = console_client.get(page).text
        assert "batterie faible" in text and "2 redémarrages" in text
    text = console_client.get(f"/console/terminals/{ids['terminal']}").text
    for shown in ("3,48 V", "faible : à recharger", "3 h 12 min", "Lecteur de cartes", "Mémoire flash",
                  "<code>OSError: 19</code>", "469 Kio"):
        assert shown in text, shown
    answer = console_client.get("/console/terminals/999")
    assert answer.status_code == 404 and "Terminal introuvable." in answer.text


def test_a_terminal_acknowledged_further_than_a_restored_database_shows_whether_its_gap_was_filled(
        console_client: TestClient, users: Any, engine: Engine) -> None:
    from caisse.models import Terminal, TerminalHealth

    ids = _seed(engine)
    sign_in(console_client, Role.COORDINATOR)

    def report(acked: int, **fields: Any) -> None:
        with session_factory(engine)() as session:  # as caisse.terminals.health stores a signed report
            session.merge(TerminalHealth(
                terminal_id=ids["terminal"], terminal_time=1767254400, firmware_version="0.3.0", uptime_s=60, boots=1,
                watchdog_resets=0, crash_resets=0, task_restarts=0, safe_mode_boots=0, errors={}, last_error="",
                battery_mv=None, battery_low=False, unsent_records=0, unsigned_records=0, log_free_bytes=480000,
                rewound_from_seq=9, rewound_to_seq=4, terminal_acked_seq=9, **fields))
            terminal = session.get(Terminal, ids["terminal"])
            assert terminal is not None
            terminal.acked_seq = acked
            session.commit()

    report(4)
    for page in ("/console/terminals", f"/console/vendors/{ids['vendor']}"):
        text = console_client.get(page).text
        assert "renvoi après restauration : en cours (4 / 9)" in text and "correcte" not in text, page
    report(4, lost_first_seq=5, lost_last_seq=6)
    text = console_client.get(f"/console/terminals/{ids['terminal']}").text
    assert "n° 5 à 6 plus sur le terminal" in text
    assert "Enregistrements n° 5 à 6 : plus sur le terminal." in text
    page = f"/console/terminals/{ids['terminal']}"
    answer = post_form(console_client, page, f"{page}/accept-loss", {})
    assert answer.status_code == 303
    text = console_client.get(answer.headers["location"]).text
    assert "perte des n° 5 à 6 constatée" in text and "Constater la perte" not in text
    assert "en cours (6 / 9)" in text  # past the gap; the terminal has yet to send 7..9
    again = post_form(console_client, page, f"{page}/accept-loss", {})  # a second click
    assert "rien à constater" in console_client.get(again.headers["location"]).text
    report(9)
    assert "renvoi après restauration : complet" in console_client.get("/console/terminals").text
