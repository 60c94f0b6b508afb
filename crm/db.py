"""Engines and units of work. One session per unit of work, never a global session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

from crm.settings import current as settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        path = engine.url.database

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # the bot and the action server share the file
            _owner_only(path)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL loses nothing when a process crashes (only on power loss may the
            # last commits be lost), and spares one disk flush per commit.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _owner_only(path: str | None) -> None:
    """The CRM file holds every client's data: readable by our own user only (with its WAL)."""
    if not path or path == ":memory:":
        return
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def insert_unless_exists(session: Session | Connection, model, values: dict, index_elements: list[str],
                         index_where=None) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL): whether the row was inserted.
    Two processes inserting the same unique key at once: exactly one gets True, and neither
    unit of work breaks (no IntegrityError, no savepoint)."""
    dialect = (session.dialect if isinstance(session, Connection) else session.get_bind().dialect).name
    if index_where is None:  # the statement built once (building one costs more than running it)
        statement = _insert_unless_exists(dialect, model.__table__, tuple(index_elements))
    else:
        statement = _build_insert_unless_exists(dialect, model.__table__, tuple(index_elements), index_where)
    return session.execute(statement, values).rowcount == 1


def _build_insert_unless_exists(dialect: str, table, index_elements: tuple[str, ...], index_where=None):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=list(index_elements), index_where=index_where)


_insert_unless_exists = lru_cache(maxsize=64)(_build_insert_unless_exists)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


def default_engine() -> Engine:
    return engine_for(settings().database_url)


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    # A plain Session: sessionmaker() makes a new Session subclass each time it is called (a
    # fifth of the bot's CPU per message when it was called here).
    session = Session(bind=engine or default_engine(), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
