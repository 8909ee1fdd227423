"""Schemathesis against the app's own OpenAPI schema: terminal and admin APIs, in process (ASGI).

Whatever the generated request (valid per the schema, or deliberately invalid), the answer is
never a 5xx and conforms to the schema: a documented status code, content type and body.
A few rows exist first (vendor, household with a card, terminal) so that generated ids and paths
reach the services, not only the 404s. Admin requests carry the real bearer token; the token
check itself is tested in tests/backend/api.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient  # after tests.fixtures.database, which silences its import warning
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from caisse.config import Settings
from caisse.demo.seed import terminal_key
from caisse.main import create_app
from caisse_common.protocol import public_key_bytes
from tests.fixtures.database import ADMIN_TOKEN, make_settings

# Operations whose validity the schema cannot state whole: a schema-valid request may still be
# refused (422), so the "valid data is accepted" check is off for them; the others still run.
SEMANTIC_CHECKS = {
    ("POST", "/v1/admin/vendors"): "an IBAN must pass its checksum and its country's format (schwifty)",
    ("POST", "/v1/admin/terminals"): "a public key must be a point on the P-256 curve",
}
EXAMPLES_PER_OPERATION = 25  # positive and negative cases; 15 operations take about 6 s on SQLite
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def seed(app: FastAPI) -> None:
    with TestClient(app) as client:
        def post(path: str, body: dict) -> dict:
            response = client.post(f"/v1/admin{path}", json=body, headers=ADMIN_HEADERS)
            assert response.status_code == 201, response.text
            return response.json()

        vendor = post("/vendors", {"name": "Ferme du fuzz", "kind": "producer", "zone": "Nord"})
        household = post("/households", {"name": "Foyer 1", "members": 2, "zone": "Nord"})
        post("/cards", {"household_id": household["id"], "uid": "04a1b2c3d4e5f6"})
        post("/terminals", {"vendor_id": vendor["id"], "public_key": public_key_bytes(terminal_key(1, 1)).hex()})


def operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from the app's schema (no database needed)."""
    paths = create_app(make_settings("sqlite://")).openapi()["paths"]
    return [(method.upper(), path) for path, methods in paths.items() for method in methods]


# Not schemathesis' pytest plugin (`@schema.parametrize` / `from_fixture`): its fixture support
# reads a private pytest attribute that pytest 9 no longer has. One test per operation instead,
# each building the app on the database fixture and drawing cases with `as_strategy`.
@pytest.mark.parametrize(("method", "path"), operations())
def test_no_server_error_and_answers_match_the_schema(engine: Engine, settings: Settings, method: str, path: str) -> None:
    app = create_app(settings, engine=engine)
    seed(app)
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    headers = ADMIN_HEADERS if path.startswith("/v1/admin") else None
    excluded = [positive_data_acceptance] if (method, path) in SEMANTIC_CHECKS else []
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def answers_within_the_schema(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    answers_within_the_schema()
