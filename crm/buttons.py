"""Buttons whose payload stays server-side: Telegram's callback data is only 64 bytes and can be
forged, so a button carries a random token and the payload (what the client "says" to Rasa when
pressing it) stays in the CRM, for the chat it was sent to only."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import ButtonPayload

BUTTON_PREFIX = "b:"


def store_buttons(session: Session, chat_id: int, buttons: list[dict]) -> list[tuple[str, str]]:
    """Keep each payload in the CRM; return (title, callback data) pairs."""
    out = []
    for button in buttons:
        token = secrets.token_urlsafe(12)
        session.add(
            ButtonPayload(token=token, chat_id=chat_id, title=button["title"], payload=button["payload"])
        )
        out.append((button["title"], BUTTON_PREFIX + token))
    session.flush()
    return out


def payload_for(session: Session, chat_id: int, data: str | None) -> str | None:
    """The payload behind a pressed button, or None when it is forged, foreign or unknown."""
    if not data or not data.startswith(BUTTON_PREFIX) or len(data) > 64:
        return None
    row = session.scalar(
        select(ButtonPayload).where(ButtonPayload.token == data[len(BUTTON_PREFIX):])
    )
    if row is None or row.chat_id != chat_id:
        return None
    return row.payload


def payload_buttons(session: Session, chat_id: int, buttons: list[dict]) -> list[dict]:
    """[{"title", "payload"}] as outbox buttons [{"title", "data"}]: pressing one sends its payload
    to Rasa, as a button of a Rasa answer does."""
    return [{"title": title, "data": data} for title, data in store_buttons(session, chat_id, buttons)]
