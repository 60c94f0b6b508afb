"""Talks to Rasa's REST channel: one client message in, the assistant's answers out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import httpx

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
    order, instead of timing out inside Rasa (the client told Rasa is down, then answered twice)."""

    def __init__(self, base_url: str, token: str, timeout: float, concurrency: int = 16):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=3.0),
                                       limits=httpx.Limits(max_connections=concurrency + 4))
        self._slots = asyncio.Semaphore(concurrency)

    async def close(self) -> None:
        await self._http.aclose()

    async def send(self, sender: str, message: str, metadata: dict) -> list[Answer]:
        """Send one message; raise RasaUnavailable rather than hang or crash."""
        try:
            async with self._slots:
                response = await self._http.post(
                    f"{self.base_url}/webhooks/rest/webhook",
                    json={"sender": sender, "message": message, "metadata": metadata},
                )
            response.raise_for_status()
            payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("Rasa unavailable for %s: %s %s", sender, type(exc).__name__, exc)
            raise RasaUnavailable(str(exc)) from exc
        if not isinstance(payload, list):
            raise RasaUnavailable(f"unexpected answer from Rasa: {payload!r:.200}")
        return [parse_answer(item) for item in payload if isinstance(item, dict)]

    async def probe(self, url: str) -> bool:
        """Whether `url` answers 200 (the action server's /health, say)."""
        try:
            return (await self._http.get(url, timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def ready(self) -> bool:
        try:
            response = await self._http.get(f"{self.base_url}/status", params={"token": self.token})
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
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
