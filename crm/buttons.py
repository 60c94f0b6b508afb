"""Buttons whose payload stays server-side: Telegram's callback data is only 64 bytes and can be
forged, so a button carries a random token and the payload (what the client "says" to Rasa when
pressing it) stays in the CRM, for the chat it was sent to only."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.models import ButtonPayload, Client

BUTTON_PREFIX = "b:"
# A button older than this is answered "no longer valid", and its payload is purged.
BUTTON_LIFETIME = timedelta(days=30)


def new_batch() -> str:
    return secrets.token_urlsafe(12)


def store_buttons(session: Session, chat_id: int, buttons: list[dict], batch: str | None = None) -> list[tuple[str, str]]:
    """Keep each payload in the CRM, the buttons of one message under one batch; return (title,
    callback data) pairs."""
    out = []
    for button in buttons:
        token = secrets.token_urlsafe(12)
        session.add(ButtonPayload(token=token, chat_id=chat_id, title=button["title"][:255],
                                  payload=button["payload"], batch=batch))
        out.append((button["title"], BUTTON_PREFIX + token))
    session.flush()
    return out


def payload_for(session: Session, chat_id: int, data: str | None, sent_after: datetime | None = None) -> str | None:
    """The payload behind a pressed button, or None when it is forged, foreign, unknown, past
    its lifetime, or (with `sent_after`) sent before that instant."""
    if not data or not data.startswith(BUTTON_PREFIX) or len(data) > 64:
        return None
    row = session.scalar(
        select(ButtonPayload).where(ButtonPayload.token == data[len(BUTTON_PREFIX):])
    )
    if row is None or row.chat_id != chat_id or clock.aware(row.created_at) < clock.now() - BUTTON_LIFETIME:
        return None
    if sent_after is not None and clock.aware(row.created_at) < clock.aware(sent_after):
        return None
    return row.payload


def purge_buttons(session: Session, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete payloads of buttons past BUTTON_LIFETIME (a batch at a time). Returns how many."""
    cutoff = (now or clock.now()) - BUTTON_LIFETIME
    ids = list(session.scalars(select(ButtonPayload.id).where(ButtonPayload.created_at < cutoff).limit(batch)))
    if ids:
        session.execute(delete(ButtonPayload).where(ButtonPayload.id.in_(ids)))
    return len(ids)


def payload_buttons(session: Session, chat_id: int, buttons: list[dict]) -> list[dict]:
    """[{"title", "payload"}] as outbox buttons [{"title", "data"}]: pressing one sends its payload
    to Rasa, as a button of a Rasa answer does. They become the client's choices on screen, so
    typing one ("mardi 10h" for a manager's proposal of slots) works too."""
    batch = new_batch()
    pairs = store_buttons(session, chat_id, buttons, batch)
    session.execute(update(Client).where(Client.telegram_id == chat_id).values(choices_batch=batch))
    return [{"title": title, "data": data} for title, data in pairs]
