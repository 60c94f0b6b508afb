"""Runs the real bot Application against the Bot API emulator, as in production but on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.app import build_application
from bot.emulator import BotApiEmulator, User
from bot.settings import Settings

TOKEN = "123456789:test-token-for-the-bot-api-emulator"


def at_once(count: int, work) -> list:
    """Run work(i) in `count` threads released together (a race on purpose); returns what each
    returned, or the exception it raised."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # collected: the test says which outcome is right
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_block(count: int) -> int:
    """A port such that it and the `count` after it are free (the replica layout numbers its
    processes' ports from a base)."""
    import os

    for _ in range(200):
        base = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
        try:
            for port in range(base, base + count + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no block of free ports")


def always_open_profile(folder: Path) -> Path:
    """The company profile with the desk open around the clock, so that desk answers do not
    depend on the hour the tests run at."""
    import yaml

    from crm.settings import ROOT

    profile = yaml.safe_load((ROOT / "company.yml").read_text(encoding="utf-8"))
    profile["desk"]["hours"] = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    path = folder / "company.yml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    return path


def production_stores(url, redis_db: str) -> dict:
    """The environment endpoints.production.yml reads: Rasa's trackers in the PostgreSQL at
    `url` (a SQLAlchemy URL), its locks in the local Redis database `redis_db`."""
    return {"RASA_DB_HOST": url.host or "127.0.0.1", "RASA_DB_PORT": str(url.port or 5432),
            "RASA_DB_NAME": url.database or "test", "RASA_DB_USER": url.username or "postgres",
            "RASA_DB_PASSWORD": url.password or "", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379",
            "REDIS_DB": redis_db}


def make_settings(database_url: str, rasa_url: str, **overrides) -> Settings:
    values = dict(
        telegram_token=TOKEN, telegram_base_url="http://127.0.0.1:1/bot", database_url=database_url,
        rasa_url=rasa_url, rasa_port=5005, action_port=5055, action_url="http://127.0.0.1:5055",
        rasa_token="test-token-for-rasa-0123", action_token="test-token-for-actions-01", rasa_timeout=5.0,
        webhook_url=None, webhook_secret=None,
        webhook_listen="127.0.0.1", webhook_port=8443,
    )
    values.update(overrides)
    return Settings(**values)


class StubRasa:
    """A REST-channel stand-in for edge tests that do not need the language model: it answers
    with `reply(sender, message, metadata)` and records what it received."""

    def __init__(self, reply):
        self.reply = reply
        self.received: list[dict] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each call
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.received.append(body)
                stub.authorizations.append(self.headers.get("Authorization"))
                answer = stub.reply(body["sender"], body["message"], body.get("metadata") or {})
                status, payload = answer if isinstance(answer, tuple) else (200, answer)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BotHarness:
    """The bot's Application polling the emulator (through the inbox, as `python -m bot serve`
    does), inside the test's event loop."""

    def __init__(self, settings: Settings, emulator: BotApiEmulator | None = None):
        self.owns_emulator = emulator is None
        self.emulator = emulator or BotApiEmulator().start()
        self.settings = settings.model_copy(update={"telegram_base_url": self.emulator.base_url})
        self.application = build_application(self.settings, token=TOKEN)

    async def __aenter__(self) -> "BotHarness":
        from bot.poller import poll, replay

        await self.application.initialize()
        await self.application.start()
        await replay(self.application)
        self.stopping = asyncio.Event()
        self.polling = asyncio.create_task(poll(self.application, self.stopping, timeout=1))
        return self

    async def __aexit__(self, *exc) -> None:
        self.stopping.set()
        await self.polling
        await self.application.stop()
        await self.application.shutdown()
        if self.owns_emulator:
            self.emulator.stop()

    async def say(self, user: User, text: str, expect: int = 1, timeout: float = 30.0, reply_to=None):
        """The user writes (in reply to `reply_to`, a message they got); wait until `expect` more
        messages reached them; return the new ones."""
        before = len(self.emulator.messages_to(user.id))
        self.emulator.user_says(user, text, reply_to=reply_to)
        return (await self.wait(user, before + expect, timeout))[before:]

    async def wait(self, user: User, count: int, timeout: float = 30.0):
        return await asyncio.to_thread(self.emulator.wait_for_messages, user.id, count, timeout)
