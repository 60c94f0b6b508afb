"""Buttons whose payload stays server-side: Telegram's callback data is only 64 bytes and can be
forged, so a button carries a random token and the payload (what the client "says" to Rasa when
pressing it) stays in the CRM, for the chat it was sent to only."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.models import ButtonPayload, Client
from crm.outbox import button

# A button older than this is answered "no longer valid", and its payload is purged.
BUTTON_LIFETIME = timedelta(days=30)


def new_batch() -> str:
    return secrets.token_urlsafe(12)


def store_buttons(session: Session | Connection, chat_id: int, buttons: list[dict],
                  batch: str | None = None) -> list[tuple[str, str]]:
    """Keep each payload in the CRM, the buttons of one message under one batch; return (title,
    token) pairs: the token is what the button sends back."""
    rows = plan_buttons(chat_id, buttons, batch)
    keep_buttons(session, rows)
    return [(row["title"], row["token"]) for row in rows]


def plan_buttons(chat_id: int, buttons: list[dict], batch: str | None = None) -> list[dict]:
    """The rows of `buttons` (each with its new token), not written yet: the bot sends an answer's
    buttons, then keeps them with the answer in one unit of work (keep_buttons), holding the
    chat's lock all along, so a press (handled under that lock) always finds them. Dated now,
    before the send: a button sent before the desk took the conversation stays one
    (payload_for's `sent_after`) even when it is written down after."""
    now = clock.now()
    return [{"token": secrets.token_urlsafe(12), "chat_id": chat_id, "title": choice["title"][:255],
             "payload": choice["payload"], "batch": batch, "created_at": now} for choice in buttons]


def keep_buttons(session: Session | Connection, rows: list[dict]) -> None:
    if rows:
        session.execute(_STORE, rows)


_STORE = insert(ButtonPayload.__table__)  # the buttons of most answers: built once


def payload_for(session: Session, chat_id: int, token: str | None, sent_after: datetime | None = None) -> str | None:
    """The payload behind a pressed button's token, or None when it is forged, foreign, unknown,
    past its lifetime, or (with `sent_after`) sent before that instant."""
    if not token or len(token) > 64:
        return None
    row = session.scalar(select(ButtonPayload).where(ButtonPayload.token == token))
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
    """[{"title", "payload"}] as outbox buttons (crm.outbox.button): pressing one sends its payload
    to Rasa, as a button of a Rasa answer does. They become the client's choices on screen, so
    typing one ("mardi 10h" for a manager's proposal of slots) works too."""
    batch = new_batch()
    pairs = store_buttons(session, chat_id, buttons, batch)
    session.execute(update(Client).where(Client.telegram_id == chat_id).values(choices_batch=batch))
    return [button(title, "choice", token) for title, token in pairs]
