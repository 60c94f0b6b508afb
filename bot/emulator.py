"""A Bot API server on 127.0.0.1 that plays Telegram for the local chat, the tests and the
benchmarks. python-telegram-bot reaches it through `TELEGRAM_BASE_URL`, exactly as it reaches
Telegram: long polling (getUpdates) or webhook delivery with the secret token.

Clients are simulated with `user_says`, `user_presses` and `user_sends`; everything the bot sends
is kept in `sent`. `responder` may answer a call with an error (429, 403, 5xx) to test failures.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

BOT_ID = 999_000_001
# Telegram keeps its webhook connections open, up to setWebhook's max_connections (40 by default).
MAX_CONNECTIONS = 40
JSON_FIELDS = {
    "reply_markup", "entities", "caption_entities", "allowed_updates", "commands", "scope",
    "link_preview_options", "reply_parameters", "media",
}


class ApiError(Exception):
    """An error answer of the Bot API (status code and description)."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code, self.description = code, description


@dataclass
class User:
    id: int
    first_name: str = "Client"
    last_name: str = ""
    username: str | None = None
    language_code: str | None = "fr"

    def as_json(self) -> dict:
        data = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class Sent:
    """A message the bot sent (or edited)."""

    method: str
    chat_id: int
    message_id: int
    text: str = ""
    photo: str | None = None
    buttons: list[list[dict]] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    @property
    def button_titles(self) -> list[str]:
        return [b.get("text", "") for row in self.buttons for b in row]

    @property
    def thread_id(self) -> int | None:
        """The forum topic it was sent to (staff group), if any."""
        value = self.params.get("message_thread_id")
        return int(value) if value not in (None, "") else None


class BotApiEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.updates: list[dict] = []
        self.sent: list[Sent] = []
        self.calls: list[tuple[str, dict]] = []
        self.callback_answers: list[dict] = []
        self.markup_edits: list[dict] = []  # editMessageReplyMarkup calls, as received
        self.webhook: dict | None = None
        self.responder: Callable[[str, dict], tuple[int, dict] | None] | None = None
        self.listeners: list[Callable[[Sent], None]] = []
        # Telegram numbers a bot's updates from an arbitrary point (and picks a new one at random
        # after a week of silence): two emulators on one database never reuse each other's ids.
        self._update_ids = itertools.count(random.randint(10**8, 9 * 10**8))
        self._message_ids = itertools.count(1000)
        self._cond = threading.Condition()
        self._confirmed = 0  # getUpdates offset: updates below it were received by the bot
        self.messages: dict[tuple[int, int], dict] = {}  # (chat id, message id) -> message, for copyMessage
        self.topics: dict[int, dict[int, str]] = {}  # forum chat id -> {thread id: name}
        self._thread_ids = itertools.count(50)
        self._deliveries: dict[int | None, list[dict]] = {}  # chat -> its updates not delivered yet
        self._spread: itertools.cycle | None = None  # balance(): a load balancer's round robin
        self.undelivered: list[dict] = []  # updates the webhook refused for two minutes
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}  # kept-alive connections
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def start(self) -> "BotApiEmulator":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
            idle, self._idle = self._idle, {}
        for connection in itertools.chain.from_iterable(idle.values()):
            connection.close()
        self._server.shutdown()
        self._server.server_close()

    # --- simulated clients ---------------------------------------------------------------------
    def _message(self, user: User, **content) -> dict:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.as_json(),
            **content,
        }

    def user_says(self, user: User, text: str, reply_to: Sent | None = None, entities: list[dict] | None = None) -> int:
        """The user writes; `reply_to` makes it a reply to a message the bot sent them; `entities`
        formats it ([{"type": "bold", "offset": 0, "length": 4}], offsets in UTF-16 units)."""
        entities = list(entities or [])
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        message = self._message(user, text=text, **({"entities": entities} if entities else {}))
        if reply_to is not None:
            message["reply_to_message"] = self._bot_message(reply_to.chat_id, text=reply_to.text or " ")
            message["reply_to_message"]["message_id"] = reply_to.message_id
        return self.push_update({"message": message})

    def user_says_in_group(self, user: User, chat_id: int, text: str, thread_id: int | None = None) -> int:
        """The user writes in a forum supergroup (the staff group), in a topic when `thread_id`."""
        message = self._message(user, text=text)
        message["chat"] = {"id": chat_id, "type": "supergroup", "title": "Staff", "is_forum": True}
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if thread_id is not None:
            message.update(message_thread_id=thread_id, is_topic_message=True)
        return self.push_update({"message": message})

    def user_sends(self, user: User, **content) -> int:
        """A non-text message: user_sends(user, sticker={...}) or photo=[...], voice=..."""
        return self.push_update({"message": self._message(user, **content)})

    def user_presses(self, user: User, sent: Sent, data: str | None = None, index: int = 0) -> int:
        """Press a button of a message the bot sent (by index), or send forged callback data."""
        if data is None:
            data = [b for row in sent.buttons for b in row][index]["callback_data"]
        query = {
            "id": str(next(self._update_ids) * 7919),
            "from": user.as_json(),
            "chat_instance": str(user.id),
            "data": data,
            "message": {
                "message_id": sent.message_id,
                "date": int(time.time()),
                "chat": self._chat(sent.chat_id),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Assistant"},
                "text": sent.text or " ",
                **({"message_thread_id": sent.thread_id, "is_topic_message": True} if sent.thread_id else {}),
            },
        }
        return self.push_update({"callback_query": query})

    def push_update(self, update: dict) -> int:
        with self._cond:
            update = {"update_id": next(self._update_ids), **update}
            message = update.get("message")
            if message:
                self.messages[(message["chat"]["id"], message["message_id"])] = message
            self.updates.append(update)
            self._cond.notify_all()
            webhook = self.webhook
        if webhook:
            self._queue_delivery(webhook, update)
        return update["update_id"]

    def balance(self, urls: list[str]) -> None:
        """Deliver the webhook calls to these URLs in turn (each delivery to the next one), as a
        load balancer in front of bot replicas would, instead of to the URL the bot set."""
        self._spread = itertools.cycle(urls)

    def _queue_delivery(self, webhook: dict, update: dict) -> None:
        """As Telegram does, a chat's updates are delivered one at a time (the next once the
        webhook answered the previous one), chats in parallel."""
        chat = next((value["chat"]["id"] for value in (update.get("message"), (update.get("callback_query") or {})
                     .get("message")) if isinstance(value, dict) and "chat" in value), None)
        with self._cond:
            queue = self._deliveries.setdefault(chat, [])
            queue.append(update)
            if len(queue) > 1:
                return  # this chat's delivery thread takes it in turn
        threading.Thread(target=self._deliver_chat, args=(webhook, chat), daemon=True).start()

    def _deliver_chat(self, webhook: dict, chat: int | None) -> None:
        while True:
            with self._cond:
                queue = self._deliveries[chat]
                update = queue[0]
            self._deliver(webhook, update)
            with self._cond:
                queue.pop(0)
                if not queue:
                    del self._deliveries[chat]
                    return

    def _deliver(self, webhook: dict, update: dict) -> None:
        headers = {"Content-Type": "application/json",
                   **({"X-Telegram-Bot-Api-Secret-Token": webhook["secret_token"]}
                      if webhook.get("secret_token") else {})}
        body = json.dumps(update).encode()
        # Telegram retries a failed delivery for hours; here for about two minutes, backing off.
        for attempt in range(30):
            with self._cond:
                url = next(self._spread) if self._spread is not None else webhook["url"]
            if self._post(url, body, headers):
                return
            time.sleep(min(0.2 * (attempt + 1), 5.0))
        with self._cond:
            self.undelivered.append(update)

    def _post(self, url: str, body: bytes, headers: dict) -> bool:
        """One webhook call, on a connection kept open from an earlier one when there is one (as
        Telegram keeps them): whether the webhook took the update (a 2xx answer)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with self._cond:
            idle = self._idle.get(key)
            kept = idle.pop() if idle else None
        # A kept connection the other end closed while it was idle: once more at once, on a new one.
        for connection in ([kept] if kept else []) + [None]:
            if connection is None:
                kind = http.client.HTTPSConnection if key[0] == "https" else http.client.HTTPConnection
                connection = kind(key[1], key[2], timeout=10)
            try:
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                break
            except (OSError, http.client.HTTPException):
                connection.close()
        else:
            return False
        with self._cond:
            idle = self._idle.setdefault(key, [])
            if response.will_close or len(idle) >= MAX_CONNECTIONS:
                connection.close()
            else:
                idle.append(connection)
        return 200 <= response.status < 300

    # --- waiting for the bot ---------------------------------------------------------------------
    def messages_to(self, chat_id: int) -> list[Sent]:
        with self._cond:
            return [s for s in self.sent if s.chat_id == chat_id]

    def wait_for(self, predicate: Callable[[list[Sent]], bool], timeout: float = 30.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self.sent)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the bot did not answer in {timeout}s; sent: {self.sent[-5:]}")
                self._cond.wait(remaining)
            return list(self.sent)

    def wait_for_messages(self, chat_id: int, count: int, timeout: float = 30.0) -> list[Sent]:
        self.wait_for(lambda sent: len([s for s in sent if s.chat_id == chat_id]) >= count, timeout)
        return self.messages_to(chat_id)

    # --- the Bot API -------------------------------------------------------------------------------
    def _handler_class(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK hold each answer back about 40 ms (Telegram answers at once).
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self.do_POST()

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                method = self.path.rstrip("/").rsplit("/", 1)[-1]
                try:
                    params = emulator._parse(self.headers.get("Content-Type", ""), body)
                except ValueError as exc:  # as Telegram does: a request it cannot read is refused
                    status, payload = 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}
                else:
                    status, payload = emulator.handle(method, params)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the bot stopped polling
                    pass

        return Handler

    @staticmethod
    def _parse(content_type: str, body: bytes) -> dict:
        if not body:
            return {}
        if content_type.startswith("application/json"):
            return json.loads(body)
        if content_type.startswith("multipart/form-data"):
            from email.parser import BytesParser
            from email.policy import HTTP

            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
            )
            params = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    payload = part.get_payload(decode=True)
                    params[name] = f"<upload {part.get_filename()}>"
                    params[f"{name}_content"] = payload.decode("utf-8", "replace")
                    params[f"{name}_bytes"] = payload  # a PDF, a PNG: as sent
                else:  # python-telegram-bot sends UTF-8 without declaring a charset
                    params[name] = part.get_payload(decode=True).decode("utf-8")
            raw = params
        else:
            raw = dict(parse_qsl(body.decode(), keep_blank_values=True))
        params = {}
        for key, value in raw.items():
            if key in JSON_FIELDS:
                params[key] = json.loads(value)
            elif key.endswith("_bytes"):
                params[key] = value
            elif key.endswith("_id") or key in ("offset", "limit", "timeout"):
                try:
                    params[key] = int(value)
                except ValueError:
                    params[key] = value
            else:
                params[key] = value
        return params

    def handle(self, method: str, params: dict) -> tuple[int, dict]:
        with self._cond:
            self.calls.append((method, params))
        if self.responder is not None:
            forced = self.responder(method, params)
            if forced is not None:
                return forced
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            result = handler(params)
        except ApiError as exc:
            return exc.code, {"ok": False, "error_code": exc.code, "description": exc.description}
        if result is None:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message to copy not found"}
        return 200, {"ok": True, "result": result}

    @staticmethod
    def _chat(chat_id: int) -> dict:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "Staff", "is_forum": True}
        return {"id": chat_id, "type": "private"}

    def _bot_message(self, chat_id: int, **content) -> dict:
        thread = content.pop("message_thread_id", None)
        if thread not in (None, ""):
            content.update(message_thread_id=int(thread), is_topic_message=True)
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Assistant", "username": "assistant_bot"},
            **content,
        }

    def _record(self, method: str, params: dict, message: dict) -> None:
        self.messages[(message["chat"]["id"], message["message_id"])] = message
        keyboard = (params.get("reply_markup") or {}).get("inline_keyboard") or []
        sent = Sent(
            method=method,
            chat_id=int(params["chat_id"]),
            message_id=message["message_id"],
            text=params.get("text") or params.get("caption") or "",
            photo=params.get("photo"),
            buttons=keyboard,
            params=params,
        )
        with self._cond:
            self.sent.append(sent)
            self._cond.notify_all()
        for listener in list(self.listeners):
            listener(sent)

    def _api_getMe(self, params):
        return {"id": BOT_ID, "is_bot": True, "first_name": "Assistant", "username": "assistant_bot",
                "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    def _api_getUpdates(self, params):
        offset = params.get("offset") or 0
        timeout = min(float(params.get("timeout") or 0), 30.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._confirmed = max(self._confirmed, offset)
            while True:
                pending = [u for u in self.updates if u["update_id"] >= self._confirmed]
                remaining = deadline - time.monotonic()
                if pending or remaining <= 0 or self.webhook:
                    return pending[: params.get("limit") or 100]
                self._cond.wait(min(remaining, 0.5))

    def _api_setWebhook(self, params):
        with self._cond:
            self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
            self._cond.notify_all()
        return True

    def _api_deleteWebhook(self, params):
        with self._cond:
            self.webhook = None
        return True

    def _api_getWebhookInfo(self, params):
        return {"url": (self.webhook or {}).get("url", ""), "has_custom_certificate": False,
                "pending_update_count": 0}

    def _api_setMyCommands(self, params):
        return True

    def _api_deleteMyCommands(self, params):
        return True

    def _api_sendChatAction(self, params):
        return True

    def _api_close(self, params):
        return True

    def _api_logOut(self, params):
        return True

    def _api_createForumTopic(self, params):
        chat_id = int(params["chat_id"])
        if chat_id >= 0:
            raise ApiError(400, "Bad Request: the chat is not a forum")
        thread = next(self._thread_ids)
        with self._cond:
            self.topics.setdefault(chat_id, {})[thread] = params["name"]
        return {"message_thread_id": thread, "name": params["name"], "icon_color": 7322096}

    def _api_deleteForumTopic(self, params):
        chat_id, thread = int(params["chat_id"]), int(params["message_thread_id"])
        with self._cond:
            if thread not in self.topics.get(chat_id, {}):
                raise ApiError(400, "Bad Request: TOPIC_ID_INVALID")
            del self.topics[chat_id][thread]
        return True

    def _api_sendMessage(self, params):
        content = {"text": params["text"], "message_thread_id": params.get("message_thread_id")}
        if (params.get("reply_markup") or {}).get("inline_keyboard"):  # Telegram echoes inline keyboards only
            content["reply_markup"] = params["reply_markup"]
        message = self._bot_message(int(params["chat_id"]), **content)
        self._record("sendMessage", params, message)
        return message

    def _api_sendPhoto(self, params):
        content = {"photo": [{"file_id": "photo1", "file_unique_id": "u1", "width": 1, "height": 1}]}
        if params.get("caption"):
            content["caption"] = params["caption"]
        message = self._bot_message(int(params["chat_id"]), **content)
        self._record("sendPhoto", params, message)
        return message

    def _api_sendMediaGroup(self, params):
        """An album: each photo is recorded as a sendPhoto of its own, its file in `photo_bytes`."""
        media = params.get("media") or []
        if not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: an album holds 2 to 10 items")
        messages = []
        for item in media:
            if item.get("type") != "photo":
                raise ApiError(400, "Bad Request: only photo albums are emulated")
            attached = str(item.get("media", "")).removeprefix("attach://")
            photo = {"chat_id": params["chat_id"], "photo": params.get(attached, item.get("media")),
                     "photo_bytes": params.get(f"{attached}_bytes", b""), "caption": item.get("caption")}
            messages.append(self._api_sendPhoto(photo))
        return messages

    def _api_sendDocument(self, params):
        name = str(params.get("document", "")).removeprefix("<upload ").rstrip(">") or "file"
        content = {"document": {"file_id": f"doc-{name}", "file_unique_id": name, "file_name": name},
                   "message_thread_id": params.get("message_thread_id")}
        if params.get("caption"):
            content["caption"] = params["caption"]
        message = self._bot_message(int(params["chat_id"]), **content)
        self._record("sendDocument", params, message)
        return message

    def _api_editMessageText(self, params):
        message = self._bot_message(int(params["chat_id"]), text=params["text"])
        message["message_id"] = int(params["message_id"])
        self._record("editMessageText", params, message)
        return message

    def _api_editMessageReplyMarkup(self, params):
        message = self._bot_message(int(params["chat_id"]), text=" ")
        message["message_id"] = int(params["message_id"])
        with self._cond:  # kept apart from `sent`: no message was sent
            self.markup_edits.append(params)
            self._cond.notify_all()
        return message

    def _api_copyMessage(self, params):
        source = self.messages.get((int(params["from_chat_id"]), int(params["message_id"])))
        if source is None:
            return None  # handled as an error by handle()
        content = {k: v for k, v in source.items() if k in ("text", "photo", "document", "voice", "sticker",
                                                               "location", "caption", "video", "audio")}
        if "caption" in params:
            content["caption"] = params["caption"]
        message = self._bot_message(int(params["chat_id"]), message_thread_id=params.get("message_thread_id"), **content)
        record = dict(params, text=content.get("text"), caption=content.get("caption"))
        self._record("copyMessage", record, message)
        return {"message_id": message["message_id"]}

    def _api_answerCallbackQuery(self, params):
        with self._cond:
            self.callback_answers.append(params)
            self._cond.notify_all()
        return True
