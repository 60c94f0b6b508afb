"""The real stack: the action server and the Rasa server as separate processes, the trained model,
a real database; python-telegram-bot talks to the Bot API emulator. Session fixtures, registered
in tests/conftest.py so that the end-to-end tests and the fault-injection suite share one stack.

Two stacks: the embedded defaults (SQLite CRM and tracker store, in-memory lock store) and the
production set-up (PostgreSQL CRM and tracker store, Redis lock store), the second skipped with a
message when PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.cli import prepare_database
from bot.rasa_model import train_if_needed
from bot.services import Services
from bot.settings import Settings
from tests.conftest import PG_URL, postgres_reachable
from tests.harness import always_open_profile, free_port, make_settings, production_stores  # noqa: F401 (used by the e2e tests)


def redis_reachable() -> str | None:
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
        return None
    except redis.RedisError as exc:
        return f"Redis not reachable at 127.0.0.1:6379 ({type(exc).__name__}); start it to run these"


@dataclass
class Stack:
    name: str
    settings: Settings
    services: Services


def _start(name: str, database_url: str, endpoints: str, env: dict, log_dir: Path) -> Stack:
    prepare_database(database_url)
    env = {**env, "COMPANY_PROFILE": str(always_open_profile(log_dir.parent))}
    rasa_port, action_port = free_port(), free_port()
    # Where this stack's Rasa keeps its trackers (erasure and retention reach them there too).
    stores = {field: env[field.upper()] for field in ("rasa_tracker_db", "rasa_db_host", "rasa_db_port",
                                                      "rasa_db_name", "rasa_db_user", "rasa_db_password")
              if field.upper() in env}
    settings = make_settings(
        database_url, f"http://127.0.0.1:{rasa_port}", rasa_port=rasa_port, action_port=action_port,
        action_url=f"http://127.0.0.1:{action_port}", rasa_timeout=20.0, **stores,
    )
    services = Services(settings, train_if_needed(), endpoints=endpoints, env=env, log_dir=log_dir)
    try:
        services.start(timeout=240)
    except Exception:
        services.stop()
        for log in log_dir.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    return Stack(name, settings, services)


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack-sqlite")
    stack = _start("sqlite", f"sqlite:///{tmp / 'crm.db'}", "endpoints.yml",
                   {"RASA_TRACKER_DB": str(tmp / "tracker.db")}, tmp / "logs")
    yield stack
    stack.services.stop()


@pytest.fixture(scope="session")
def postgresql_stack(tmp_path_factory):
    reason = postgres_reachable() or redis_reachable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("stack-postgres")
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    url = create_engine(PG_URL).url
    env = production_stores(url, os.environ.get("TEST_REDIS_DB", "0"))
    stack = _start("postgresql", f"{PG_URL}?options=-csearch_path%3D{schema}",
                   "endpoints.production.yml", env, tmp / "logs")
    yield stack
    stack.services.stop()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request) -> Stack:
    return request.getfixturevalue(f"{request.param}_stack")
