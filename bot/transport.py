"""HTTP on the bot's path (Telegram's Bot API and Rasa) with aiohttp.

python-telegram-bot sends through httpx by default: measured here, an httpx request costs the
bot's process about 1.05 ms of CPU, an aiohttp one 0.19 ms, and a client message takes two (Rasa,
then Telegram), on the one core that a bot process has. `TelegramRequest` is python-telegram-bot's
own extension point (telegram.request.BaseRequest) on aiohttp, with the same defaults, timeouts
and errors as its HTTPXRequest."""

from __future__ import annotations

import asyncio
import urllib.request
from functools import lru_cache
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


def timeout(connect: float | None, read: float | None, write: float | None = None,
            pool: float | None = None) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts from httpx's four: waiting for a connection of the pool and connecting
    (`connect`), then each read; the whole request bounded by their sum (aiohttp has no write
    timeout of its own)."""
    parts = [connect, read, write, pool]
    total = None if any(part is None for part in parts) else sum(parts)
    waiting = None if connect is None or pool is None else connect + pool
    return aiohttp.ClientTimeout(total=total, connect=waiting, sock_connect=connect, sock_read=read)


def session(limit: int, force_close: bool = False) -> aiohttp.ClientSession:
    """A session for one event loop: at most `limit` connections, no cookies kept; `force_close`:
    a new connection for each request (bot/rasa_client.py says why)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=force_close),
                                 cookie_jar=aiohttp.DummyCookieJar())


@lru_cache(maxsize=64)
def _proxy(scheme: str, netloc: str) -> str | None:
    if urllib.request.proxy_bypass_environment(netloc):
        return None
    return urllib.request.getproxies_environment().get(scheme)


def proxy_for(url: str) -> str | None:
    """The proxy that HTTPS_PROXY / HTTP_PROXY name for `url` (NO_PROXY respected), as httpx
    honoured them; read once per host at the first request (aiohttp's trust_env reads them, and
    ~/.netrc, at every request: 5 % of the bot's CPU)."""
    scheme, _, rest = url.partition("://")
    return _proxy(scheme, rest.split("/", 1)[0])


class TelegramRequest(BaseRequest):
    """The Bot API over aiohttp (ApplicationBuilder.request / get_updates_request, Bot(request=)).
    The session is opened in `initialize` (in the running loop) and closed in `shutdown`."""

    __slots__ = ("_limit", "_session", "_timeouts", "_media_write_timeout")

    def __init__(self, connection_pool_size: int = 256, read_timeout: float | None = 5.0,
                 write_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0, media_write_timeout: float | None = 20.0):
        self._limit = connection_pool_size
        self._timeouts = {"read": read_timeout, "write": write_timeout, "connect": connect_timeout,
                          "pool": pool_timeout}
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._timeouts["read"]

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = session(self._limit)

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=BaseRequest.DEFAULT_NONE, write_timeout=BaseRequest.DEFAULT_NONE,
                         connect_timeout=BaseRequest.DEFAULT_NONE, pool_timeout=BaseRequest.DEFAULT_NONE,
                         ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This TelegramRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        given = {"read": read_timeout, "write": write_timeout, "connect": connect_timeout, "pool": pool_timeout}
        chosen = {name: self._timeouts[name] if isinstance(value, DefaultValue) else value
                  for name, value in given.items()}
        if files and isinstance(write_timeout, DefaultValue):
            chosen["write"] = self._media_write_timeout
        body: Any = fields or None
        if files:
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            body = form
        try:
            async with self._session.request(method, url, data=body, headers={"User-Agent": self.USER_AGENT},
                                             timeout=timeout(**chosen), proxy=proxy_for(url)) as response:
                return response.status, await response.read()
        except asyncio.TimeoutError as err:  # aiohttp's ServerTimeoutError is one too
            raise TimedOut from err
        except aiohttp.ClientError as err:  # the URL holds the bot's token: never in the message (nor the log)
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {str(err).replace(url, '<Bot API URL>')}") from err
