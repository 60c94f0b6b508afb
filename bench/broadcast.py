"""Broadcast rate: the sender (bot/broadcaster.py) sends to 10,000 consenting recipients through
the Bot API emulator, which enforces a rate limit the way Telegram does (429 with retry_after
when more than `limit` messages arrive within a second). Reported: the sustained rate as a ratio
of the configured limit (the baseline), the 429 answers received, and messages lost (must be 0)."""

from __future__ import annotations

import asyncio
import collections
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import insert, select
from telegram import Bot

from bot.broadcaster import Sender
from bot.emulator import BotApiEmulator
from bot.transport import TelegramRequest
from crm import broadcasts
from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade
from crm.models import Broadcast, Client, Consent

TOKEN = "123456789:bench-token-for-the-bot-api-emulator"


class RateLimitedApi:
    """A responder for the emulator: at most `limit` sendMessage calls in any one second."""

    def __init__(self, limit: float):
        self.limit = limit
        self.window: collections.deque[float] = collections.deque()
        self.lock = threading.Lock()
        self.too_many = 0

    def __call__(self, method: str, params: dict):
        if method != "sendMessage":
            return None
        with self.lock:
            now = time.monotonic()
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= self.limit:
                self.too_many += 1
                return 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 1}}
            self.window.append(now)
        return None


def seed(url: str, recipients: int):
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        s.execute(insert(Client), [{"telegram_id": 1_000_000 + i, "first_name": f"C{i}", "last_name": "",
                                    "language": "fr" if i % 3 else "en"} for i in range(recipients)])
        s.execute(insert(Consent), [{"client_id": cid, "granted": True, "source": "command"}
                                    for cid in s.scalars(select(Client.id))])
        broadcasts.schedule(s, broadcasts.create(s, None, "Bonjour {prénom} : <b>-15 %</b> cette semaine"))
    return engine


async def send_all(engine, emulator: BotApiEmulator, limit: float) -> float:
    bot = Bot(TOKEN, base_url=emulator.base_url, request=TelegramRequest())  # as bot/broadcaster.py
    async with bot:
        sender = Sender(engine, bot, rate=limit)
        started = time.perf_counter()
        while True:
            await sender.round(limit=1_000)
            with unit_of_work(engine) as s:
                if s.scalar(select(Broadcast.state)) == "done":
                    break
        return time.perf_counter() - started


def run(recipients: int = 10_000, limit: float = 100.0) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        engine = seed(f"sqlite:///{Path(folder) / 'bench.db'}", recipients)
        api = RateLimitedApi(limit)
        emulator = BotApiEmulator().start()
        emulator.responder = api
        try:
            elapsed = asyncio.run(send_all(engine, emulator, limit))
        finally:
            emulator.stop()
        with unit_of_work(engine) as s:
            numbers = broadcasts.counts(s, s.scalar(select(Broadcast.id)))
        engine.dispose()
    delivered = collections.Counter(m.chat_id for m in emulator.sent if m.method == "sendMessage")
    rate = len(delivered) / elapsed
    return {
        "benchmark": "broadcast", "recipients": recipients, "configured_limit_per_s": limit,
        "seconds": round(elapsed, 1), "sent_per_s": round(rate, 1), "ratio_to_limit": round(rate / limit, 3),
        "answers_429": api.too_many, "sent": numbers["sent"], "lost": recipients - len(delivered),
        "duplicates": sum(n - 1 for n in delivered.values() if n > 1),
    }
