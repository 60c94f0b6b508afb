"""Shared fixtures: a migrated CRM database on SQLite, and on PostgreSQL when it is reachable."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade
from crm.models import Base

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def settings_read_afresh():
    """Each test reads the settings from the environment as it sets it (crm.settings.current()
    reads them once per process otherwise, as the entry points do)."""
    import crm.settings

    crm.settings.install(None)
    yield
    crm.settings.install(None)


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason (for the skip message)."""
    try:
        with create_engine(PG_URL, connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(text("select 1"))
        return None
    except Exception as exc:  # any driver or network error means: not here
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); start it to run these"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A CRM migrated once per test session; each test gets a copy of the file (the migrations run
    in about 0.15 s, a copy in well under a millisecond)."""
    path = tmp_path_factory.mktemp("template") / "crm.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    return path


def fresh_sqlite(template: Path, folder: Path) -> Engine:
    target = folder / "crm.db"
    shutil.copyfile(template, target)
    return make_engine(f"sqlite:///{target}")


@pytest.fixture(scope="session")
def postgres_schema():
    """One PostgreSQL schema migrated once per test session; emptied after each test that used
    it (TRUNCATE ... RESTART IDENTITY), and dropped at the end."""
    reason = postgres_reachable()
    if reason:
        yield None, reason
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    eng = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    upgrade(eng)
    eng.dispose()
    tables = ", ".join(f'"{schema}"."{t.name}"' for t in Base.metadata.sorted_tables)
    yield (schema, tables), None
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, sqlite_template):
    """A freshly migrated, empty CRM: SQLite in a temp dir, or the session's PostgreSQL schema."""
    if request.param == "sqlite":
        eng = fresh_sqlite(sqlite_template, tmp_path)
        yield eng
        eng.dispose()
        return
    found, reason = request.getfixturevalue("postgres_schema")
    if reason:
        pytest.skip(reason)
    schema, tables = found
    # Each test's URL is its own (application_name), so nothing cached by URL outlives the test.
    eng = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}&application_name=pytest-{uuid.uuid4().hex[:12]}")
    yield eng
    eng.dispose()
    cleaner = create_engine(PG_URL)
    with cleaner.begin() as conn:
        conn.execute(text("set local lock_timeout = '20s'"))  # a connection left open fails the run, never hangs it
        conn.execute(text(f"truncate {tables} restart identity cascade"))
    cleaner.dispose()


@pytest.fixture
def session(engine):
    with unit_of_work(engine) as s:
        yield s


@pytest.fixture
def sqlite_engine(tmp_path, sqlite_template):
    eng = fresh_sqlite(sqlite_template, tmp_path)
    yield eng
    eng.dispose()


# The real stack (Rasa, the action server, a database), started once for the end-to-end tests and
# the fault-injection suite alike.
from tests.stack import postgresql_stack, sqlite_stack, stack  # noqa: E402, F401
