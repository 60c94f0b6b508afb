"""The bot's HTTP over aiohttp (bot/transport.py, bot/rasa_client.py): what python-telegram-bot
and the handlers expect of it, on the good path and when the other side fails."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import pytest
from telegram import Bot, InputFile
from telegram.error import NetworkError, TimedOut

from bot.emulator import BotApiEmulator
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.transport import TelegramRequest
from tests.harness import TOKEN, StubRasa, free_port


@pytest.fixture
def emulator():
    server = BotApiEmulator().start()
    yield server
    server.stop()


class Silent:
    """A server that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.held: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.stopped = True
        self.sock.close()
        for conn in self.held:
            conn.close()


async def test_messages_buttons_and_uploads_reach_telegram_as_python_telegram_bot_sends_them(emulator):
    async with Bot(TOKEN, base_url=emulator.base_url, request=TelegramRequest()) as bot:
        sent = await bot.send_message(501, "Bonjour Élodie ✓ <b>-15 %</b>", parse_mode="HTML")
        await bot.send_document(501, InputFile("nom;prénom\nMartin;Élodie\n".encode(), filename="données.csv"),
                                caption="Vos données")
    [text, document] = emulator.messages_to(501)
    assert sent.message_id == text.message_id
    assert text.text == "Bonjour Élodie ✓ <b>-15 %</b>" and text.params["parse_mode"] == "HTML"
    assert document.method == "sendDocument" and document.params["caption"] == "Vos données"
    assert document.params["document_bytes"].decode() == "nom;prénom\nMartin;Élodie\n"


async def test_telegram_unreachable_is_a_network_error_and_silence_a_time_out():
    # Not `async with Bot(...)`: its get_me would fail first.
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{free_port()}/bot", request=TelegramRequest())
    await bot.request.initialize()
    with pytest.raises(NetworkError) as refused:
        await bot.send_message(501, "Bonjour")
    assert not isinstance(refused.value, TimedOut) and TOKEN not in str(refused.value)
    await bot.request.shutdown()
    silent = Silent()
    try:
        bot = Bot(TOKEN, base_url=f"{silent.url}/bot", request=TelegramRequest(read_timeout=0.5))
        await bot.request.initialize()
        with pytest.raises(TimedOut):
            await bot.send_message(501, "Bonjour")
        await bot.request.shutdown()
    finally:
        silent.close()


async def test_an_error_naming_the_url_does_not_carry_the_bots_token(monkeypatch):
    request = TelegramRequest()
    await request.initialize()
    url = f"http://127.0.0.1:1/bot{TOKEN}/sendMessage"

    def refuse(*args, **kwargs):
        raise aiohttp.InvalidURL(url)

    monkeypatch.setattr(request._session, "request", refuse)
    with pytest.raises(NetworkError) as raised:
        await request.do_request(url, "POST")
    assert TOKEN not in str(raised.value) and "<Bot API URL>" in str(raised.value)
    await request.shutdown()


async def test_an_uninitialised_request_is_refused_rather_than_sent():
    with pytest.raises(RuntimeError):
        await TelegramRequest().do_request("http://127.0.0.1:1/botX/getMe", "POST")


async def test_rasa_answers_are_parsed_and_each_failure_is_rasa_unavailable():
    replies = iter([
        [{"recipient_id": "7", "text": "Bonjour", "buttons": [{"title": "Oui", "payload": "/affirm"}]}],
        (500, {"error": "boom"}),
        (200, "not a list"),
    ])
    stub = StubRasa(lambda sender, message, metadata: next(replies))
    rasa = RasaClient(stub.url, 5.0)
    try:
        [answer] = await rasa.send("7", "salut", {"language": "fr"})
        assert (answer.text, answer.buttons) == ("Bonjour", [{"title": "Oui", "payload": "/affirm"}])
        assert stub.received[0] == {"sender": "7", "message": "salut", "metadata": {"language": "fr"}}
        for _ in range(2):
            with pytest.raises(RasaUnavailable):
                await rasa.send("7", "salut", {})
    finally:
        await rasa.close()
        stub.close()
    down = RasaClient(f"http://127.0.0.1:{free_port()}", 5.0)
    with pytest.raises(RasaUnavailable):
        await down.send("7", "salut", {})
    assert await down.probe(f"http://127.0.0.1:{free_port()}/health") is False
    await down.close()


async def test_every_message_to_rasa_carries_the_token_and_a_refusal_says_so(caplog):
    """Our REST channel answers only the holder of RASA_TOKEN: the bot sends it with each message;
    refused (tokens that differ), the message is Rasa unavailable (kept, answered later) and the
    log says what to fix, without the token."""
    token = "a-rasa-token-0123456789"
    stub = StubRasa(lambda sender, message, metadata: [{"recipient_id": sender, "text": "ok"}] if len(stub.received) == 1
                    else (401, {"error": "unauthorized"}))
    rasa = RasaClient(stub.url, 5.0, token=token)
    try:
        [answer] = await rasa.send("7", "salut", {})
        assert answer.text == "ok"
        with pytest.raises(RasaUnavailable):
            await rasa.send("7", "encore", {})
    finally:
        await rasa.close()
        stub.close()
    assert stub.authorizations == [f"Bearer {token}"] * 2
    assert "Rasa refused the bot's token (401): set the same RASA_TOKEN" in caplog.text
    assert token not in caplog.text


async def test_each_message_reaches_rasa_on_a_new_connection_so_its_workers_share_them():
    """Rasa's workers share one listening socket: a message on a kept-open connection would go to
    the worker that accepted it, busy or not. The server here keeps connections open (HTTP/1.1);
    the bot still opens one a message."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    connections = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            connections.append(self.client_address)

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps([{"recipient_id": body["sender"], "text": body["message"]}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rasa = RasaClient(f"http://127.0.0.1:{server.server_address[1]}", 5.0)
    try:
        for said in ("un", "deux", "trois"):
            [answer] = await rasa.send("7", said, {})
            assert answer.text == said
    finally:
        await rasa.close()
        server.shutdown()
        server.server_close()
    assert len(connections) == 3


async def test_rasa_silent_past_its_timeout_is_unavailable_not_a_hang():
    silent = Silent()
    rasa = RasaClient(silent.url, 0.5)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RasaUnavailable):
            await rasa.send("7", "salut", {})
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await rasa.close()
        silent.close()


def test_one_rasa_client_serves_event_loops_one_after_the_other():
    """The CLI and the tests run several asyncio.run() in a process: a session opened in a loop
    that ended is not reused."""
    stub = StubRasa(lambda sender, message, metadata: [{"recipient_id": sender, "text": message.upper()}])
    rasa = RasaClient(stub.url, 5.0)
    try:
        for said in ("un", "deux"):
            [answer] = asyncio.run(rasa.send("7", said, {}))
            assert answer.text == said.upper()
    finally:
        stub.close()



async def test_the_proxy_of_the_environment_is_used_and_no_proxy_respected(monkeypatch):
    """HTTP_PROXY / HTTPS_PROXY / NO_PROXY as httpx honoured them (a company behind a proxy)."""
    from bot import transport

    proxy = StubRasa(lambda sender, message, metadata: [{"recipient_id": sender, "text": "via the proxy"}])
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    transport._proxy.cache_clear()
    rasa = RasaClient("http://rasa.invalid:5005", 5.0)
    try:
        [answer] = await rasa.send("7", "salut", {})
        assert answer.text == "via the proxy"
        assert transport.proxy_for("http://direct.invalid:5005/webhooks/rest/webhook") is None
        direct = RasaClient("http://direct.invalid:5005", 5.0)
        with pytest.raises(RasaUnavailable):  # not sent to the proxy: the host does not exist
            await direct.send("7", "salut", {})
        await direct.close()
        assert len(proxy.received) == 1
    finally:
        await rasa.close()
        proxy.close()
        transport._proxy.cache_clear()
