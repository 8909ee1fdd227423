"""Backups of the caisse's database and their restore (docs/operations.md, "Backup and restore").

PostgreSQL: `pg_dump --format=custom` (one consistent snapshot, taken while terminals upload) and
`pg_restore --clean --if-exists --single-transaction` (all or nothing). SQLite (development): the
sqlite3 online backup API, both ways.

After a restore the database has forgotten what arrived after the backup. Terminals keep their
records in flash after the backend acknowledges them, while there is room, and send again by
themselves what lies above the lower `acked_seq` they are answered (docs/protocol.md,
"Re-sending after a restore"); the restored `acked_seq` of each terminal is printed for the
technician. Records a terminal re-sends are new to the restored database and counted once; one it
sends twice is a duplicate by (terminal, seq). A terminal that already reclaimed flash for records
the backup lacks cannot send them again: it reports them (caisse.terminals.health), and they stay
missing below the records that follow, which ingestion keeps unverified (a gap) and settlement
holds, so the loss is seen and never paid blindly.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlmodel import col

from caisse import audit
from caisse.db import make_engine, session_factory
from caisse.errors import CaisseError, InvalidInput, NotFound
from caisse.models import Terminal

SUFFIX = {"postgresql": ".dump", "sqlite": ".sqlite"}


class ToolFailed(CaisseError):
    status_code = 500


def _url(database_url: str) -> URL:
    url = make_url(database_url)
    if url.get_backend_name() not in SUFFIX:
        raise InvalidInput("backup_unsupported", f"base {url.get_backend_name()} : seules PostgreSQL et SQLite sont prises en charge")
    return url


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq connection string for pg_dump/pg_restore, its password in the environment (not in
    the process list)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False), env


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise InvalidInput("backup_unsupported", "une base SQLite en mémoire ne se sauvegarde pas")
    return Path(url.database)


def _tool(arguments: list[str], env: dict[str, str]) -> None:
    if shutil.which(arguments[0]) is None:
        raise ToolFailed("backup_tool_missing", f"{arguments[0]} est introuvable : installez postgresql-client")
    done = subprocess.run(arguments, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolFailed("backup_tool_failed", f"{arguments[0]} a échoué : {done.stderr.strip()[-500:]}")


def _sqlite_copy(source_path: Path, target_path: Path) -> None:
    """The online backup API: a consistent copy even while another connection writes."""
    source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def back_up(database_url: str, folder: Path, *, keep: int, now: datetime | None = None) -> Path:
    """Write a backup into `folder` (created if needed), then delete all but the `keep` newest."""
    url = _url(database_url)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"caisse-{stamp}{SUFFIX[url.get_backend_name()]}"
    partial = target.with_name(target.name + ".partiel")  # a crash never leaves a file that looks whole
    if url.get_backend_name() == "postgresql":
        dsn, env = _libpq(url)
        _tool(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={dsn}"], env)
    else:
        _sqlite_copy(_sqlite_path(url), partial)
    partial.rename(target)
    backups = sorted(folder.glob(f"caisse-*{SUFFIX[url.get_backend_name()]}"))
    for old in backups[:-keep] if keep > 0 else []:
        old.unlink()
    return target


@dataclass(frozen=True, slots=True)
class Restored:
    terminals: list[tuple[int, int]]  # (terminal id, acked_seq as restored): each re-sends above it


def restore(database_url: str, backup: Path, *, by: str) -> Restored:
    """Replace the database's content with `backup`, as one transaction, then audit it there."""
    url = _url(database_url)
    if not backup.is_file():
        raise NotFound("backup_not_found", f"aucune sauvegarde {backup}")
    if backup.suffix != SUFFIX[url.get_backend_name()]:
        raise InvalidInput("backup_wrong_kind", f"{backup.name} n'est pas une sauvegarde {url.get_backend_name()}"
                                                f" ({SUFFIX[url.get_backend_name()]})")
    if url.get_backend_name() == "postgresql":
        dsn, env = _libpq(url)
        _tool(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
               f"--dbname={dsn}", str(backup)], env)
    else:
        _sqlite_copy(backup, _sqlite_path(url))
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            terminals = [(int(t), int(a)) for t, a in session.execute(
                select(col(Terminal.id), col(Terminal.acked_seq)).order_by(col(Terminal.id)))]
            audit.record(session, actor=by, action="database.restore", subject="database",
                         detail={"backup": backup.name})
            session.commit()
    finally:
        engine.dispose()
    return Restored(terminals)
