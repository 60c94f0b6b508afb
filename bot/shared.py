"""What every handler module reaches through the context: the Assistant (CRM, Rasa, chat locks)
that bot/app.py stores in the application's bot_data."""

from __future__ import annotations

from telegram.error import RetryAfter
from telegram.ext import ContextTypes


# The updates the bot asks Telegram for, by polling (bot/poller.py) and by webhook (bot/app.py).
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


def assistant(context: ContextTypes.DEFAULT_TYPE):
    """The Assistant of bot/app.py."""
    return context.application.bot_data["assistant"]


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asks us to wait (python-telegram-bot gives seconds or a timedelta)."""
    value = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)
