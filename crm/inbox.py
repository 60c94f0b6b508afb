"""The inbox: Telegram updates written down before Telegram is told they arrived.

Telegram forgets an update once getUpdates is called with a later offset (or once the webhook
answered 200). The bot therefore keeps each update here first, with the process that received it,
then confirms it; a handled update is marked done. When a bot process is killed in the middle, the
updates it left are handled again when it starts, or by a live replica (a client message already
recorded is not recorded or answered twice: see crm.clients). Done rows are
purged after a day; until then they hold what clients wrote (the client export and erasure of
issue 16 must include this table).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.db import insert_unless_exists
from crm.models import InboundUpdate

KEEP_DONE = timedelta(days=1)


def keep(session: Session | Connection, update_id: int, chat_id: int | None, payload: dict,
         owner: str | None = None) -> bool:
    """Write an update down, received by `owner` (a bot process); False when it already was
    (fetched twice, or Telegram's retry reaching another replica: handle it once)."""
    return insert_unless_exists(session, InboundUpdate, {
        "update_id": update_id, "chat_id": chat_id, "payload": payload, "received_at": clock.now(),
        "owner": owner}, ["update_id"])


# The statements of every message, built once (building one costs more than running it), on the
# table's own columns (an ORM attribute sends a statement through the ORM's execution layer).
_inbox = InboundUpdate.__table__.c
_DONE = update(InboundUpdate.__table__).where(_inbox.update_id == bindparam("id"),
                                              _inbox.done_at.is_(None)).values(done_at=bindparam("at"))


def _pending(owner_only: bool):
    earlier_ones = _inbox.done_at.is_(None)
    if owner_only:
        earlier_ones = earlier_ones & (_inbox.owner == bindparam("owner"))
    return (select(_inbox.update_id, _inbox.payload, _inbox.owner, _inbox.done_at)
            .where(_inbox.chat_id == bindparam("chat"), _inbox.update_id <= bindparam("id"),
                   or_(earlier_ones, _inbox.update_id == bindparam("id")))
            .order_by(_inbox.update_id))


_PENDING, _PENDING_OWNED = _pending(False), _pending(True)


def done(session: Session | Connection, update_id: int) -> None:
    session.execute(_DONE, {"id": update_id, "at": clock.now()})


def owners(session: Session) -> list[str | None]:
    """The bot processes that have updates not finished (None: updates written down by no one
    in particular, before replicas)."""
    return list(session.scalars(select(InboundUpdate.owner).where(InboundUpdate.done_at.is_(None)).distinct()))


def take_over(session: Session, me: str, dead: list[str | None], limit: int = 1000) -> list[dict]:
    """The unfinished updates of dead processes become `me`'s (two live processes racing for
    them: the second finds them taken); returns them, oldest first."""
    if not dead:
        return []
    named = [owner for owner in dead if owner is not None]
    whose = or_(InboundUpdate.owner.in_(named), InboundUpdate.owner.is_(None)) if None in dead else \
        InboundUpdate.owner.in_(named)
    ids = list(session.scalars(select(InboundUpdate.update_id).where(InboundUpdate.done_at.is_(None), whose)
                               .order_by(InboundUpdate.update_id).limit(limit)))
    if not ids:
        return []
    session.execute(update(InboundUpdate).where(InboundUpdate.update_id.in_(ids), InboundUpdate.done_at.is_(None),
                                                whose).values(owner=me))
    return list(session.scalars(select(InboundUpdate.payload).where(
        InboundUpdate.update_id.in_(ids), InboundUpdate.owner == me, InboundUpdate.done_at.is_(None))
        .order_by(InboundUpdate.update_id)))


def pending_through(session: Session | Connection, chat_id: int, update_id: int,
                    owner: str | None = None) -> tuple[list[tuple[dict, str | None]], bool]:
    """What the holder of a chat's lock handles before this update: the chat's earlier updates not
    done yet (another bot process received them and waits for the lock, or died; only `owner`'s
    when given: without a lock shared by the processes, another one may be handling its own),
    oldest first, each with the process that received it; and whether this update itself is
    still to handle (False when another process handled it meanwhile; True when it was never
    written down)."""
    if owner is None:
        rows = session.execute(_PENDING, {"chat": chat_id, "id": update_id}).all()
    else:
        rows = session.execute(_PENDING_OWNED, {"chat": chat_id, "id": update_id, "owner": owner}).all()
    earlier = [(row.payload, row.owner) for row in rows if row.update_id != update_id]
    mine = next((row for row in rows if row.update_id == update_id), None)
    return earlier, mine is None or mine.done_at is None


def purge(session: Session, now: datetime | None = None) -> int:
    cutoff = (now or clock.now()) - KEEP_DONE
    return session.execute(delete(InboundUpdate).where(InboundUpdate.done_at < cutoff)).rowcount
