"""The Fonds page (caisse.console.routes.fund): each money step previewed, then confirmed once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse import audit
from caisse.db import session_factory
from caisse.fund.allowances import contributed_cents
from caisse.members import households as household_service
from caisse.models import AuditEvent, Contribution, LedgerTransfer, Role
from tests.console.conftest import EMAILS, TestClient, csrf_token, sign_in

PAGE = "/console/fund"


def _count(engine: Engine, table: Any) -> int:
    with session_factory(engine)() as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def _households(engine: Engine, count: int) -> list[int]:
    with session_factory(engine)() as session:
        ids = [household_service.create_household(session, name=f"Famille {n}", members=1 + n % 3, zone="Nord").id for n in range(count)]
        session.commit()
    return [i for i in ids if i is not None]


def _post(client: TestClient, path: str, data: dict[str, str], files: Any = None) -> Any:
    token = csrf_token(client.get(PAGE).text)
    return client.post(path, data={**data, "csrf_token": token}, files=files)


def test_a_month_is_previewed_then_allocated_once_however_often_the_form_is_sent(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    _households(engine, 3)
    sign_in(console_client, Role.TREASURER)
    preview = _post(console_client, f"{PAGE}/allocate/apercu", {"month": "2030-01"})
    assert preview.status_code == 200
    assert "3 foyer(s) crédité(s) pour 300,00 € au total" in preview.text and "Attribuer les allocations" in preview.text
    assert _count(engine, LedgerTransfer) == 0 and _count(engine, AuditEvent) == 0  # the preview wrote nothing
    for _ in range(2):  # a staff member clicking twice
        done = _post(console_client, f"{PAGE}/allocate", {"month": "2030-01"})
        assert done.status_code == 303
    assert _count(engine, LedgerTransfer) == 3
    with session_factory(engine)() as session:
        [event] = audit.events(session, action_prefix="allowance.allocate")
    assert (event.actor, event.subject) == (EMAILS[Role.TREASURER], "month:2030-01")
    assert json.loads(event.detail or "")["credited_cents"] == 30_000


def test_the_same_grant_form_sent_twice_is_posted_once(console_client: TestClient, users: Any, engine: Engine) -> None:
    sign_in(console_client, Role.ADMIN)
    page = console_client.get(PAGE).text
    key = page.split('name="reference" value="', 1)[1].split('"', 1)[0]
    assert key.startswith("console-")
    form = {"month": "2030-01", "amount": "1 500,00", "source": "Ville", "reference": key}
    preview = _post(console_client, f"{PAGE}/grant/apercu", form)
    assert "Subvention de 1500,00 € de Ville" in preview.text and f'value="{key}"' in preview.text
    assert _post(console_client, f"{PAGE}/grant", form).headers["location"] == PAGE
    again = _post(console_client, f"{PAGE}/grant", form)
    assert again.status_code == 303
    assert "rien de changé" in console_client.get(PAGE).text
    with session_factory(engine)() as session:
        assert session.execute(select(func.count()).select_from(LedgerTransfer).where(
            LedgerTransfer.kind == "grant")).scalar_one() == 1  # type: ignore[arg-type]
        assert len(audit.events(session, action_prefix="fund.grant")) == 1


def test_an_import_reports_every_bad_line_and_imports_nothing_unless_the_valid_lines_are_ticked(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    h = _households(engine, 1)[0]
    content = (f"household_id;month;amount_eur;reference\n{h};2030-01;20,00;a\n{h};2030-01;vingt;b\n"
               f"999;2030-01;5,00;c\n{h};2030-01;7,50;d\n")
    sign_in(console_client, Role.TREASURER)
    preview = _post(console_client, f"{PAGE}/import/apercu", {}, files={"content": ("cotisations.csv", content.encode(), "text/csv")})
    assert preview.status_code == 200
    assert "Ligne 3 : Montant invalide" in preview.text and "Ligne 4 : Foyer introuvable." in preview.text
    assert "2 cotisation(s) importée(s) pour 27,50 €" in preview.text and "importer les lignes valides" in preview.text
    assert _count(engine, Contribution) == 0
    refused = _post(console_client, f"{PAGE}/import", {"content": content})  # box not ticked
    assert refused.status_code == 303 and _count(engine, Contribution) == 0
    for _ in range(2):
        _post(console_client, f"{PAGE}/import", {"content": content, "skip_errors": "oui"})
    with session_factory(engine)() as session:
        assert contributed_cents(session, month="2030-01") == 2_750
        [event] = audit.events(session, action_prefix="contribution.import")
    assert json.loads(event.detail or "")["skipped_lines"] == [3, 4]


def test_a_reversal_shows_the_entry_first_and_is_done_once(console_client: TestClient, users: Any, engine: Engine) -> None:
    h = _households(engine, 1)[0]
    with session_factory(engine)() as session:
        household_service.credit_household(session, household_id=h, amount_cents=2_000, reference="double", by=EMAILS[Role.ADMIN])
        session.commit()
    sign_in(console_client, Role.ADMIN)
    form = {"reference": "credit:double", "reason": "saisi deux fois"}
    preview = _post(console_client, f"{PAGE}/reverse/apercu", form)
    assert "Allocation credit:double de 20,00 €" in preview.text and "définitive" in preview.text
    assert _count(engine, LedgerTransfer) == 1
    _post(console_client, f"{PAGE}/reverse", form)
    _post(console_client, f"{PAGE}/reverse", form)
    assert _count(engine, LedgerTransfer) == 2
    assert '<span class="badge warn">oui</span>' in console_client.get(PAGE).text


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.COMMITTEE])
def test_only_the_treasurer_and_administrators_take_money_steps(
    console_client: TestClient, users: Any, engine: Engine, role: Role,
) -> None:
    _households(engine, 1)
    sign_in(console_client, role)
    assert console_client.get(PAGE).status_code == 403
    token = csrf_token(console_client.get("/console").text)
    answer = console_client.post(f"{PAGE}/allocate", data={"month": "2030-01", "csrf_token": token})
    assert answer.status_code == 403 and _count(engine, LedgerTransfer) == 0


def test_an_outsider_without_session_or_token_cannot_post_a_step(console_client: TestClient, engine: Engine, session: Session) -> None:
    _households(engine, 1)
    for path in ("allocate", "close", "rule", "import", "grant", "fee", "credit", "reverse"):
        for data in ({"month": "2030-01", "amount": "10", "source": "x", "reference": "r"},
                     {"month": "2030-01", "csrf_token": "deviné"}):
            answer = console_client.post(f"{PAGE}/{path}", data=data)
            assert answer.status_code == 403, path
    assert _count(engine, LedgerTransfer) == 0 and _count(engine, AuditEvent) == 0


def test_a_contribution_form_sent_twice_from_a_household_page_is_recorded_once(
    console_client: TestClient, users: Any, engine: Engine,
) -> None:
    h = _households(engine, 1)[0]
    sign_in(console_client, Role.COORDINATOR)
    page = console_client.get(f"/console/households/{h}").text
    key = page.split('name="reference" value="', 1)[1].split('"', 1)[0]
    form = {"month": "2030-01", "amount": "20,00", "reference": key, "csrf_token": csrf_token(page)}
    for _ in range(2):
        assert console_client.post(f"/console/households/{h}/contributions", data=form).status_code == 303
    assert "déjà enregistrée" in console_client.get(f"/console/households/{h}").text
    assert _count(engine, Contribution) == 1
    with session_factory(engine)() as session:
        [event] = audit.events(session, action_prefix="contribution.record")
    assert (event.actor, json.loads(event.detail or "")["reference"]) == (EMAILS[Role.COORDINATOR], f"contribution:{key}")
