"""Rasa's answers as Telegram messages: text split under the 4,096-character limit, inline
buttons whose payload stays server-side, and images."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

TELEGRAM_LIMIT = 4096
CAPTION_LIMIT = 1024


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
