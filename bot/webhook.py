"""Webhook mode that loses no update, with any number of bot replicas behind a reverse proxy.

Telegram calls WEBHOOK_URL with each update and the secret token in a header. The update is
written into the CRM's inbox (crm/inbox.py, owned by this process) before Telegram gets its 200:
a replica killed a moment later leaves it to a live one (bot/app.py `replay`), and Telegram's
retry of an update landing on another replica is recognised by its update id and handled once.
With the CRM unreachable Telegram gets a 503 and delivers the update again later.

python-telegram-bot's own webhook server answers Telegram as soon as the update is queued in
memory, which a killed process forgets; this one keeps the same shape (tornado, which
python-telegram-bot[webhooks] brings) and writes first.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from urllib.parse import urlparse

import tornado.web
from tornado.httpserver import HTTPServer
from telegram import Update
from telegram.ext import Application

from bot.app import replay, running
from bot.settings import Settings
from bot.shared import ALLOWED_UPDATES
from crm import inbox

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; anything near this is not Telegram


class TelegramUpdates(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("POST",)

    def initialize(self, bot_application: Application, secret: str) -> None:
        self.bot_application = bot_application
        self.secret = secret

    def log_exception(self, typ, value, tb) -> None:  # refusals are answers, not errors
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)

    async def post(self) -> None:
        token = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(token.encode(), self.secret.encode()):
            raise tornado.web.HTTPError(403)
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.bot_application.bot) if isinstance(data, dict) else None
        except Exception as exc:  # tampered or truncated: whatever python-telegram-bot raises
            log.warning("webhook: a request that is no update (%s)", type(exc).__name__)
            raise tornado.web.HTTPError(400) from exc
        if update is None or not isinstance(update.update_id, int):
            raise tornado.web.HTTPError(400)
        helper = self.bot_application.assistant
        chat = update.effective_chat
        try:
            fresh = await helper.db(lambda s: inbox.keep(s, update.update_id, chat.id if chat else None,
                                                         data, helper.replicas.me), core=True)  # as sent
        except Exception as exc:  # Telegram delivers it again later
            log.error("webhook: could not write update %s down (%s): Telegram will retry", update.update_id,
                      type(exc).__name__)
            raise tornado.web.HTTPError(503) from exc
        if fresh:
            await self.bot_application.update_queue.put(update)
        self.set_status(200)
        self.finish()


class Health(tornado.web.RequestHandler):
    """GET /healthz: 200 while this process takes updates (the load balancer's check)."""

    SUPPORTED_METHODS = ("GET",)

    def get(self) -> None:
        self.finish("ok")


def webhook_app(application: Application, settings: Settings) -> tornado.web.Application:
    path = urlparse(settings.webhook_url).path.rstrip("/") or "/"
    return tornado.web.Application(
        [(rf"{path}/?", TelegramUpdates, {"bot_application": application, "secret": settings.webhook_secret}),
         (r"/healthz", Health)],
        log_function=lambda handler: None)


async def run(application: Application, settings: Settings, stop: asyncio.Event) -> None:
    """The bot in webhook mode until `stop` is set: listen on WEBHOOK_LISTEN:WEBHOOK_PORT, tell
    Telegram the public WEBHOOK_URL (every replica says the same), handle what a stopped process
    left unfinished."""
    async with running(application):
        await application.assistant.replicas.beat()  # alive before the first update: none taken over
        server = HTTPServer(webhook_app(application, settings), max_body_size=MAX_BODY, xheaders=True)
        server.listen(settings.webhook_port, address=settings.webhook_listen)
        try:
            await application.bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret,
                                              allowed_updates=ALLOWED_UPDATES)
            await application.assistant.actions_down()  # learns whether it can reach them
            await replay(application)
            await stop.wait()
        finally:
            server.stop()
            await server.close_all_connections()
