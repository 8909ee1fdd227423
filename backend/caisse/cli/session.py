"""How every `caisse` sub-command runs: on the settings' existing database (never created, never
migrated here), in one session committed on success, printing on `out` (what scripts read) and
`err` (what people read); a refused operation exits 1 with its French sentence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import make_engine, session_factory
from caisse.errors import MESSAGES, CaisseError
from caisse_common.cli_french import say, technical_detail

out = Console(soft_wrap=True)  # no line breaks inside a sentence or a command to copy
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


@contextmanager
def open_engine(settings: Settings, *, older_schema_ok: bool = False) -> Iterator[Engine]:
    """The settings' caisse database as it is, disposed of after use: never created, never migrated
    (only `db upgrade`, `serve` and `demo` do that), so a command run in the wrong folder or against
    a server that is down stops with a French sentence and exit status 2 instead of working on an
    empty database."""
    try:
        engine = _open_existing_database(settings, older_schema_ok=older_schema_ok)
    except _NoDatabase as problem:
        say(str(problem))
        raise typer.Exit(code=2) from None
    try:
        yield engine
    finally:
        engine.dispose()


class _NoDatabase(Exception):
    """The database cannot be read as a caisse; the message is French."""


def _open_existing_database(settings: Settings, *, older_schema_ok: bool) -> Engine:
    """The settings' database as it is. A missing file, a server out of reach, a database without
    a caisse (no Alembic revision) or with an older schema is a _NoDatabase."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from caisse.db import schema_revisions

    try:
        url = make_url(settings.database_url)
    except Exception:  # sqlalchemy raises ArgumentError, and ValueError on a bad port
        raise _NoDatabase(f"adresse de base de données illisible (CAISSE_DATABASE_URL) : {settings.database_url!r}") from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:" or not Path(url.database).is_file()):
        raise _NoDatabase(f"la base de données {url.database or shown} n'existe pas (rien n'a été créé) : vérifiez"
                          " CAISSE_DATABASE_URL et le dossier courant, ou créez-la avec « caisse db upgrade »")
    engine = make_engine(settings.database_url)
    try:
        try:
            current, heads = schema_revisions(engine)
        except SQLAlchemyError as error:
            raise _NoDatabase(f"impossible de lire la base de données {shown} (serveur arrêté, adresse, port ou"
                              f" droits faux ?) : rien n'a été fait{technical_detail(error)}") from None
        if not current:
            raise _NoDatabase(f"la base {shown} ne contient pas de caisse (aucune migration appliquée) : rien n'a été"
                              " fait ; créez-la avec « caisse db upgrade »")
        if current != heads and not older_schema_ok:
            raise _NoDatabase(f"la base {shown} est à la révision {', '.join(sorted(current))}, le code attend"
                              f" {', '.join(sorted(heads))} : lancez d'abord « caisse db upgrade »")
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def open_session() -> Iterator[Session]:
    """A committed-on-success session on the settings' database."""
    with open_engine(Settings()) as engine, session_factory(engine)() as session:
        yield session
        session.commit()


def run_in_session(action: Callable[[Session], T]) -> T:
    try:
        with open_session() as session:
            return action(session)
    except CaisseError as error:
        fail(error)


def fail(error: CaisseError) -> NoReturn:
    """Exit 1 with the error in French."""
    err.print(f"[red]Erreur :[/red] {french(error)} ({error.code})")
    raise typer.Exit(code=1) from None


def french(error: CaisseError) -> str:
    """The console's sentence for a known code, else the service's detail."""
    return MESSAGES.get(error.code, error.detail)


def login_name() -> str:
    """Who is logged in on the server: recorded beside the console account a command names."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment nor in the password database
        return "inconnu"
