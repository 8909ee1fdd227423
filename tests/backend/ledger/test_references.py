"""References people type (credits, contributions, grants, fees) can never take a reference the
code posts under itself (records, rejections, settlements, allowances...)."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from caisse.errors import MESSAGES, InvalidInput
from caisse.fund import allowances
from caisse.fund import service as fund
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.months import Month
from tests.backend.factories import make_world
from tests.fixtures.database import make_settings


def _system_references(terminal_id: int, household_id: int) -> list[str]:
    """One of each reference the code builds for itself."""
    month = Month.parse("2026-01")
    return [ledger.record_reference(terminal_id, 1), ledger.reject_reference(terminal_id, 1), ledger.reversal_reference(1),
            f"settlement:1:{household_id}", allowances.allowance_reference(household_id, month),
            allowances.expiry_reference(household_id, month), "matching:2026-01:1", "contribution:import:R-1",
            "fee:2026-01:import:0123456789abcdef"]


def test_a_credit_keyed_with_a_record_reference_does_not_stop_the_terminal(
    client: TestClient, session: Session, admin_headers: dict[str, str],
) -> None:
    world = make_world(session)
    squat = {"amount_cents": 100, "reference": ledger.record_reference(world.terminal_id, 1)}
    answer = client.post(f"/v1/admin/households/{world.household_id}/credits", headers=admin_headers, json=squat)
    assert answer.status_code in (201, 422), answer.text
    upload = client.post(f"/v1/terminals/{world.terminal_id}/batches",
                         json={"records": [base64.b64encode(world.chain.pay(world.uid, 500)).decode()]})
    assert upload.status_code == 200, upload.text
    assert upload.json()["acked_seq"] == 1 and upload.json()["results"][0]["status"] == "accepted"


def test_no_key_a_person_types_reaches_a_system_reference(session: Session) -> None:
    world = make_world(session)
    settings = make_settings()
    for reference in _system_references(world.terminal_id, world.household_id):
        tail = reference.split(":", 1)[1]
        last = tail.split(":", 1)[-1]
        attempts = [
            lambda key=reference: household_service.credit_household(session, household_id=world.household_id, amount_cents=100, reference=key),
            lambda key=tail: fund.record_contribution(session, household_id=world.household_id, month="2026-01",
                                                      amount_cents=5_000, settings=settings, reference=key),
            lambda key=last: fund.record_fee(session, month="2026-01", amount_cents=100, memo="x", reference=key),
            lambda key=last: fund.record_grant(session, month="2026-01", amount_cents=100, source="x", reference=key),
        ]
        for attempt in attempts:
            try:
                with session.begin_nested():
                    attempt()
            except InvalidInput as error:
                assert error.code == "invalid_reference"
        assert ledger.find_transfer(session, reference=reference) is None, reference


def test_a_retried_credit_is_the_same_credit_and_its_key_comes_back(session: Session) -> None:
    world = make_world(session, balance_cents=0)
    first = household_service.credit_household(session, household_id=world.household_id, amount_cents=1_500, reference="RECU-0042")
    again = household_service.credit_household(session, household_id=world.household_id, amount_cents=1_500, reference="RECU-0042")
    assert (first.created, again.created) == (True, False)
    assert first.reference == again.reference == "RECU-0042"
    assert first.ledger_reference == "credit:RECU-0042" and ledger.find_transfer(session, reference=first.ledger_reference)
    assert household_service.household_balance_cents(session, household_id=world.household_id) == 1_500
    generated = household_service.credit_household(session, household_id=world.household_id, amount_cents=1)
    assert household_service.credit_household(session, household_id=world.household_id, amount_cents=1,
                                  reference=generated.reference).created is False


@pytest.mark.parametrize("key", ["", "a:b", "x" * 101, "tab\there", "line\nbreak"])
def test_a_key_that_could_leave_its_namespace_or_the_column_is_refused_in_french(session: Session, key: str) -> None:
    world = make_world(session)
    with pytest.raises(InvalidInput) as refused:
        household_service.credit_household(session, household_id=world.household_id, amount_cents=100, reference=key)
    assert refused.value.code == "invalid_reference" and refused.value.code in MESSAGES
