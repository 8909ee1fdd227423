"""A flood of sign-ins: the limit holds when the attempts arrive together, password hashing never
holds the database's write lock, and no answer tells which addresses have an account."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from caisse.main import create_app
from caisse.models import Role
from caisse.staff import accounts
from tests.console.conftest import EMAILS, PASSWORD, TestClient, csrf_token

PARALLEL = 16


def _clients(engine: Engine, settings: Any, count: int) -> Iterator[list[TestClient]]:
    app = create_app(settings, engine=engine)
    clients = [TestClient(app, base_url="https://testserver", follow_redirects=False) for _ in range(count)]
    for client in clients:
        client.__enter__()
    yield clients
    for client in clients:
        client.__exit__(None, None, None)


def _together(clients: list[TestClient], email: str, password: str) -> list[int]:
    """Every client signs in at once (each has its form and CSRF token first); their statuses."""
    forms = [csrf_token(client.get("/console/login").text) for client in clients]
    start = threading.Barrier(len(clients))
    statuses: list[int] = [0] * len(clients)

    def attempt(index: int) -> None:
        start.wait()
        answer = clients[index].post("/console/login", data={"email": email, "password": password, "csrf_token": forms[index]})
        statuses[index] = answer.status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_parallel_wrong_passwords_pass_the_limit_no_more_than_it_allows(engine: Engine, settings: Any, users: Any) -> None:
    for clients in _clients(engine, settings, PARALLEL):
        statuses = _together(clients, EMAILS[Role.ADMIN], "mauvais-mot-de-passe")
    assert sorted(set(statuses)) == [401, 429]
    # Each 401 is a password that was checked: no more than the limit, however many came at once.
    assert statuses.count(401) == settings.console_login_max_failures


def test_password_hashing_never_holds_the_write_lock(engine: Engine, settings: Any, users: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite has one writer: PostgreSQL writers do not block each other's sign-ins")
    held_during_hash: list[bool] = []
    real = accounts._hasher

    class Watching:
        """The hasher, checking while it runs whether another connection could write."""

        def verify(self, password: str, hashed: str) -> bool:
            probe = sqlite3.connect(engine.url.database or "", timeout=0)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.rollback()
                held_during_hash.append(False)
            except sqlite3.OperationalError:  # "database is locked": a write transaction is open
                held_during_hash.append(True)
            finally:
                probe.close()
            return real.verify(password, hashed)

        def hash(self, password: str) -> str:
            return real.hash(password)

    monkeypatch.setattr(accounts, "_hasher", Watching())
    for clients in _clients(engine, settings, 1):
        client = clients[0]
        for email, password in ((EMAILS[Role.ADMIN], "mauvais-mot-de-passe"), ("personne@caisse.test", PASSWORD),
                                (EMAILS[Role.ADMIN], PASSWORD)):
            form = csrf_token(client.get("/console/login").text)
            client.post("/console/login", data={"email": email, "password": password, "csrf_token": form})
    assert held_during_hash == [False, False, False]


def test_refusals_look_the_same_for_an_unknown_address_and_a_wrong_password(
    engine: Engine, settings: Any, users: Any,
) -> None:
    answers = {}
    for clients in _clients(engine, settings, 1):
        client = clients[0]
        for name, email in (("known", EMAILS[Role.TREASURER]), ("unknown", "personne@caisse.test")):
            seen = []
            for _ in range(settings.console_login_max_failures + 1):
                form = csrf_token(client.get("/console/login").text)
                answer = client.post("/console/login", data={"email": email, "password": "mauvais-mot-de-passe",
                                                             "csrf_token": form})
                seen.append((answer.status_code, answer.text.replace(email, "EMAIL")))
            answers[name] = seen
    assert answers["known"] == answers["unknown"]
    assert [status for status, _ in answers["known"]] == [401] * settings.console_login_max_failures + [429]
