"""The inbox: Telegram updates written down before Telegram is told they arrived.

Telegram forgets an update once getUpdates is called with a later offset. The bot therefore
keeps each update here first, then asks for the next ones; a handled update is marked done. When
the bot is killed in the middle, the updates not done are handled again when it starts (a client
message already recorded is not recorded or answered twice: see crm.clients). Done rows are
purged after a day; until then they hold what clients wrote (the client export and erasure of
issue 16 must include this table).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.db import insert_unless_exists
from crm.models import InboundUpdate

KEEP_DONE = timedelta(days=1)


def keep(session: Session, update_id: int, chat_id: int | None, payload: dict) -> bool:
    """Write an update down; False when it already was (fetched twice: handle it once)."""
    return insert_unless_exists(session, InboundUpdate, {
        "update_id": update_id, "chat_id": chat_id, "payload": payload, "received_at": clock.now()}, ["update_id"])


def done(session: Session, update_id: int) -> None:
    session.execute(update(InboundUpdate).where(InboundUpdate.update_id == update_id, InboundUpdate.done_at.is_(None))
                    .values(done_at=clock.now()))


def unfinished(session: Session, limit: int = 1000) -> list[dict]:
    """The updates a previous run received and did not finish, oldest first."""
    return list(session.scalars(select(InboundUpdate.payload).where(InboundUpdate.done_at.is_(None))
                                .order_by(InboundUpdate.update_id).limit(limit)))


def purge(session: Session, now: datetime | None = None) -> int:
    cutoff = (now or clock.now()) - KEEP_DONE
    return session.execute(delete(InboundUpdate).where(InboundUpdate.done_at < cutoff)).rowcount
