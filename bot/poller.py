"""Long polling that loses no update: each batch from getUpdates is written into the CRM's inbox
(crm/inbox.py) before the next call tells Telegram it arrived, and each update is marked done
once handled. At start, what a previous run received and did not finish is handled first.

python-telegram-bot's own Updater asks for the next batch (and so confirms the last one) as soon
as it has queued it: a bot killed a moment later loses what it had not handled yet.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Update
from telegram.error import Conflict, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application

from bot.app import replay, running, tell_crm_down
from bot.shared import ALLOWED_UPDATES, retry_seconds
from crm import inbox

log = logging.getLogger(__name__)
POLL_TIMEOUT = 10


def _chat_id(update: Update) -> int | None:
    return update.effective_chat.id if update.effective_chat else None


async def poll(application: Application, stop: asyncio.Event, timeout: int = POLL_TIMEOUT) -> None:
    """Fetch, write down, then confirm (the next call's offset) and hand over to the handlers.
    With the CRM unreachable nothing is confirmed: Telegram keeps the updates until it is back."""
    helper = application.assistant
    offset, pause = None, 1.0
    apologised: set[int] = set()
    while not stop.is_set():
        try:
            updates = await application.bot.get_updates(offset=offset, timeout=timeout,
                                                        allowed_updates=ALLOWED_UPDATES)
        except RetryAfter as exc:
            await _sleep(stop, retry_seconds(exc))
            continue
        except TimedOut:
            continue
        except Conflict as exc:  # another process polls the same bot: the inbox keeps each update once
            log.warning("getUpdates conflict: %s", exc)
            await _sleep(stop, 1.0)
            continue
        except (NetworkError, TelegramError) as exc:
            log.warning("getUpdates failed (%s): retrying in %.0f s", exc, pause)
            await _sleep(stop, pause)
            pause = min(pause * 2, 30.0)
            continue
        pause = 1.0
        if not updates:
            continue

        def write_down(session):
            return [u for u in updates if inbox.keep(session, u.update_id, _chat_id(u), u.to_dict(), helper.replicas.me)]

        try:
            fresh = await helper.db(write_down)
        except Exception as exc:  # the CRM is unreachable: confirm nothing, ask again shortly
            log.error("could not write updates down (%s): Telegram keeps them, retrying", type(exc).__name__)
            for update in updates:  # each client is told once that the answer is coming
                if update.update_id not in apologised:
                    apologised.add(update.update_id)
                    await tell_crm_down(application.bot, update)
            await _sleep(stop, 1.0)
            continue
        apologised.clear()
        for update in fresh:
            await application.update_queue.put(update)
        offset = updates[-1].update_id + 1


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def run(application: Application, stop: asyncio.Event) -> None:
    """The bot in polling mode until `stop` is set: what run_polling does, with our poller."""
    async with running(application):
        await application.bot.delete_webhook()
        await application.assistant.actions_down()  # learns whether it can reach them
        await replay(application)
        await poll(application, stop)
