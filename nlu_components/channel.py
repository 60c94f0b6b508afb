"""Rasa's REST channel behind the bot's secret (credentials.yml names it by its module path).

Rasa 3.6's own REST channel (`rest:`) answers anybody who reaches its port: its token
(`--auth-token`) guards the HTTP API (/status, /model, trackers), not the channels. Whoever
reached /webhooks/rest/webhook could write as any client (the sender is the client's Telegram id,
which the actions trust) and read their orders back. This channel keeps the same address and the
same answers, and runs nothing unless the call carries `Authorization: Bearer <RASA_TOKEN>` (the
token `tools/rasa_server.py` gives Rasa's HTTP API, from the environment). It also never logs a
message's text: Rasa's channel logs it when handling fails.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Any, Awaitable, Callable

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

log = logging.getLogger(__name__)

MIN_TOKEN = 16  # as the bot's settings require of RASA_TOKEN


class GuardedRestInput(InputChannel):
    """POST /webhooks/rest/webhook {"sender", "message", "metadata"} -> the answers, as Rasa's REST
    channel, for the holder of the token only (401 otherwise, nothing run)."""

    @classmethod
    def name(cls) -> str:
        return "rest"  # the same address as Rasa's own REST channel

    def __init__(self, token: str):
        if len(token) < MIN_TOKEN:
            raise ValueError(f"RASA_TOKEN must be at least {MIN_TOKEN} characters for the REST channel")
        self._expected = f"Bearer {token}".encode()

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> "GuardedRestInput":
        return cls(os.environ.get("RASA_TOKEN", "").strip())

    def allowed(self, request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, self._expected)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("guarded_rest_webhook", __name__)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self.allowed(request):
                return response.json({"error": "unauthorized"}, status=401)
            try:
                body = request.json
            except Exception:  # sanic refuses a body that is not JSON
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("sender"), str) \
                    or not isinstance(body.get("message"), str):
                return response.json({"error": "expected {sender, message, metadata}"}, status=400)
            metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
            collector = CollectingOutputChannel()
            try:
                await on_new_message(UserMessage(body["message"], collector, body["sender"],
                                                 input_channel=self.name(), metadata=metadata))
            except asyncio.CancelledError:
                log.error("REST channel: handling a message was cancelled (timeout)")
            except Exception as exc:  # answered with what was collected, as Rasa's channel does
                log.error("REST channel: handling a message failed: %s", type(exc).__name__)
            return response.json(collector.messages)

        return webhook
