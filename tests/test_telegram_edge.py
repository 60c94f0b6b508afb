"""The Telegram edge against the Bot API emulator (a real HTTP server), with a stub Rasa."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select

from bot.emulator import User
from crm.db import unit_of_work
from crm.models import Client, ConversationMessage, InboundUpdate
from tests.harness import BotHarness, StubRasa, free_port, make_settings

FR = User(id=501, first_name="Élodie", last_name="Martin", username="elodie", language_code="fr")
EN = User(id=502, first_name="John", last_name="Smith", language_code="en-GB")


def echo(sender, message, metadata):
    return [{"recipient_id": sender, "text": f"[{metadata.get('language')}] {message}"}]


@pytest.fixture
def database_url(sqlite_engine):
    return sqlite_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def stub():
    rasa = StubRasa(echo)
    yield rasa
    rasa.close()


@pytest.fixture
async def bot(database_url, stub):
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        yield harness


def crm(bot):
    return unit_of_work(bot.application.assistant.engine)


async def test_start_registers_the_client_and_greets_through_rasa(bot, stub):
    [greeting] = await bot.say(FR, "/start")
    assert greeting.text == "[fr] /greet"
    assert stub.received[0]["sender"] == "501"
    assert stub.received[0]["metadata"]["first_name"] == "Élodie"
    with crm(bot) as s:
        client = s.scalar(select(Client).where(Client.telegram_id == 501))
        assert (client.first_name, client.username, client.language) == ("Élodie", "elodie", "fr")


async def test_an_english_telegram_client_is_answered_in_english(bot, stub):
    [greeting] = await bot.say(EN, "/start")
    assert greeting.text == "[en] /greet"
    [help_text] = await bot.say(EN, "/help")
    assert help_text.text.startswith("I am the client relations assistant")


async def test_buttons_carry_their_payload_server_side(bot, stub):
    stub.reply = lambda s, m, md: [{"text": "Choisissez :", "buttons": [
        {"title": "Imprimantes", "payload": '/ask_catalog{"category":"Imprimantes"}'},
        {"title": "Écrans", "payload": '/ask_catalog{"category":"Écrans"}'}]}] if m == "menu" else echo(s, m, md)
    [menu] = await bot.say(FR, "menu")
    assert menu.button_titles == ["Imprimantes", "Écrans"]
    assert all(len(b["callback_data"]) <= 64 for row in menu.buttons for b in row)
    bot.emulator.user_presses(FR, menu, index=1)
    answer = (await bot.wait(FR, 2))[-1]
    assert answer.text == '[fr] /ask_catalog{"category":"Écrans"}'
    assert stub.received[-1]["message"] == '/ask_catalog{"category":"Écrans"}'


async def test_a_typed_answer_naming_a_button_on_screen_presses_it(bot, stub):
    category = {"text": "De quel type de problème s'agit-il ?", "buttons": [
        {"title": "Produit", "payload": '/inform{"complaint_category":"product"}'},
        {"title": "Livraison", "payload": '/inform{"complaint_category":"delivery"}'}]}
    stub.reply = lambda s, m, md: [category] if m == "réclamation" else echo(s, m, md)
    await bot.say(FR, "réclamation")
    [pressed] = await bot.say(FR, "livraison")
    assert stub.received[-1]["message"] == '/inform{"complaint_category":"delivery"}'
    assert pressed.text == '[fr] /inform{"complaint_category":"delivery"}'
    # The echo had no buttons: nothing is on screen any more, the same word is just a word.
    await bot.say(FR, "livraison")
    assert stub.received[-1]["message"] == "livraison"
    # A real question while the buttons are on screen goes to the assistant as written.
    await bot.say(FR, "réclamation")
    await bot.say(FR, "vous livrez en Belgique ?")
    assert stub.received[-1]["message"] == "vous livrez en Belgique ?"
    with crm(bot) as s:
        typed = s.scalars(select(ConversationMessage.text).where(ConversationMessage.direction == "in")).all()
    assert "livraison" in typed, "the client's own words are what the conversation log keeps"


async def test_each_message_is_recorded_once_and_named_to_the_assistant(bot, stub):
    """A known client's text is recorded with the chat's look-up (one unit of work): each message
    once, in order, answered, and the row Rasa is told about (the one the action server marks when
    the model falls back) is that message's."""
    stub.reply = lambda s, m, md: [{"text": "Choisissez :", "buttons": [
        {"title": "Livraison", "payload": '/inform{"complaint_category":"delivery"}'}]}] if m == "menu" \
        else echo(s, m, md)
    written = ["bonjour", "menu", "livraison", "vous livrez le samedi ?"]
    for text in written:
        await bot.say(FR, text)
    deadline = time.monotonic() + 10  # the last answer's record follows its send
    while True:
        with crm(bot) as s:
            rows = s.execute(select(ConversationMessage.id, ConversationMessage.text, ConversationMessage.answered,
                                    ConversationMessage.understood)
                             .where(ConversationMessage.direction == "in").order_by(ConversationMessage.id)).all()
        if all(row.answered for row in rows) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [row.text for row in rows] == written
    assert all(row.answered for row in rows)
    assert [m["metadata"]["message"] for m in stub.received] == [row.id for row in rows]
    # Read by the model, except the word that pressed the button on screen.
    assert [row.understood for row in rows] == [True, True, None, True]
    assert stub.received[2]["message"] == '/inform{"complaint_category":"delivery"}'


async def test_a_newcomers_first_words_make_them_a_client_and_are_answered(bot, stub):
    """No /start: someone writes for the first time. They become a client with their names and
    the language of their Telegram, their message is recorded once before Rasa is asked (the row
    Rasa is told about), and it is answered."""
    newcomer = User(id=503, first_name="Ana", last_name="Silva", username="ana_s", language_code="en-US")
    [answer] = await bot.say(newcomer, "do you deliver to Lisbon?")
    assert answer.text == "[en] do you deliver to Lisbon?"
    with crm(bot) as s:
        client = s.scalar(select(Client).where(Client.telegram_id == 503))
        rows = s.execute(select(ConversationMessage.id, ConversationMessage.text)
                         .where(ConversationMessage.client_id == client.id,
                                ConversationMessage.direction == "in")).all()
    assert (client.first_name, client.last_name, client.username, client.language) == ("Ana", "Silva", "ana_s", "en")
    assert not client.unreachable and not client.vip
    assert [row.text for row in rows] == ["do you deliver to Lisbon?"]
    assert stub.received[0]["metadata"]["message"] == rows[0].id
    [again] = await bot.say(newcomer, "thanks")
    assert again.text == "[en] thanks"


async def test_buttons_of_an_earlier_answer_are_not_on_screen(bot, stub):
    stub.reply = lambda s, m, md: ([{"text": "Choisissez :", "buttons": [
        {"title": "Livraison", "payload": '/inform{"complaint_category":"delivery"}'}]}, {"text": "Autre chose ?"}]
        if m == "menu" else echo(s, m, md))
    await bot.say(FR, "menu", expect=2)
    await bot.say(FR, "livraison")
    assert stub.received[-1]["message"] == "livraison", "the last message sent had no buttons"


async def test_forged_or_foreign_button_data_changes_nothing(bot, stub):
    stub.reply = lambda s, m, md: [{"text": "Choix", "buttons": [{"title": "A", "payload": "/greet"}]}]
    [menu] = await bot.say(FR, "menu")
    calls = len(stub.received)
    bot.emulator.user_presses(FR, menu, data="b:forged-token")
    bot.emulator.user_presses(FR, menu, data="/restart{\"x\":1}")
    bot.emulator.user_presses(EN, menu, index=0)  # another client replaying FR's button
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: len(bot.emulator.callback_answers) >= 3, 10)
    assert len(stub.received) == calls, "nothing forged may reach Rasa"
    texts = [a.get("text") for a in bot.emulator.callback_answers]
    assert texts.count("Ce bouton n'est plus valable. Écrivez-moi votre demande.") == 2
    assert "This button is no longer valid. Please type your request." in texts


async def test_a_button_past_its_lifetime_is_refused_and_its_payload_purged(bot, stub):
    from datetime import datetime, timedelta, timezone

    from crm.buttons import purge_buttons
    from crm.models import ButtonPayload

    stub.reply = lambda s, m, md: [{"text": "Choix", "buttons": [{"title": "A", "payload": "/greet"},
                                                                  {"title": "B", "payload": "/affirm"}]}]
    [old] = await bot.say(FR, "menu")
    [fresh] = await bot.say(FR, "menu")
    with crm(bot) as s:  # the first menu is 31 days old
        for row in s.scalars(select(ButtonPayload).order_by(ButtonPayload.id).limit(2)):
            row.created_at = datetime.now(timezone.utc) - timedelta(days=31)
    calls = len(stub.received)
    bot.emulator.user_presses(FR, old, index=0)
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: len(bot.emulator.callback_answers) >= 1, 10)
    assert bot.emulator.callback_answers[-1]["text"] == "Ce bouton n'est plus valable. Écrivez-moi votre demande."
    assert len(stub.received) == calls
    with crm(bot) as s:
        assert purge_buttons(s) == 2
        assert s.scalar(select(func.count(ButtonPayload.id))) == 2, "the fresh menu's buttons stay"
    bot.emulator.user_presses(FR, fresh, index=1)
    await bot.wait(FR, 3)
    assert stub.received[-1]["message"] == "/affirm", "a fresh button still works"


async def test_chat_locks_do_not_pile_up(bot, stub):
    import gc

    from bot.emulator import User

    users = [User(id=9000 + i, first_name=f"C{i}", language_code="fr") for i in range(40)]
    for user in users:
        bot.emulator.user_says(user, "bonjour")
    for user in users:
        await bot.wait(user, 1)
    await asyncio.sleep(0.2)
    gc.collect()
    replicas = bot.application.assistant.replicas
    assert len(replicas._local) == 0 and replicas._owners == {}, "a lock per chat being handled, none after"


async def test_long_answers_are_split_under_telegram_limit(bot, stub):
    paragraph = "Ligne de catalogue avec un prix exact. " * 20
    long_text = "\n\n".join(f"{i}: {paragraph}" for i in range(12))
    stub.reply = lambda s, m, md: [{"text": long_text}]
    chunks = await bot.say(FR, "tout le catalogue", expect=3)
    assert all(len(c.text) <= 4096 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == long_text.split()


async def test_images_are_sent_as_photos(bot, stub):
    stub.reply = lambda s, m, md: [{"text": "La HP M404dn", "image": "https://example.org/m404.jpg"}]
    [photo] = await bot.say(FR, "photo de la M404")
    assert photo.method == "sendPhoto" and photo.photo == "https://example.org/m404.jpg"
    assert photo.text == "La HP M404dn"


@pytest.mark.parametrize("failure", ["error", "down", "empty"])
async def test_rasa_failures_get_an_apology_and_the_message_is_kept(database_url, failure):
    stub = StubRasa(lambda s, m, md: (500, {"error": "boom"}) if failure == "error" else [])
    rasa_url = f"http://127.0.0.1:{free_port()}" if failure == "down" else stub.url
    try:
        async with BotHarness(make_settings(database_url, rasa_url)) as bot:
            [apology] = await bot.say(EN, "do you have printers?")
            if failure == "empty":
                assert apology.text == "Sorry, I have no answer for you right now. Could you rephrase?"
            else:
                assert apology.text.startswith("Sorry, I have a technical problem")
                with crm(bot) as s:
                    kept = s.scalars(select(ConversationMessage).where(ConversationMessage.answered.is_(False))).all()
                    assert [m.text for m in kept] == ["do you have printers?"]
            stub.reply = echo  # Rasa is back: the bot goes on as if nothing happened
            if failure != "down":
                [answer] = await bot.say(EN, "hello")
                assert answer.text == "[en] hello"
    finally:
        stub.close()


async def test_messages_written_while_rasa_is_down_are_answered_once_when_it_is_back(database_url):
    from bot.app import Assistant
    from bot.rasa_client import RasaClient
    from crm.staff import add_staff

    down = {"on": True}
    stub = StubRasa(lambda s, m, md: (503, {"error": "loading"}) if down["on"] else echo(s, m, md))
    try:
        async with BotHarness(make_settings(database_url, stub.url)) as bot:
            with crm(bot) as s:
                add_staff(s, MANAGER.id, "manager", "Claire")
            for user, text in ((FR, "avez-vous des écrans ?"), (EN, "hello?"), (FR, "et des souris ?")):
                [apology] = await bot.say(user, text)
                assert apology.text.endswith(("je vous réponds ici dès que possible.", "as soon as I can."))
            [listing] = await bot.say(MANAGER, "/queue")
            assert "⏳ 2 client(s) attendent une réponse de l'assistant" in listing.text
            helper = bot.application.assistant
            assert await helper.answer_backlog(bot.application.bot) == 0, "still down: nothing lost"
            stub.received.clear()

            from crm.clients import backlog

            with crm(bot) as s:  # what each process works through: one message a client, oldest first
                assert [owed.text for owed in backlog(s)] == ["hello?", "et des souris ?"]
            down["on"] = False
            # Two bot processes (two Assistants on one database) catch up at the same instant.
            twin = Assistant(helper.engine, RasaClient(stub.url, 5.0))
            done = await asyncio.gather(helper.answer_backlog(bot.application.bot),
                                        twin.answer_backlog(bot.application.bot))
            await twin.rasa.close()
            assert sum(done) == 2
            assert sorted(r["message"] for r in stub.received) == ["et des souris ?", "hello?"], \
                "each client's last message, once (the two processes share them, in either order)"
            back, answer = (await bot.wait(FR, 4))[-2:]
            assert back.text == "Me revoilà, pardon pour l'attente ! Votre message « et des souris ? » :"
            assert answer.text == "[fr] et des souris ?"
            back, answer = (await bot.wait(EN, 3))[-2:]
            assert (back.text, answer.text) == ("I am back, sorry for the wait! Your message “hello?”:", "[en] hello?")
            assert await helper.answer_backlog(bot.application.bot) == 0, "once"
            with crm(bot) as s:
                assert s.scalars(select(ConversationMessage).where(ConversationMessage.answered.is_(False))).all() == []
            [listing] = await bot.say(MANAGER, "/queue")
            assert "⏳" not in listing.text
    finally:
        stub.close()


async def test_a_slow_rasa_gets_an_apology_in_time(database_url):
    def slow(sender, message, metadata):
        time.sleep(3)
        return echo(sender, message, metadata)

    stub = StubRasa(slow)
    try:
        async with BotHarness(make_settings(database_url, stub.url, rasa_timeout=1.0)) as bot:
            started = time.monotonic()
            [apology] = await bot.say(FR, "bonjour")
            assert apology.text.startswith("Désolé, je rencontre un problème technique")
            assert time.monotonic() - started < 3
    finally:
        stub.close()


@pytest.mark.parametrize("content", [
    {"sticker": {"file_id": "s", "file_unique_id": "s", "width": 1, "height": 1, "is_animated": False,
                 "is_video": False, "type": "regular"}},
    {"voice": {"file_id": "v", "file_unique_id": "v", "duration": 3}},
    {"location": {"latitude": 48.85, "longitude": 2.35}},
    {"photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}], "caption": "ça ?"},
])
async def test_non_text_messages_get_a_polite_answer(bot, stub, content):
    bot.emulator.user_sends(FR, **content)
    [answer] = await bot.wait(FR, 1)
    assert answer.text.startswith("Je ne sais lire que les messages écrits")
    assert stub.received == []
    with crm(bot) as s:
        assert s.scalar(select(ConversationMessage.kind)) in {"sticker", "voice", "location", "photo"}


async def test_unknown_commands_are_explained(bot, stub):
    [answer] = await bot.say(FR, "/commande_inconnue")
    assert "Je ne connais pas la commande /commande_inconnue" in answer.text
    assert stub.received == []


async def test_language_can_be_changed_and_is_sent_to_rasa(bot, stub):
    [choice] = await bot.say(FR, "/language")
    assert choice.button_titles == ["Français", "English"]
    bot.emulator.user_presses(FR, choice, index=1)
    confirmation = (await bot.wait(FR, 2))[-1]
    assert confirmation.method == "editMessageText"
    assert confirmation.text == "Noted: I will answer you in English."
    [answer] = await bot.say(FR, "bonjour")
    assert answer.text == "[en] bonjour"
    bot.emulator.user_presses(FR, choice, data="lang:de")
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: len(bot.emulator.callback_answers) >= 2, 10)
    with crm(bot) as s:
        assert s.scalar(select(Client.language).where(Client.telegram_id == FR.id)) == "en"


async def test_a_clients_messages_reach_rasa_in_order(bot, stub):
    for i in range(6):
        bot.emulator.user_says(FR, f"message {i}")
    await bot.wait(FR, 6)
    assert [r["message"] for r in stub.received] == [f"message {i}" for i in range(6)]
    for _ in range(50):  # the answer is recorded right after it is sent
        with crm(bot) as s:
            directions = s.scalars(select(ConversationMessage.direction)).all()
        if directions.count("out") == 6:
            break
        await asyncio.sleep(0.1)
    assert directions.count("in") == 6 and directions.count("out") == 6


async def test_huge_messages_are_capped(bot, stub):
    await bot.say(FR, "x" * 10_000)
    assert len(stub.received[0]["message"]) == 4096


class WebhookBot:
    """The bot in webhook mode (bot/webhook.py) on a free port, inside the test's event loop."""

    def __init__(self, database_url: str, rasa_url: str, emulator=None, **overrides):
        from bot.emulator import BotApiEmulator

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/telegram"
        self.emulator = emulator or BotApiEmulator().start()
        self.settings = make_settings(database_url, rasa_url, telegram_base_url=self.emulator.base_url,
                                      webhook_url=self.url, webhook_secret="the_secret_of_24_chars__",
                                      webhook_port=self.port, **overrides)
        self.harness = BotHarness(self.settings, self.emulator)
        self.application = self.harness.application

    async def __aenter__(self):
        from bot import webhook

        self.stop = asyncio.Event()
        self.task = asyncio.create_task(webhook.run(self.application, self.settings, self.stop))
        for _ in range(100):  # listening once Telegram was told where
            if self.emulator.webhook:
                break
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        done, _ = await asyncio.wait({self.task}, timeout=30)
        if not done:  # stopping waits for every update in hand: a stuck one must not stall the suite
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=10)


def test_the_emulator_keeps_its_webhook_connections_open_as_telegram_does():
    """Telegram calls a webhook on connections it keeps open (so the bench charges the bot no
    connection per update); one the webhook closed in between is replaced, the update not lost."""
    import http.server
    import threading

    from bot.emulator import BotApiEmulator

    received, connections = [], []

    class Webhook(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["update_id"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = len(received) == 3  # closed after the third, without saying so

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emulator = BotApiEmulator().start()
    try:
        emulator.webhook = {"url": f"http://127.0.0.1:{server.server_address[1]}/telegram", "secret_token": "s"}
        sent = []
        for text in ["un", "deux", "trois", "quatre", "cinq"]:
            sent.append(emulator.user_says(FR, text))
            deadline = time.monotonic() + 10
            while len(received) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert received == sent and emulator.undelivered == []
        assert len(connections) == 2, "one connection for the first three updates, a new one after it was closed"
    finally:
        emulator.stop()
        server.shutdown()
        server.server_close()


async def test_webhook_mode_checks_the_secret_token_and_refuses_what_is_no_update(database_url, stub):
    import httpx

    async with WebhookBot(database_url, stub.url) as bot:
        assert bot.emulator.webhook == {"url": bot.url, "secret_token": "the_secret_of_24_chars__"}
        [answer] = await bot.harness.say(FR, "bonjour")  # delivered by the emulator, with the secret
        assert answer.text == "[fr] bonjour"
        forged = {"update_id": 99, "message": {"message_id": 1, "date": 0, "text": "forged",
                                               "chat": {"id": 77, "type": "private"},
                                               "from": {"id": 77, "is_bot": False, "first_name": "X"}}}
        secret = {"X-Telegram-Bot-Api-Secret-Token": "the_secret_of_24_chars__"}
        async with httpx.AsyncClient() as http:
            assert (await http.post(bot.url, json=forged)).status_code == 403
            wrong = {"X-Telegram-Bot-Api-Secret-Token": "not_the_secret"}
            assert (await http.post(bot.url, json=forged, headers=wrong)).status_code == 403
            assert (await http.post(bot.url, content=b"{not json", headers=secret)).status_code == 400
            assert (await http.post(bot.url, json=[1, 2], headers=secret)).status_code == 400
            assert (await http.post(bot.url, json={"message": "no id"}, headers=secret)).status_code == 400
            huge = b'{"update_id": 5, "junk": "' + b"x" * (2 * 1024 * 1024) + b'"}'
            # Over a megabyte: refused (413) unread, announced or not (chunked), or the connection closed.
            async def chunked():
                for i in range(0, len(huge), 65536):
                    yield huge[i:i + 65536]

            for body in (huge, chunked()):
                try:
                    status = (await http.post(bot.url, content=body, headers=secret)).status_code
                except httpx.HTTPError:
                    status = None
                assert status in (413, None)
            assert (await http.get(bot.url)).status_code == 405
            assert (await http.get(f"http://127.0.0.1:{bot.port}/healthz")).text == "ok"  # the balancer's check
        await bot.harness.say(FR, "encore")  # the server still answers after all that
        assert [r["message"] for r in stub.received] == ["bonjour", "encore"]
        with crm(bot.harness) as s:
            assert s.scalar(select(func.count()).select_from(InboundUpdate)) == 2


async def test_webhook_keeps_each_update_before_answering_telegram_and_once(database_url, stub):
    """Telegram's retry of an update (on another replica, say) is handled once; with the CRM
    unreachable Telegram gets a 503 and the update is handled when it delivers it again."""
    import httpx

    async with WebhookBot(database_url, stub.url) as bot:
        bot.emulator.user_says(FR, "premier")
        await bot.harness.wait(FR, 1)
        update = bot.emulator.updates[-1]
        secret = {"X-Telegram-Bot-Api-Secret-Token": "the_secret_of_24_chars__"}
        async with httpx.AsyncClient() as http:
            assert (await http.post(bot.url, json=update, headers=secret)).status_code == 200
        await asyncio.sleep(0.5)
        assert [r["message"] for r in stub.received] == ["premier"]

        engine = bot.application.assistant.engine
        real_connect = engine.pool._creator
        engine.dispose()
        engine.pool._creator = lambda: (_ for _ in ()).throw(OSError("the CRM is down"))
        second = dict(update, update_id=update["update_id"] + 1000,
                      message=dict(update["message"], message_id=9999, text="pendant la panne"))
        async with httpx.AsyncClient() as http:
            assert (await http.post(bot.url, json=second, headers=secret)).status_code == 503
            engine.pool._creator = real_connect
            assert (await http.post(bot.url, json=second, headers=secret)).status_code == 200
        await bot.harness.wait(FR, 2)
        assert [r["message"] for r in stub.received] == ["premier", "pendant la panne"]


def seed_order_and_complaint(bot):
    """A client (FR) with an order and a complaint, and a manager and a marketer."""
    from crm.clients import TelegramProfile, register_client
    from crm.complaints import open_complaint
    from crm.demo import load_demo_if_empty
    from crm.orders import place_order
    from crm.staff import add_staff
    from crm.models import Product

    with crm(bot) as s:
        load_demo_if_empty(s)
        client, _ = register_client(s, TelegramProfile(FR.id, "Élodie", language_code="fr"))
        mouse = s.scalar(select(Product).where(Product.sku == "PER-LOG-MXM3"))
        number = place_order(s, client, mouse.id, 1, "3 place Bellecour, Lyon").number
        ticket = open_complaint(s, client, "delivery", "Colis en retard").number
        add_staff(s, MANAGER.id, "manager", "Claire")
        add_staff(s, MARKETER.id, "marketer", "Hugo")
    return number, ticket


MANAGER = User(id=601, first_name="Claire", language_code="fr")
MARKETER = User(id=602, first_name="Hugo", language_code="fr")


async def test_a_manager_ships_an_order_and_the_client_is_told(bot, stub):
    number, _ = seed_order_and_complaint(bot)
    [reply] = await bot.say(MANAGER, f"/order {number} shipped")
    assert reply.text == f"Commande {number} : expédiée. Le client en reçoit l'avis ; /queue signale tout message non remis."
    [note] = await bot.wait(FR, 1)
    assert note.text == f"Votre commande {number} est maintenant expédiée."
    [usage] = await bot.say(MANAGER, "/order CMD-1 lost")
    assert usage.text.startswith("Usage : /order CMD-000123 STATUT")
    [error] = await bot.say(MANAGER, "/order CMD-999999 shipped")
    assert error.text == "Impossible : aucune commande CMD-999999"


@pytest.mark.parametrize("who", [FR, MARKETER], ids=["client", "marketer"])
async def test_clients_and_marketers_cannot_use_manager_commands(bot, stub, who):
    number, ticket = seed_order_and_complaint(bot)
    [refusal] = await bot.say(who, f"/order {number} cancelled")
    assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise."
    [refusal] = await bot.say(who, f"/resolve {ticket} fait")
    assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise."
    from crm.models import Order

    with crm(bot) as s:
        assert s.scalar(select(Order.status)) == "confirmed"
    assert stub.received == []


async def test_a_resolved_complaint_asks_for_a_score_only_its_client_can_give(bot, stub):
    _, ticket = seed_order_and_complaint(bot)
    [reply] = await bot.say(MANAGER, f"/resolve {ticket} Un nouveau colis part aujourd'hui.")
    assert reply.text.startswith(f"Réclamation {ticket} résolue.")
    [note] = await bot.wait(FR, 1)
    assert note.text.startswith(f"Votre réclamation {ticket} est résolue : Un nouveau colis part aujourd'hui.")
    assert note.button_titles == ["1", "2", "3", "4", "5"]
    bot.emulator.user_presses(EN, note, index=0)  # someone else
    bot.emulator.user_presses(FR, note, data=note.buttons[0][4]["callback_data"].replace(":5", ":9"))
    bot.emulator.user_presses(FR, note, index=3)
    thanks = (await bot.wait(FR, 2))[-1]
    assert thanks.method == "editMessageText" and thanks.text.startswith("Merci pour votre note : 4/5.")
    from crm.models import Complaint

    with crm(bot) as s:
        assert s.scalar(select(Complaint.satisfaction)) == 4


async def test_a_long_resolution_reaches_the_client_whole_and_staff_are_told_so(bot, stub):
    _, ticket = seed_order_and_complaint(bot)
    words = " ".join(f"mot{i}" for i in range(590))  # 4,019 characters: about the longest a manager can type
    [reply] = await bot.say(MANAGER, f"/resolve {ticket} {words}")
    assert reply.text.startswith(f"Réclamation {ticket} résolue. Le client reçoit votre réponse ({len(words)} "
                                 "caractères, en 2 messages)")
    first, last = await bot.wait(FR, 2)
    assert first.text.startswith(f"Votre réclamation {ticket} est résolue : mot0 mot1")
    assert len(first.text) <= 4096 and len(last.text) <= 4096 and first.buttons == []
    assert (first.text + " " + last.text).count("mot") == 590, "nothing of it lost"
    assert last.button_titles == ["1", "2", "3", "4", "5"], "the rating comes with the last part"


async def test_subscribe_and_stop_commands(bot, stub):
    from crm.consent import has_consent

    [yes] = await bot.say(EN, "/subscribe")
    assert yes.text.startswith("Noted: you will receive our news and promotions.")
    [no] = await bot.say(EN, "/stop")
    assert no.text.startswith("Done: you will no longer receive promotional messages.")
    with crm(bot) as s:
        assert not has_consent(s, s.scalar(select(Client).where(Client.telegram_id == EN.id)))
    assert stub.received == []


async def test_the_outbox_survives_a_blocked_client(bot, stub):
    from crm.models import Notification
    from crm.outbox import enqueue

    bot.emulator.responder = lambda method, params: (
        (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
        if method == "sendMessage" and params.get("chat_id") == 777 else None)
    with crm(bot) as s:
        enqueue(s, 777, "pour un client qui a bloqué le bot")
        enqueue(s, FR.id, "Votre commande CMD-000001 est maintenant livrée.")
    [note] = await bot.wait(FR, 1)
    assert note.text == "Votre commande CMD-000001 est maintenant livrée."
    for _ in range(50):
        with crm(bot) as s:
            states = dict(s.execute(select(Notification.chat_id, Notification.status)).tuples().all())
        if states == {777: "blocked", FR.id: "sent"}:
            break
        await asyncio.sleep(0.1)
    assert states == {777: "blocked", FR.id: "sent"}


async def test_the_outbox_splits_long_texts_and_records_what_telegram_refuses(bot, stub):
    from crm.models import Notification
    from crm.outbox import enqueue

    bot.emulator.responder = lambda method, params: (
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if method == "sendMessage" and params.get("chat_id") == 778 else None)
    long_text = "\n\n".join(f"Note {i} : " + "détail " * 120 for i in range(8))  # about 7,000 characters
    with crm(bot) as s:
        enqueue(s, 778, "pour une conversation qui n'existe plus")
        enqueue(s, FR.id, long_text)
    parts = await bot.wait(FR, 2)
    assert all(len(p.text) <= 4096 for p in parts) and parts[0].text.startswith("Note 0 : ")
    joined = "\n".join(p.text for p in parts)
    assert all(f"Note {i} : " in joined for i in range(8)) and joined.count("détail") == 8 * 120, "nothing lost"
    for _ in range(50):
        with crm(bot) as s:
            states = dict(s.execute(select(Notification.chat_id, Notification.status)).tuples().all())
            error = s.scalar(select(Notification.last_error).where(Notification.chat_id == 778))
        if states == {778: "failed", FR.id: "sent"}:
            break
        await asyncio.sleep(0.1)
    assert states == {778: "failed", FR.id: "sent"}, "refused is failed with its reason, not blocked"
    assert error == "Chat not found"


async def test_a_long_outbox_text_failing_half_way_goes_on_from_the_part_that_failed(bot, stub):
    from crm.outbox import enqueue

    sends = {"n": 0}

    def flaky(method, params):
        if method == "sendMessage" and params.get("chat_id") == FR.id:
            sends["n"] += 1
            if sends["n"] == 3:  # the third part meets a 502 once: the row is retried later
                return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        return None

    bot.emulator.responder = flaky
    long_text = "\n\n".join(f"Partie {i} : " + "mot " * 900 for i in range(4))  # four parts of ~3,600
    with crm(bot) as s:
        enqueue(s, FR.id, long_text)
    parts = await bot.wait(FR, 4, timeout=40)
    assert [p.text.split(" :")[0] for p in parts] == ["Partie 0", "Partie 1", "Partie 2", "Partie 3"], \
        "each part once, in order: the retry does not send the first two again"
    await asyncio.sleep(1)
    assert len(bot.emulator.messages_to(FR.id)) == 4
