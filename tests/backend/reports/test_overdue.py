"""Nothing waits forever (caisse.reports.overdue): held records, cards blocked as copies, households and vendor
payables below zero waiting longer than CAISSE_OVERDUE_AFTER_DAYS are listed, oldest first, by
`caisse verify` and on the console's home page; what is recent, or was settled, is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import DateTime, Engine, bindparam, text
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cards import authentication as card_auth
from caisse.cards import service as card_service
from caisse.cli.main import app
from caisse.config import Settings
from caisse.db import session_factory
from caisse.ingest import review
from caisse.members import households as household_service
from caisse.reports import overdue
from caisse.settlement import runs as settlement
from tests.backend.factories import T0, new_uid
from tests.backend.settlement.test_settlement import DAY1, Market
from tests.fixtures.database import PG_SCHEMA, make_settings

NOW = datetime.now(UTC).replace(microsecond=0)  # caisse verify reads the wall clock
LONG_AGO, RECENTLY = NOW - timedelta(days=20), NOW - timedelta(days=2)
# The order the list must give: the card was flagged first, then the household, the vendor, the record.
CARD_AT, HOUSEHOLD_AT, VENDOR_AT = (LONG_AGO - timedelta(days=days) for days in (3, 2, 1))

pytestmark = pytest.mark.usefixtures("deciders")  # review decisions name active console accounts


def _record_id(session: Session, market: Market, index: int, seq: int) -> int:
    return session.execute(text("SELECT id FROM transaction_record WHERE terminal_id = :t AND seq = :s"),
                           {"t": market.chains[index].terminal_id, "s": seq}).scalar_one()


def _dated(session: Session, table: str, column: str, moment: datetime, where: str, **params: object) -> None:
    statement = text(f"UPDATE {table} SET {column} = :moment WHERE {where}").bindparams(
        bindparam("moment", type_=DateTime(timezone=True)))
    session.execute(statement, {"moment": moment, **params})


@pytest.fixture
def waiting_world(session: Session, engine: Engine, settings: Settings, tmp_path: Path) -> dict[str, int]:
    """A held record received long ago and one recently; a card flagged long ago; a household
    below zero since long ago, one below zero only recently (after being back above zero), one
    below zero long ago and back above since; a vendor whose void outran its settled payment."""
    rules = make_settings(str(settings.database_url), settlement_dir=str(tmp_path))
    market = Market(session, rules)
    market.pay(0, 1_250)
    market.pay(0, 800)
    old_held, new_held = _record_id(session, market, 0, 1), _record_id(session, market, 0, 2)
    review.hold(session, record_ids=[old_held, new_held], reason="carte suspecte")
    _dated(session, "transaction_record", "received_at", LONG_AGO, "id = :r", r=old_held)
    _dated(session, "transaction_record", "received_at", RECENTLY, "id = :r", r=new_held)
    market.pay(1, 600)  # settled below, then voided after the run: vendor 2 owes 6 €
    session.commit()
    settlement.settle(session_factory(engine), run_date=DAY1, settings=rules)
    market.upload(1, [market.chains[1].void(1, time=T0 + 86_400)])
    _dated(session, "ledger_transfer", "created_at", VENDOR_AT, "kind = 'void'")
    households = {}
    for name, steps in (("Famille Roux", [(-1, HOUSEHOLD_AT)]),  # below zero since long ago
                        ("Famille Petit", [(-1, LONG_AGO), (+2, LONG_AGO + timedelta(days=1)), (-3, RECENTLY)]),
                        ("Famille Blanc", [(-1, LONG_AGO), (+2, LONG_AGO + timedelta(days=1))])):
        household = household_service.create_household(session, name=name, members=1, zone="Sud")
        assert household.id is not None
        households[name] = household.id
        uid = new_uid()
        card_service.issue_card(session, household_id=household.id, uid_hex=uid.hex())
        balance, since = 0, None
        for index, (units, moment) in enumerate(steps):
            if units > 0:
                household_service.credit_household(session, household_id=household.id, amount_cents=units * 1_000,
                                                   reference=f"geste{household.id}-{index}")
            else:
                session.commit()
                market.upload(0, [market.chains[0].pay(uid, -units * 1_000)])
            since = moment if balance >= 0 > balance + units else None if balance + units >= 0 else since
            balance += units
        # caisse.fund.overdrafts stamps the crossing with the wall clock: moved to when the step "happened".
        session.execute(text("UPDATE household SET overdrawn_since = :at WHERE id = :h AND overdrawn_since IS NOT NULL")
                        .bindparams(bindparam("at", type_=DateTime(timezone=True))), {"at": since, "h": household.id})
    flagged = new_uid()
    card_service.issue_card(session, household_id=households["Famille Blanc"], uid_hex=flagged.hex())
    card_id = session.execute(text("SELECT id FROM card WHERE uid = :u"), {"u": flagged}).scalar_one()
    card_auth.block_copied_cards(session, reasons={card_id: "message SUN rejoué"})
    _dated(session, "card", "blocked_at", CARD_AT, "id = :c", c=card_id)
    session.commit()
    return {"old_held": old_held, "roux": households["Famille Roux"], "petit": households["Famille Petit"],
            "vendor": market.vendor_ids[1], "card": card_id}


def test_what_waits_longer_than_the_delay_is_listed_oldest_first(session: Session, waiting_world: dict[str, int]) -> None:
    rules = make_settings(overdue_after_days=7)
    found = overdue.overdue(session, settings=rules, now=NOW)
    uid = session.execute(text("SELECT uid FROM card WHERE id = :c"), {"c": waiting_world["card"]}).scalar_one()
    assert [(w.kind, w.subject, w.since) for w in found] == [
        (overdue.WaitingKind.FLAGGED_CARD, f"card:{bytes(uid).hex()}", CARD_AT),
        (overdue.WaitingKind.NEGATIVE_HOUSEHOLD, f"household:{waiting_world['roux']}", HOUSEHOLD_AT),
        (overdue.WaitingKind.NEGATIVE_PAYABLE, f"vendor:{waiting_world['vendor']}", VENDOR_AT),
        (overdue.WaitingKind.HELD_RECORD, f"record:{waiting_world['old_held']}", LONG_AGO),
    ]
    texts = {w.kind: w.text for w in found}
    assert texts[overdue.WaitingKind.HELD_RECORD].startswith(f"enregistrement {waiting_world['old_held']} (paiement de 12,50 €")
    assert "caisse review release|reject" in texts[overdue.WaitingKind.HELD_RECORD] and "carte suspecte" in texts[overdue.WaitingKind.HELD_RECORD]
    paris = HOUSEHOLD_AT.astimezone(ZoneInfo("Europe/Paris"))
    assert texts[overdue.WaitingKind.NEGATIVE_HOUSEHOLD] == (f"foyer {waiting_world['roux']} : solde de -10,00 € depuis le {paris:%d/%m/%Y} ;"
                                                 " ses prochaines allocations le couvrent d'abord, au-delà à régler avec le foyer")
    assert texts[overdue.WaitingKind.NEGATIVE_PAYABLE].startswith(f"commerçant {waiting_world['vendor']} : solde à payer de -6,00 €")
    assert "message SUN rejoué" in texts[overdue.WaitingKind.FLAGGED_CARD]
    assert {w.kind: w.amount_cents for w in found}[overdue.WaitingKind.NEGATIVE_HOUSEHOLD] == -1_000
    # A longer delay: nothing is that old.
    assert overdue.overdue(session, settings=make_settings(overdue_after_days=30), now=NOW) == []
    # Famille Petit went below zero long ago, came back, and went below again two days ago: not listed yet.
    assert f"household:{waiting_world['petit']}" not in {w.subject for w in found}
    assert f"household:{waiting_world['petit']}" in {
        w.subject for w in overdue.overdue(session, settings=make_settings(overdue_after_days=1), now=NOW)}
    session.commit()


def test_deciding_or_returning_takes_a_line_off_the_list(session: Session, waiting_world: dict[str, int]) -> None:
    review.release(session, record_id=waiting_world["old_held"], by="claire@caisse.test")
    uid = session.execute(text("SELECT uid FROM card WHERE id = :c"), {"c": waiting_world["card"]}).scalar_one()
    card_service.return_card(session, uid_hex=uid.hex())
    session.commit()
    kinds = {w.kind for w in overdue.overdue(session, settings=make_settings(overdue_after_days=7), now=NOW)}
    assert kinds == {overdue.WaitingKind.NEGATIVE_HOUSEHOLD, overdue.WaitingKind.NEGATIVE_PAYABLE}
    session.commit()


def test_verify_lists_what_waits_and_still_exits_0_on_sound_books(
    session: Session, waiting_world: dict[str, int], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(settings.database_url)
    monkeypatch.setenv("CAISSE_DATABASE_URL", url if url.startswith("sqlite") else f"{url}?options=-csearch_path%3D{PG_SCHEMA}")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "test-admin-token")
    monkeypatch.setenv("CAISSE_OVERDUE_AFTER_DAYS", "7")
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "En attente d'une personne depuis plus de 7 jour(s) : 4" in result.stdout
    assert f"    – foyer {waiting_world['roux']} : solde de -10,00 €" in result.stdout
    monkeypatch.setenv("CAISSE_OVERDUE_AFTER_DAYS", "3650")
    assert "Rien n'attend une personne depuis plus de 3650 jour(s)." in CliRunner().invoke(app, ["verify"]).stdout


def test_the_delay_setting_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError):
        make_settings(overdue_after_days=-1)

