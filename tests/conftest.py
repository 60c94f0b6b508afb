"""Shared fixtures: a migrated CRM database on SQLite, and on PostgreSQL when it is reachable."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason (for the skip message)."""
    try:
        with create_engine(PG_URL, connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(text("select 1"))
        return None
    except Exception as exc:  # any driver or network error means: not here
        return f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); start it to run these"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A freshly migrated CRM: SQLite in a temp dir, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    reason = postgres_reachable()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    eng = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    upgrade(eng)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def session(engine):
    with unit_of_work(engine) as s:
        yield s


@pytest.fixture
def sqlite_engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


# The real stack (Rasa, the action server, a database), started once for the end-to-end tests and
# the fault-injection suite alike.
from tests.stack import postgresql_stack, sqlite_stack, stack  # noqa: E402, F401
