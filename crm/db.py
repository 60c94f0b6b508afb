"""Engines and units of work. One session per unit of work, never a global session."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Connection, Engine, Table, TextClause, bindparam, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
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
    engine = create_engine(url, pool_size=10, max_overflow=10)
    _ping_after_idle(engine)
    return engine


# A pooled connection idle this long is tested before use (a round trip); one back in use sooner is
# not: on the path of every message a connection comes back within milliseconds, and a "SELECT 1"
# before each of the message's units of work was a round trip each for nothing.
PING_AFTER_IDLE = 5.0  # seconds


def _ping_after_idle(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, for connections idle PING_AFTER_IDLE or more: a database that
    restarted, or a connection cut while idle, is met here and replaced (the pool tries again with a
    new connection), not by the unit of work. A cut within the last seconds of use still fails that
    unit of work once, as a cut in the middle of one does; the pool is then renewed."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record):
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):
        idle_from = record.info.get("idle_from")  # none on a new connection (.info goes with it)
        if idle_from is None or time.monotonic() - idle_from < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"idle connection gone ({type(exc).__name__})") from exc


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
    if index_where is None:
        statement = _insert_or_skip(model.__table__, tuple(values), tuple(index_elements))
    else:  # a partial index's condition: SQLAlchemy's own dialect constructs (rare paths)
        dialect = (session.dialect if isinstance(session, Connection) else session.get_bind().dialect).name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(model.__table__).on_conflict_do_nothing(index_elements=index_elements,
                                                                   index_where=index_where)
    return session.execute(statement, values).rowcount == 1


@lru_cache(maxsize=64)
def _insert_or_skip(table: Table, columns: tuple[str, ...], index_elements: tuple[str, ...]) -> TextClause:
    """The statement in the words SQLite (3.24 and later) and PostgreSQL share, its parameters typed
    by the table's columns (JSON, dates). As text it is compiled once: SQLAlchemy's dialect inserts
    with ON CONFLICT are compiled again at every execution (no cache key: `inherit_cache = False` in
    2.0), which cost more than running them (the inbox's insert is on the path of every update)."""
    def name(column: str) -> str:
        return '"' + column.replace('"', '""') + '"'

    return text(
        f"INSERT INTO {name(table.name)} ({', '.join(map(name, columns))}) "
        f"VALUES ({', '.join(':' + c for c in columns)}) "
        f"ON CONFLICT ({', '.join(map(name, index_elements))}) DO NOTHING"
    ).bindparams(*(bindparam(c, type_=table.c[c].type) for c in columns))


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
