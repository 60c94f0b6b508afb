"""Rasa's tracker store: every event of every conversation (what the client wrote included), in
the SQL table `events` that Rasa's SQLTrackerStore writes (endpoints.yml: a SQLite file;
endpoints.production.yml: PostgreSQL). Our code never reads a conversation from it; it only
erases one (a client's erasure) and purges old events (retention), in batches.

Rasa appends to a conversation the events it has in memory beyond those it finds stored: a
conversation erased while Rasa is answering it could come back. The bot erases under the
client's chat lock (nothing of theirs is at Rasa then), and `erase_conversation` may be called
again after a moment (it is idempotent) by callers that cannot hold that lock.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, delete, func, inspect, select
from sqlalchemy.engine import Engine

_metadata = MetaData()
EVENTS = Table("events", _metadata, Column("id", Integer, primary_key=True), Column("sender_id", String(255)),
               Column("timestamp", Float))


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    """One small pool per store and process (an erasure or the daily purge now and then)."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"timeout": 30})
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def tracker_engine(url: str | None) -> Engine | None:
    """The tracker store's engine, None when there is none to reach (no URL, or Rasa never ran)."""
    if not url:
        return None
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and not Path(path).exists():
            return None  # Rasa never ran here: no conversation stored (and none created by looking)
    engine = _engine(url)
    return engine if inspect(engine).has_table("events") else None


def erase_conversation(engine: Engine | None, sender_id: str) -> int:
    """Delete every event of the conversation with `sender_id` (the client's Telegram id)."""
    if engine is None:
        return 0
    with engine.begin() as conn:
        return int(conn.execute(delete(EVENTS).where(EVENTS.c.sender_id == sender_id)).rowcount or 0)


def count_before(engine: Engine | None, cutoff: datetime) -> int:
    if engine is None:
        return 0
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(EVENTS)
                               .where(EVENTS.c.timestamp < cutoff.timestamp())) or 0)


def purge_before(engine: Engine | None, cutoff: datetime, batch: int = 1000) -> int:
    """Delete the events older than `cutoff`, `batch` rows per transaction; returns how many."""
    if engine is None:
        return 0
    total = 0
    while True:
        with engine.begin() as conn:
            ids = conn.scalars(select(EVENTS.c.id).where(EVENTS.c.timestamp < cutoff.timestamp())
                               .order_by(EVENTS.c.id).limit(batch)).all()
            if not ids:
                return total
            total += int(conn.execute(delete(EVENTS).where(EVENTS.c.id.in_(ids))).rowcount or 0)
