"""Console fixtures.

In-process (fast, both databases): `console_client` (a TestClient on https://testserver, so
Secure cookies flow), `users` (one account per role, password PASSWORD), `sign_in(client, role)`.

Browser (real Chromium): one uvicorn server per test session on a free port and a fresh SQLite
database (`console_url`, `console_db`), Debian's /usr/bin/chromium driven by Playwright, and
`page_as(role)`: a page in a context signed in once per role and reused. Every page collects
console errors and uncaught exceptions, and the test fails if there are any. `screenshot(page,
name)` saves test-artifacts/console/<name>.png.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from caisse.db import make_engine, session_factory, upgrade
from caisse.main import create_app
from caisse.models import Role
from caisse.staff import accounts
from tests.fixtures.database import TestClient, make_settings

PASSWORD = "mot-de-passe-de-test"
EMAILS = {role: f"{role.value}@caisse.test" for role in Role}
CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT_MS = 10_000  # a page of this console loads in well under a second; fail fast
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
SERVER_START_TIMEOUT_S = 15.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """argon2 with the smallest cost in tests: the recommended cost (tested in test_access) takes
    ~0.3 s a hash on a busy CI machine, and every test signs in."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "_hasher", cheap)
        patch.setattr(accounts, "_DUMMY_HASH", cheap.hash("not a password of anyone"))
        yield


def sign_in_directly(session: Session, *, email: str, password: str, settings: Any, now: Any = None) -> tuple[str, Any]:
    """The console's sign-in steps without HTTP, committing where its route does."""
    try:
        attempt = accounts.begin_sign_in(session, email=email, settings=settings, now=now)
        session.commit()
        matches = accounts.password_matches(attempt, password)
        signed = accounts.finish_sign_in(session, attempt=attempt, matches=matches, settings=settings)
    except (accounts.SignInRefused, accounts.SignInThrottled):
        session.rollback()
        raise
    session.commit()
    return signed


def create_users(session: Session) -> dict[Role, str]:
    for role, email in EMAILS.items():
        accounts.create_user(session, email=email, password=PASSWORD, role=role)
    session.commit()
    return EMAILS


@pytest.fixture
def users(engine: Engine) -> dict[Role, str]:
    with session_factory(engine)() as session:
        return create_users(session)


@pytest.fixture
def console_client(engine: Engine, settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine), base_url="https://testserver", follow_redirects=False) as client:
        yield client


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in(client: TestClient, role: Role, *, password: str = PASSWORD) -> Any:
    """Sign in as the user of `role`, the way a browser does; returns the answer to the POST."""
    form = client.get("/console/login")
    return client.post("/console/login", data={"email": EMAILS[role], "password": password,
                                               "csrf_token": csrf_token(form.text)})


def post_form(client: TestClient, page: str, path: str, data: dict[str, str]) -> Any:
    """POST `data` to `path` with the CSRF token read from `page`, as the page's form would."""
    token = csrf_token(client.get(page).text)
    return client.post(path, data={**data, "csrf_token": token})


# Browser --------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def console_db(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = tmp_path_factory.mktemp("console") / "caisse.db"
    db = make_engine(f"sqlite:///{path}")
    upgrade(db)
    with session_factory(db)() as session:
        create_users(session)
    return db


@pytest.fixture(scope="session")
def console_url(console_db: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    # Settlement files go to a temporary folder, and a second person (the treasurer) approves.
    settings = make_settings(str(console_db.url), settlement_dir=str(tmp_path_factory.mktemp("reglements")),
                             settlement_requires_approval=True)
    app = create_app(settings, engine=console_db)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=SERVER_START_TIMEOUT_S)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and the firmware and simulation tests after tests/console call asyncio.run().
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def _signed_in_states() -> dict[Role, Any]:
    """Cookies of one sign-in per role, shared by the session's pages (argon2 is slow on purpose)."""
    return {}


@pytest.fixture
def page_as(browser: Any, console_url: str, _signed_in_states: dict[Role, Any]) -> Iterator[Callable[[Role], Any]]:
    """page_as(Role.ADMIN) -> a Playwright page signed in as that role (tablet-sized viewport)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(role: Role) -> Any:
        if role not in _signed_in_states:
            _signed_in_states[role] = _sign_in_state(browser, console_url, role)
        context = browser.new_context(base_url=console_url, storage_state=_signed_in_states[role],
                                      viewport={"width": 1024, "height": 768}, locale="fr-FR")
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        watch_errors(page, errors)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], f"browser console errors: {errors}"


def watch_errors(page: Any, errors: list[str]) -> None:
    """Collect script errors, console.error messages and failed loads of styles, scripts, images.

    A page answered with a 4xx on purpose (a form re-shown with its French error) makes Chromium
    log "Failed to load resource" for the document itself: that one is the test's business, not
    an error of the page, so it is left out; the same message for any other resource counts, and
    so does a 5xx for anything, the document included."""
    documents: set[str] = set()

    def on_response(response: Any) -> None:
        is_document = response.request.resource_type == "document"
        if is_document:
            documents.add(response.url)
        if response.status >= 500 or (response.status >= 400 and not is_document):
            errors.append(f"{page.url}: {response.status} for {response.url}")

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource") and message.location.get("url") in documents:
            return
        errors.append(f"{page.url}: {message.text}")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))


def _sign_in_state(browser: Any, console_url: str, role: Role) -> Any:
    context = browser.new_context(base_url=console_url)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    page.goto("/console/login")
    page.get_by_label("Adresse e-mail").fill(EMAILS[role])
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/console(?!/login)"))  # the home page, /console itself
    state = context.storage_state()
    context.close()
    return state


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
