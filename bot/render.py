"""Rasa's answers as Telegram messages: text split under the 4,096-character limit, inline
buttons whose payload stays server-side, and images."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from crm.models import ButtonPayload

TELEGRAM_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTON_PREFIX = "b:"


def split_text(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries; never cut inside a word if avoidable."""
    text = text.strip()
    if not text:
        return []
    chunks: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), -1)
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        chunks.append(text)
    return chunks


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


def keyboard(pairs: list[tuple[str, str]]) -> InlineKeyboardMarkup | None:
    if not pairs:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    for title, data in pairs:
        button = InlineKeyboardButton(title or "…", callback_data=data)
        # Short titles go two to a row, long ones alone, so every title stays readable.
        if rows and len(rows[-1]) == 1 and len(title) <= 18 and len(rows[-1][0].text) <= 18:
            rows[-1].append(button)
        else:
            rows.append([button])
    return InlineKeyboardMarkup(rows)
