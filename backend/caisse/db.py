"""Engine and sessions. SQLite for development, PostgreSQL (psycopg 3) in production."""

from __future__ import annotations

import contextlib
import threading
import unicodedata
import weakref
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    any_,
    cast,
    create_engine,
    event,
    func,
    inspect,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import sessionmaker
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session, SQLModel

from caisse.errors import NotFound

SQLITE_BUSY_TIMEOUT_MS = 30_000

# `folded(column)` compares as `fold_text` does in Python: lower case, then the accented Latin
# letters French names use replaced by their plain letter ("Élodie" and "elodie" match). On
# PostgreSQL it is `translate(lower(...))`; SQLite's lower() knows only ASCII, so each SQLite
# connection gets `fold_text` as the function `caisse_fold`.
_ACCENTED = "àáâãäåāăąçćčďèéêëēėęěìíîïīįñńňòóôõöōőŕřśšşťùúûüūůűųýÿźżž"
_PLAIN = "".join(unicodedata.normalize("NFKD", letter)[0] for letter in _ACCENTED)
_TABLE = str.maketrans(_ACCENTED, _PLAIN)


def fold_text(text: str | None) -> str | None:
    return None if text is None else text.lower().translate(_TABLE)


class folded(FunctionElement[str]):  # noqa: N801 (an SQL function, named like one)
    type = String()
    inherit_cache = True


@compiles(folded, "postgresql")
def _folded_postgresql(element: folded, compiler: Any, **kw: Any) -> str:
    return f"translate(lower({compiler.process(element.clauses, **kw)}), '{_ACCENTED}', '{_PLAIN}')"


@compiles(folded)
def _folded_sqlite(element: folded, compiler: Any, **kw: Any) -> str:
    return f"caisse_fold({compiler.process(element.clauses, **kw)})"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table, for bulk statements (SQLModel sets `__table__` when it builds the
    class, out of a type checker's sight)."""
    table = inspect(model).local_table
    assert isinstance(table, Table)
    return table


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, BEGIN IMMEDIATE, and caisse_fold() (see `folded`).

    SQLite allows one writer. A deferred transaction that reads then writes can fail with
    "database is locked" when another writer got there first; taking the write lock at BEGIN
    makes concurrent writers queue on the busy timeout instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        dbapi_connection.create_function("caisse_fold", 1, fold_text, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_sqlite_writer_locks: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_writer_locks_guard = threading.Lock()


@contextlib.contextmanager
def writer_turn(session: Session) -> Iterator[None]:
    """Around a write transaction (begin to commit) that can run in several threads at once.

    SQLite has one writer: a second BEGIN IMMEDIATE waits in SQLite's busy handler, which polls
    with sleeps of up to 100 ms, so concurrent uploads in one process would spend most of their
    time asleep while the database sits idle. On SQLite the threads of this process therefore
    queue on a lock per engine, which hands over as soon as the writer commits (the busy timeout
    still covers other processes). The transaction is ended inside the turn, rolled back if the
    block raises. PostgreSQL needs no turn: its row locks queue writers without polling.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    engine = bind if isinstance(bind, Engine) else bind.engine
    with _writer_locks_guard:
        lock = _sqlite_writer_locks.get(engine)
        if lock is None:
            lock = _sqlite_writer_locks[engine] = threading.Lock()
    with lock:
        try:
            yield
        except BaseException:
            session.rollback()
            raise


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


def upgrade(engine: Engine, revision: str = "heads") -> None:
    """Run the Alembic migrations packaged with the code (every branch: features add theirs in parallel)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_revisions(engine: Engine) -> tuple[set[str], set[str]]:
    """(the database's Alembic revisions, the code's heads): equal when the schema is up to date;
    the first is empty for a database that was never migrated. Reads only."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, heads


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction, as fast as the database allows.

    PostgreSQL: one COPY (a multi-row INSERT costs psycopg more in query parsing than the server
    spends storing the rows). SQLite: executemany, which the sqlite3 module runs natively.
    A constraint violation raises SQLAlchemy's IntegrityError on both.
    """
    if not rows:
        return
    connection = session.connection()
    columns = list(rows[0])
    if connection.dialect.name != "postgresql":
        # The driver's own executemany: SQLAlchemy's per-row parameter handling costs more than
        # SQLite spends storing the row. Only DateTime and Boolean need converting; a batch
        # shares its timestamps, so each distinct value is converted once.
        dialect = connection.dialect
        converters = [
            (index, processor, {})
            for index, column in enumerate(columns)
            if isinstance(table.c[column].type, (DateTime, Boolean))
            and (processor := table.c[column].type._cached_bind_processor(dialect)) is not None
        ]
        values = []
        for row in rows:
            value = [row[column] for column in columns]
            for index, processor, seen in converters:
                raw = value[index]
                if raw is not None:
                    converted = seen.get(raw)
                    if converted is None:
                        converted = seen[raw] = processor(raw)
                    value[index] = converted
            values.append(tuple(value))
        statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        connection.exec_driver_sql(statement, values)
        return
    import psycopg

    driver = connection.connection.driver_connection
    assert driver is not None
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    except psycopg.IntegrityError as error:
        raise IntegrityError(statement, None, error) from error


def bind_value(session: Session, column: Any, value: Any) -> Any:
    """`value` as the driver takes it for `column` (SQLite stores datetimes as text): for
    insert_tuples, which leaves converting to its caller so that a value shared by many rows
    (a batch's timestamp) is converted once."""
    processor = column.type._cached_bind_processor(session.connection().dialect)
    return value if value is None or processor is None else processor(value)


def insert_tuples(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """bulk_insert for rows already in column order with driver-ready values (see bind_value):
    the hot path's inserts, with no per-row dict or conversion in Python."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows if type(rows[0]) is tuple else list(map(tuple, rows)),
        )
        return
    import psycopg

    driver = connection.connection.driver_connection
    assert driver is not None
    # Binary COPY: bytea columns travel as they are, where the text format escapes every byte.
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_pg_copy_type(table.c[column].type) for column in columns])
            for row in rows:
                copy.write_row(row)
    except psycopg.IntegrityError as error:
        raise IntegrityError(statement, None, error) from error


def _pg_copy_type(column_type: Any) -> str:
    """The PostgreSQL type name a binary COPY sends a column's values as."""
    for kind, name in ((SmallInteger, "int2"), (BigInteger, "int8"), (Integer, "int4"), (LargeBinary, "bytea"),
                       (Boolean, "bool"), (String, "text")):
        if isinstance(column_type, kind):
            return name
    if isinstance(column_type, DateTime):
        return "timestamptz" if column_type.timezone else "timestamp"
    raise TypeError(f"no binary COPY type for {column_type!r}")


_ModelT = TypeVar("_ModelT")


def get_by_id(session: Session, model: type[_ModelT], row_id: int, *, for_update: bool = False) -> _ModelT | None:
    """session.get for an INTEGER primary key (its row locked `for_update`); None for a number no
    such key can hold, where SQLite's driver would raise OverflowError and PostgreSQL a range
    error (a 500, not a 404)."""
    return session.get(model, row_id, with_for_update=for_update) if 0 < row_id < 2**31 else None


def get_or_not_found(session: Session, model: type[_ModelT], row_id: int, *, code: str, for_update: bool = False) -> _ModelT:
    """The row (get_by_id), or NotFound(code): "vendor_not_found" tells "no vendor 7"."""
    row = get_by_id(session, model, row_id, for_update=for_update)
    if row is None:
        raise NotFound(code, f"no {code.removesuffix('_not_found').replace('_', ' ')} {row_id}")
    return row


def parse_row_id(text: str) -> int | None:
    """The INTEGER primary key a text of ASCII digits names; None for any other text ('²' passes
    str.isdigit() but not int()) or a number no key can hold."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value < 2**31 else None


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def id_in(session: Session, column: ColumnElement[Any], ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN (ids)` for integers, as one text parameter on both databases (a JSON array read
    by json_each on SQLite, a list split by string_to_array on PostgreSQL): the statement is the
    same whatever the number of ids, so SQLAlchemy compiles it once and binds one value, where an
    expanding IN renders and binds every id on each execution (milliseconds for a few hundred)."""
    text_ids = ",".join(str(int(i)) for i in ids)
    if is_postgresql(session):
        return column == any_(cast(func.string_to_array(literal(text_ids), ","), postgresql.ARRAY(Integer)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(literal(f"[{text_ids}]"))))


def column_in(session: Session, column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter however many values,
    which spares psycopg parsing a statement with hundreds of placeholders on the hot path."""
    if is_postgresql(session):
        return column == any_(literal(list(values), postgresql.ARRAY(column.type)))
    return column.in_(list(values))
