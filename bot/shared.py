"""What every handler module reaches through the context: python-telegram-bot's CallbackContext
typed for this application (`Context`), which carries the Assistant (CRM, Rasa, chat locks) and
the settings that bot/app.py gives the application once, at assembly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from telegram import InlineKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import CallbackContext, ExtBot

from bot.callbacks import parse

# (update id, crm.handoffs.Route, its message recorded or None) of the update this task handles:
# bot.app's process_update reads it with the chat's earlier updates, in the same unit of work; the
# handlers skip what the route rules out, and converse takes the message recorded there (a known
# client's text to the assistant) instead of recording it.
ROUTE: ContextVar = ContextVar("route", default=None)


def route(update: Update):
    """The crm.handoffs.Route read for this update, or None (not read: take the full path)."""
    found = ROUTE.get()
    return found[1] if found is not None and found[0] == update.update_id else None


def assistant_only(update: Update) -> bool:
    """Neither the desk nor the broadcast composer has anything to do with this message."""
    found = route(update)
    return found is not None and found.assistant_only


if TYPE_CHECKING:
    from bot.app import Assistant, AssistantApplication
    from bot.settings import Settings


log = logging.getLogger(__name__)

# The updates the bot asks Telegram for, by polling (bot/poller.py) and by webhook (bot/app.py).
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


class Context(CallbackContext[ExtBot, dict, dict, dict]):
    """The context of every handler and job (ContextTypes(context=Context) in bot/app.py)."""

    application: AssistantApplication

    @property
    def assistant(self) -> Assistant:
        return self.application.assistant

    @property
    def settings(self) -> Settings:
        return self.application.settings


def score_button(action: str, rate: Callable, texts, expired: str, rated: str):
    """The handler of a satisfaction button (1-5) of `action` (bot/callbacks.py): `rate(session,
    telegram id, row id, score)` records it for the client who pressed, or returns None (a forged,
    foreign or stale button: an alert says it is no longer valid); the message then thanks them."""
    async def handler(update: Update, context: Context) -> None:
        query = update.callback_query
        pressed = parse(action, query.data)
        row = await context.assistant.db(lambda s: rate(s, update.effective_user.id, *pressed)) if pressed else None
        _, language = await context.assistant.client(update.effective_user)
        if row is None:
            await query.answer(texts.t(expired, language), show_alert=True)
            return
        await query.answer()
        try:
            await query.edit_message_text(texts.t(rated, language, score=row.satisfaction))
        except TelegramError as exc:
            log.info("could not edit the rating message: %s", exc)

    return handler


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asks us to wait (python-telegram-bot gives seconds or a timedelta)."""
    value = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


async def safe_send(bot, chat_id: int, text: str | None, *, photo: str | None = None,
                    markup: InlineKeyboardMarkup | ReplyKeyboardRemove | None = None) -> bool:
    """Send, logging (not raising) what Telegram refuses: one bad message never stops the bot.
    A Bot API error that means "not delivered" (5xx, connection refused, 429 beyond the rate
    limiter's own retries) is tried again with back-off; a time-out is not, since Telegram may
    have delivered it (sending it again could double it)."""
    for attempt in range(SEND_ATTEMPTS):
        try:
            if photo:
                await bot.send_photo(chat_id, photo=photo, caption=text, reply_markup=markup)
            else:
                await bot.send_message(chat_id, text, reply_markup=markup)
            return True
        except (BadRequest, Forbidden) as exc:  # refused for good: this message, or this chat
            log.warning("Telegram refused a message to %s: %s", chat_id, exc)
            return False
        except TimedOut as exc:
            log.warning("sending to %s timed out (%s): it may have arrived, not sent again", chat_id, exc)
            return False
        except RetryAfter as exc:
            await asyncio.sleep(retry_seconds(exc))
        except NetworkError as exc:
            log.warning("sending to %s failed (%s): attempt %d of %d", chat_id, exc, attempt + 1, SEND_ATTEMPTS)
            await asyncio.sleep(0.5 * 2 ** attempt)
        except TelegramError as exc:
            log.warning("could not send to %s: %s", chat_id, exc)
            return False
    log.error("gave up sending to %s after %d attempts", chat_id, SEND_ATTEMPTS)
    return False


SEND_ATTEMPTS = 5
