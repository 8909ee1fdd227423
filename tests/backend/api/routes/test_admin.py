"""The admin API: bearer token, the operations the demo seed relies on, errors as JSON."""

from __future__ import annotations

from fastapi.testclient import TestClient

from caisse_common import protocol
from tests.backend.factories import new_key


def test_every_admin_route_refuses_a_missing_or_wrong_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = client.get("/v1/admin/vendors", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


def test_the_seed_path_vendor_household_card_credit_terminal(client: TestClient, admin_headers: dict[str, str]) -> None:
    vendor = client.post("/v1/admin/vendors", headers=admin_headers,
                         json={"name": "Ferme du Coin", "kind": "producer", "market": "Marché Jaurès", "zone": "Nord",
                               "iban": "FR76 3000 6000 0112 3456 7890 189"})
    assert vendor.status_code == 201, vendor.text
    vendor_id = vendor.json()["id"]
    assert vendor.json()["iban"] == "FR7630006000011234567890189"
    household = client.post("/v1/admin/households", headers=admin_headers, json={"name": "Famille Roux", "members": 2, "zone": "Nord"})
    assert household.status_code == 201
    household_id = household.json()["id"]
    card = client.post("/v1/admin/cards", headers=admin_headers, json={"household_id": household_id, "uid": "04A1B2C3D4E5F6"})
    assert card.status_code == 201 and card.json()["uid"] == "04a1b2c3d4e5f6"
    credit = {"amount_cents": 15_000, "memo": "Allocation mensuelle", "reference": "2026-01-h1"}
    first = client.post(f"/v1/admin/households/{household_id}/credits", headers=admin_headers, json=credit)
    again = client.post(f"/v1/admin/households/{household_id}/credits", headers=admin_headers, json=credit)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["balance_cents"] == 15_000
    other = client.post(f"/v1/admin/households/{household_id}/credits", headers=admin_headers, json=credit | {"amount_cents": 1})
    assert (other.status_code, other.json()["error"]) == (409, "reference_reused")
    key = protocol.public_key_bytes(new_key()).hex()
    terminal = client.post("/v1/admin/terminals", headers=admin_headers, json={"vendor_id": vendor_id, "public_key": key})
    assert terminal.status_code == 201
    terminal_id = terminal.json()["id"]
    assert client.post("/v1/admin/terminals", headers=admin_headers, json={"vendor_id": vendor_id, "public_key": key}).status_code == 409

    shown = client.get(f"/v1/admin/households/{household_id}", headers=admin_headers).json()
    assert shown["balance_cents"] == 15_000 and [c["uid"] for c in shown["cards"]] == ["04a1b2c3d4e5f6"]
    assert client.get(f"/v1/admin/vendors/{vendor_id}", headers=admin_headers).json()["payable_cents"] == 0
    assert [v["id"] for v in client.get("/v1/admin/vendors", headers=admin_headers).json()] == [vendor_id]
    blocked = client.post("/v1/admin/cards/04a1b2c3d4e5f6/block", headers=admin_headers)
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    revoked = client.post(f"/v1/admin/terminals/{terminal_id}/revoke", headers=admin_headers)
    assert revoked.json()["status"] == "revoked"
    assert client.get(f"/v1/admin/terminals/{terminal_id}", headers=admin_headers).json()["status"] == "revoked"
    summary = client.get("/v1/admin/ledger/summary", headers=admin_headers).json()
    assert summary["transfers"] == 1 and summary["balance_sum_cents"] == 0
    assert summary["credits_posted_cents"] == summary["debits_posted_cents"] == 15_000


def test_bad_admin_input_is_a_json_4xx_never_a_500(client: TestClient, admin_headers: dict[str, str]) -> None:
    cases = [
        ("post", "/v1/admin/vendors", {"name": "X", "kind": "spaceship", "zone": "Nord"}, 422, "invalid_kind"),
        ("post", "/v1/admin/vendors", {"name": "X", "kind": "shop", "zone": "Nord", "iban": "nope"}, 422, "invalid_iban"),
        ("post", "/v1/admin/vendors", {"name": "X"}, 422, "invalid_request"),
        ("post", "/v1/admin/households", {"name": "X", "members": 0, "zone": "Nord"}, 422, "invalid_request"),
        ("post", "/v1/admin/cards", {"household_id": 42, "uid": "deadbeef"}, 404, "household_not_found"),
        ("post", "/v1/admin/cards", {"household_id": 42, "uid": "deadbeefzz"}, 422, "invalid_uid"),
        ("post", "/v1/admin/cards/deadbeef/block", None, 404, "card_not_found"),
        ("post", "/v1/admin/terminals", {"vendor_id": 42, "public_key": "04" * 65}, 404, "vendor_not_found"),
        ("get", "/v1/admin/terminals/99999999999", None, 404, "terminal_not_found"),
        ("get", "/v1/admin/households/7", None, 404, "household_not_found"),
        ("get", "/v1/admin/nowhere", None, 404, "not_found"),
    ]
    for method, url, body, status, error in cases:
        response = client.request(method, url, headers=admin_headers, json=body)
        assert (response.status_code, response.json()["error"]) == (status, error), (url, response.text)
    malformed = client.post("/v1/admin/vendors", headers=admin_headers | {"Content-Type": "application/json"}, content=b"{")
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_request"


def test_an_invalid_public_key_is_refused(client: TestClient, admin_headers: dict[str, str]) -> None:
    vendor_id = client.post("/v1/admin/vendors", headers=admin_headers, json={"name": "X", "kind": "shop", "zone": "Nord"}).json()["id"]
    not_on_curve = "04" + "11" * 64
    response = client.post("/v1/admin/terminals", headers=admin_headers, json={"vendor_id": vendor_id, "public_key": not_on_curve})
    assert (response.status_code, response.json()["error"]) == (422, "invalid_public_key")


def test_a_boolean_or_a_string_where_an_integer_goes_is_refused(client: TestClient, admin_headers: dict[str, str]) -> None:
    """Lax pydantic read true as 1: a card issued to household 1, a credit of one cent; 7.0 stays an integer."""
    household = client.post("/v1/admin/households", headers=admin_headers, json={"name": "Famille Roux", "members": 2, "zone": "Nord"})
    household_id = household.json()["id"]
    for path, body in (("/v1/admin/cards", {"household_id": True, "uid": "04A1B2C3D4E5F6"}),
                       ("/v1/admin/cards", {"household_id": str(household_id), "uid": "04A1B2C3D4E5F6"}),
                       (f"/v1/admin/households/{household_id}/credits", {"amount_cents": True}),
                       ("/v1/admin/households", {"name": "Famille Roux", "members": True, "zone": "Nord"}),
                       ("/v1/admin/terminals", {"vendor_id": True, "public_key": "04" + "00" * 64})):
        response = client.post(path, headers=admin_headers, json=body)
        assert (response.status_code, response.json()["error"]) == (422, "invalid_request"), (path, body)
    assert client.get(f"/v1/admin/households/{household_id}", headers=admin_headers).json()["cards"] == []
    card = client.post("/v1/admin/cards", headers=admin_headers, json={"household_id": float(household_id), "uid": "04A1B2C3D4E5F6"})
    assert card.status_code == 201 and card.json()["household_id"] == household_id
