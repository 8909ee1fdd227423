"""Sign-in, roles, sessions, CSRF and cookie flags of the console (in-process, both databases)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse.console import router as console_router
from caisse.console.deps import SESSION_COOKIE
from caisse.db import session_factory
from caisse.models import AuditEvent, ConsoleSession, LoginAttempt, Role
from caisse.staff import accounts
from tests.console.conftest import EMAILS, PASSWORD, TestClient, csrf_token, sign_in, sign_in_directly


def _count(engine: Engine, table: Any) -> int:
    with session_factory(engine)() as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def test_an_anonymous_visitor_is_sent_to_the_sign_in_page(console_client: TestClient) -> None:
    answer = console_client.get("/console/households")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/households"


def test_the_root_leads_to_the_console(console_client: TestClient) -> None:
    assert console_client.get("/").headers["location"] == "/console"


def test_a_wrong_password_is_refused_in_french_and_counted(console_client: TestClient, users: Any, engine: Engine) -> None:
    answer = sign_in(console_client, Role.ADMIN, password="pas-le-bon-mot-de-passe")
    assert answer.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in answer.text
    assert SESSION_COOKIE not in console_client.cookies
    assert _count(engine, LoginAttempt) == 1
    assert console_client.get("/console/households").status_code == 303


def test_an_unknown_address_gets_the_same_answer_as_a_wrong_password(console_client: TestClient, users: Any) -> None:
    form = console_client.get("/console/login")
    answer = console_client.post("/console/login", data={"email": "personne@caisse.test", "password": PASSWORD,
                                                          "csrf_token": csrf_token(form.text)})
    assert answer.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in answer.text


def test_sign_in_is_refused_after_too_many_failures_even_with_the_right_password(
    console_client: TestClient, users: Any, settings: Any,
) -> None:
    for _ in range(settings.console_login_max_failures):
        assert sign_in(console_client, Role.COORDINATOR, password="mauvais-mot-de-passe").status_code == 401
    answer = sign_in(console_client, Role.COORDINATOR)
    assert answer.status_code == 429
    assert "Trop de tentatives" in answer.text
    assert sign_in(console_client, Role.ADMIN).status_code == 303  # the limit is per address


def test_the_limit_forgets_failures_older_than_the_window(session: Session, users: Any, settings: Any) -> None:
    from datetime import timedelta

    from caisse.models import utcnow

    long_ago = utcnow() - timedelta(seconds=settings.console_login_window_s + 1)
    for _ in range(settings.console_login_max_failures):
        with pytest.raises(accounts.SignInRefused):
            sign_in_directly(session, email=EMAILS[Role.TREASURER], password="mauvais", settings=settings, now=long_ago)
    token, signed = sign_in_directly(session, email=EMAILS[Role.TREASURER], password=PASSWORD, settings=settings)
    assert signed.user.email == EMAILS[Role.TREASURER] and token


def test_a_success_forgets_earlier_failures(session: Session, users: Any, settings: Any) -> None:
    for _ in range(settings.console_login_max_failures - 1):
        with pytest.raises(accounts.SignInRefused):
            sign_in_directly(session, email=EMAILS[Role.TREASURER], password="mauvais", settings=settings)
    sign_in_directly(session, email=EMAILS[Role.TREASURER], password=PASSWORD, settings=settings)
    with pytest.raises(accounts.SignInRefused):  # one more failure is not yet the limit
        sign_in_directly(session, email=EMAILS[Role.TREASURER], password="mauvais", settings=settings)
    sign_in_directly(session, email=EMAILS[Role.TREASURER], password=PASSWORD, settings=settings)


def test_passwords_are_stored_as_argon2id_hashes(session: Session, users: Any) -> None:
    user = accounts.get_user(session, email=EMAILS[Role.ADMIN])
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_the_production_hasher_is_memory_hard() -> None:
    from pwdlib import PasswordHash

    stored = PasswordHash.recommended().hash(PASSWORD)  # what caisse.staff.accounts uses outside tests
    parameters = dict(part.split("=") for part in stored.split("$")[3].split(","))
    assert stored.startswith("$argon2id$") and int(parameters["m"]) >= 19 * 1024  # OWASP's floor, KiB


def test_the_session_cookie_is_httponly_samesite_and_secure(console_client: TestClient, users: Any) -> None:
    answer = sign_in(console_client, Role.ADMIN)
    assert answer.status_code == 303
    cookie = next(value for value in answer.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE + "="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=lax", "secure", "path=/"} <= flags


def test_only_a_hash_of_the_session_token_is_stored(console_client: TestClient, users: Any, engine: Engine) -> None:
    sign_in(console_client, Role.ADMIN)
    token = console_client.cookies[SESSION_COOKIE]
    with session_factory(engine)() as session:
        stored = session.execute(select(ConsoleSession)).scalar_one()
    assert token.encode() not in stored.token_hash and len(stored.token_hash) == 32


def test_signing_out_ends_the_session_on_the_server(console_client: TestClient, users: Any, engine: Engine) -> None:
    sign_in(console_client, Role.ADMIN)
    token = console_client.cookies[SESSION_COOKIE]
    page = console_client.get("/console/households")
    assert console_client.post("/console/logout", data={"csrf_token": csrf_token(page.text)}).status_code == 303
    assert _count(engine, ConsoleSession) == 0
    console_client.cookies.set(SESSION_COOKIE, token)  # a copied cookie no longer works
    assert console_client.get("/console/households").status_code == 303


@pytest.mark.parametrize(("role", "page", "status"), [
    (Role.COMMITTEE, "/console/households", 403),
    (Role.COMMITTEE, "/console/households/1", 403),
    (Role.COMMITTEE, "/console/vendors", 403),
    (Role.COMMITTEE, "/console/terminals", 403),
    (Role.TREASURER, "/console/households", 403),
    (Role.TREASURER, "/console/vendors", 200),
    (Role.COORDINATOR, "/console/households", 200),
    (Role.COORDINATOR, "/console/terminals", 200),
])
def test_each_role_sees_only_its_pages(console_client: TestClient, users: Any, role: Role, page: str, status: int) -> None:
    sign_in(console_client, role)
    answer = console_client.get(page)
    assert answer.status_code == status
    if status == 403:
        assert "Votre rôle ne donne pas accès à cette page." in answer.text


def test_the_committee_navigation_shows_no_personal_data_pages(console_client: TestClient, users: Any) -> None:
    sign_in(console_client, Role.COMMITTEE)
    home = console_client.get("/console")
    assert home.status_code == 200 and "Foyers à découvert" in home.text  # a total, no names
    page = console_client.get("/console/login", follow_redirects=True)  # any page renders the nav
    for hidden in ("/console/households", "/console/vendors", "/console/terminals", "/console/transactions"):
        assert f'href="{hidden}"' not in page.text


def _routes(routes: list[Any] = console_router.routes, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every route of the console router with its full path. Included routers are walked: FastAPI
    keeps them as nested objects (original_router + include_context) instead of copying their routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            yield from _routes(route.original_router.routes, prefix + route.include_context.prefix)


def _post_routes() -> list[str]:
    """Every POST path of the console router."""
    return sorted({path for path, route in _routes() if "POST" in route.methods})


def test_console_routes_are_plain_functions_run_in_the_thread_pool() -> None:
    """An async route's database work would stall the event loop, terminals' uploads included."""
    assert [path for path, route in _routes() if inspect.iscoroutinefunction(route.endpoint)] == []


def test_the_console_has_post_routes_to_check() -> None:
    assert {"/console/login", "/console/logout", "/console/households", "/console/households/{household_id}/cards",
            "/console/terminals/{terminal_id}/revoke"} <= set(_post_routes())


@pytest.mark.parametrize("path", _post_routes())
def test_every_form_rejects_a_missing_or_wrong_csrf_token(
    console_client: TestClient, users: Any, engine: Engine, path: str,
) -> None:
    sign_in(console_client, Role.ADMIN)
    url = re.sub(r"\{[^}]+\}", "1", path)
    events_before = _count(engine, AuditEvent)
    for data in ({}, {"csrf_token": "falsifié"}):
        answer = console_client.post(url, data=data)
        assert answer.status_code == 403, url
        assert "Le formulaire a expiré" in answer.text
    assert _count(engine, AuditEvent) == events_before
    assert console_client.get("/console").status_code == 200  # still signed in (else 303 to sign in): nothing ran


def test_the_sign_in_form_is_protected_before_any_session(console_client: TestClient, users: Any) -> None:
    console_client.get("/console/login")
    answer = console_client.post("/console/login", data={"email": EMAILS[Role.ADMIN], "password": PASSWORD})
    assert answer.status_code == 403
    assert SESSION_COOKIE not in console_client.cookies


def test_next_never_leads_off_the_console(console_client: TestClient, users: Any) -> None:
    form = console_client.get("/console/login")
    answer = console_client.post("/console/login", data={"email": EMAILS[Role.ADMIN], "password": PASSWORD,
                                                          "next": "//evil.example/console", "csrf_token": csrf_token(form.text)})
    assert answer.headers["location"] == "/console"


def test_a_session_ends_after_its_lifetime(session: Session, users: Any, settings: Any) -> None:
    from datetime import timedelta

    from caisse.models import utcnow

    opened_at = utcnow()
    token, _ = sign_in_directly(session, email=EMAILS[Role.ADMIN], password=PASSWORD, settings=settings, now=opened_at)
    session.commit()
    lifetime = timedelta(seconds=settings.console_session_lifetime_s)
    assert accounts.signed_in(session, token=token, now=opened_at + lifetime - timedelta(seconds=1)) is not None
    assert accounts.signed_in(session, token=token, now=opened_at + lifetime) is None
    assert accounts.signed_in(session, token="x" * 43) is None


def test_every_cookie_the_console_sets_is_httponly_and_samesite(console_client: TestClient, users: Any) -> None:
    answers = [console_client.get("/console/login"), sign_in(console_client, Role.COORDINATOR)]
    page = console_client.get("/console/households/new")
    answers.append(console_client.post("/console/households", data={
        "name": "Famille Cookie", "members": "1", "zone": "Nord", "csrf_token": csrf_token(page.text)}))
    answers.append(console_client.get(answers[-1].headers["location"]))  # shows, then clears, the flash
    cookies = [value for answer in answers for value in answer.headers.get_list("set-cookie")]
    assert {cookie.split("=", 1)[0] for cookie in cookies} == {"caisse_signin_csrf", "caisse_session", "caisse_flash"}
    for cookie in cookies:
        flags = {part.strip().lower().split("=")[0] for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite"} <= flags, cookie


def test_console_pages_forbid_framing_foreign_code_and_caching(console_client: TestClient, users: Any) -> None:
    for answer in (console_client.get("/console/login"), sign_in(console_client, Role.ADMIN),
                   console_client.get("/console/households"), console_client.get("/console/households/999")):
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store" and answer.headers["x-content-type-options"] == "nosniff"
