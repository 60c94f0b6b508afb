"""Talks to Rasa's REST channel: one client message in, the assistant's answers out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp

from bot.transport import proxy_for, session, timeout

log = logging.getLogger(__name__)


PRIVACY_KINDS = ("export", "forget")


class RasaUnavailable(Exception):
    """Rasa (or the action server behind it) did not answer in time or answered with an error."""


@dataclass
class Answer:
    text: str = ""
    buttons: list[dict] = field(default_factory=list)  # {"title": ..., "payload": ...}
    image: str | None = None
    # A request about the client's own data the bot carries out (actions/privacy.py): "export", "forget".
    privacy: str | None = None


class RasaClient:
    """At most `concurrency` messages of this process in Rasa at once (RASA_CONCURRENCY): Rasa
    works through a burst at the same pace either way, but the messages beyond wait here, in
    order, instead of timing out inside Rasa (the client told Rasa is down, then answered twice).
    Over aiohttp (bot/transport.py): its session opened in the event loop that first uses it.
    Every message carries `token` (RASA_TOKEN): our REST channel (nlu_components/channel.py)
    answers nothing without it.

    Each message goes on a new connection. Rasa's Sanic workers share one listening socket: a
    kept-open connection stays with the worker that accepted it, and aiohttp reuses the connection
    released last, so one worker got a bot's messages while another idled (2 workers, open loop at
    half the capacity, means of 5 and 3 rounds: median 183 ms against 131, p95 560 against 360).
    A new connection is accepted by a worker that is waiting, an idle one. It costs a TCP
    handshake, ~0.1 ms of CPU, beside Rasa's 100 ms a message."""

    def __init__(self, base_url: str, timeout_seconds: float, concurrency: int = 16, token: str = ""):
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._limit = concurrency + 4
        self._timeout = timeout(connect=3.0, read=timeout_seconds, write=timeout_seconds)
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session, self._loop = session(self._limit, force_close=True), loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    async def send(self, sender: str, message: str, metadata: dict) -> list[Answer]:
        """Send one message; raise RasaUnavailable rather than hang or crash."""
        try:
            async with self._slots:
                url = f"{self.base_url}/webhooks/rest/webhook"
                async with self._http().post(
                    url, timeout=self._timeout, proxy=proxy_for(url), headers=self._headers,
                    json={"sender": sender, "message": message, "metadata": metadata},
                ) as response:
                    response.raise_for_status()
                    payload = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            if isinstance(exc, aiohttp.ClientResponseError) and exc.status == 401:
                log.error("Rasa refused the bot's token (401): set the same RASA_TOKEN for the bot and Rasa")
            log.warning("Rasa unavailable for %s: %s %s", sender, type(exc).__name__, exc)
            raise RasaUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(payload, list):
            raise RasaUnavailable(f"unexpected answer from Rasa: {payload!r:.200}")
        return [parse_answer(item) for item in payload if isinstance(item, dict)]

    async def probe(self, url: str) -> bool:
        """Whether `url` answers 200 (the action server's /health, say)."""
        try:
            async with self._http().get(url, timeout=timeout(connect=2.0, read=2.0, write=2.0),
                                        proxy=proxy_for(url)) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False


def parse_answer(item: dict) -> Answer:
    buttons = [
        {"title": str(b.get("title", ""))[:64], "payload": str(b.get("payload", ""))}
        for b in item.get("buttons") or []
        if isinstance(b, dict) and b.get("payload")
    ]
    image = item.get("image") if isinstance(item.get("image"), str) else None
    custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
    kind = custom.get("privacy") if custom.get("privacy") in PRIVACY_KINDS else None
    return Answer(text=str(item.get("text") or ""), buttons=buttons, image=image, privacy=kind)
