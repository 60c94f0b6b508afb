"""The broadcast sender: starts scheduled broadcasts, sends their rows one at a time at
Telegram's pace (BROADCAST_RATE messages a second, 30 by default), honours RetryAfter, marks
blocked clients unreachable, retries network errors and 5xx with backoff, reports to the
marketer. Every step is recorded in the CRM first (crm/broadcasts.py), so it can be killed at
any moment and restarted: pending rows resume, no row is ever sent twice.

Runs inside the bot (`python -m bot run`) or alone: `python -m bot sender`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError, TimedOut

from bot.callbacks import callback_data
from bot.shared import retry_seconds
from bot.transport import TelegramRequest
from crm import broadcasts
from crm.db import unit_of_work


log = logging.getLogger(__name__)
T = TypeVar("T")
IDLE = 1.0


class Throttle:
    """At most `rate` sends a second, evenly spaced; `pause` holds everything (RetryAfter)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        delay = self.next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.next_at = max(self.next_at, time.monotonic()) + self.interval

    def pause(self, seconds: float) -> None:
        self.next_at = max(self.next_at, time.monotonic() + seconds)


class Sender:
    def __init__(self, engine: Engine, bot: Bot, rate: float = 30.0):
        self.engine, self.bot, self.throttle = engine, bot, Throttle(rate)
        self.retry_after_answers = 0
        self.sent = 0

    async def db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with unit_of_work(self.engine) as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. Errors of one round are logged; the loop goes on."""
        while not stop.is_set():
            try:
                worked = await self.round()
            except Exception:  # the CRM unreachable for a moment, say: try again shortly
                log.exception("broadcast round failed")
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), IDLE)
                except asyncio.TimeoutError:
                    pass

    async def round(self, limit: int = 200) -> bool:
        """Start what is due, send up to `limit` rows, follow up. False when there was nothing to do."""
        if not await self.db(broadcasts.pending_work):
            return False
        await self.db(broadcasts.start_due)
        await self.db(broadcasts.recover)
        done = 0
        while done < limit:
            job = await self.db(broadcasts.claim_next)
            if job is None:
                break
            await self.throttle.wait()
            await self.send(job)
            done += 1
        await self.db(broadcasts.follow_up)
        return done > 0

    async def send(self, job: broadcasts.Job) -> None:
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(
            broadcasts.TEXTS.t("unsubscribe", job.language),
            callback_data=callback_data("unsubscribe", job.broadcast_id))]])
        try:
            if job.photo:
                await self.bot.send_photo(job.chat_id, job.photo, caption=job.text, parse_mode=ParseMode.HTML,
                                          reply_markup=markup)
            else:
                await self.bot.send_message(job.chat_id, job.text, parse_mode=ParseMode.HTML, reply_markup=markup)
        except RetryAfter as exc:
            self.retry_after_answers += 1
            self.throttle.pause(retry_seconds(exc))
            await self.db(lambda s: broadcasts.release(s, job.delivery_id))
        except Forbidden as exc:
            error = str(exc)
            await self.db(lambda s: broadcasts.mark_blocked(s, job.delivery_id, error))
        except BadRequest as exc:  # the chat is gone, or the text was refused: retrying changes nothing
            error = str(exc)
            await self.db(lambda s: broadcasts.mark_failed(s, job.delivery_id, error))
        except TimedOut as exc:  # the request may have reached Telegram: never risk a second copy
            error = str(exc)
            await self.db(lambda s: broadcasts.mark_unconfirmed(s, job.delivery_id, error))
        except TelegramError as exc:  # network errors, 5xx: again later
            error = str(exc)
            await self.db(lambda s: broadcasts.retry_later(s, job.delivery_id, error))
        else:
            self.sent += 1
            await self.db(lambda s: broadcasts.mark_sent(s, job.delivery_id))


async def run_sender(database_url: str, token: str, base_url: str, rate: float, stop: asyncio.Event | None = None) -> None:
    """The sender on its own (python -m bot sender): until interrupted."""
    from crm.db import engine_for

    bot = Bot(token, base_url=base_url, request=TelegramRequest())
    async with bot:
        await Sender(engine_for(database_url), bot, rate).run(stop or asyncio.Event())
