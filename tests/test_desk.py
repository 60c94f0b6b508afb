"""The managers' desk over the Bot API emulator: one client, two managers, a stub Rasa that must
stay silent while a human holds the conversation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.clients import TelegramProfile, register_client
from crm.handoffs import open_handoff
from crm.models import Client, ClientNote, Handoff
from crm.settings import install as install_settings
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

CLIENT = User(id=701, first_name="Élodie", last_name="Martin", language_code="fr")
OTHER = User(id=702, first_name="Paul", language_code="fr")
CLAIRE = User(id=801, first_name="Claire", language_code="fr")
JOHN = User(id=802, first_name="John", language_code="en")
HUGO = User(id=803, first_name="Hugo", language_code="fr")
WEDNESDAY_10H_PARIS = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
FRIDAY_18H55_PARIS = datetime(2026, 12, 4, 17, 55, tzinfo=timezone.utc)


@pytest.fixture
async def desk(database_url, stub):  # noqa: F811
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        with crm(harness) as s:
            add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
            john = add_staff(s, JOHN.id, "admin", "John Smith")
            john.language = "en"
            add_staff(s, HUGO.id, "marketer", "Hugo")
            for user in (CLIENT, OTHER):
                register_client(s, TelegramProfile(user.id, user.first_name, user.last_name, None, "fr"))
        yield harness


def request(bot, user=CLIENT) -> int:
    """What action_request_human does: open the client's handoff in the CRM."""
    with crm(bot) as s:
        client = s.scalar(select(Client).where(Client.telegram_id == user.id))
        handoff, _ = open_handoff(s, client, "request", "je veux parler à quelqu'un")
        return handoff.id


async def first(bot, user, prefix, timeout=15.0):
    """The first message sent to `user` whose text starts with `prefix` (waiting for it)."""
    def found(sent):
        return any(m.chat_id == user.id and (m.text or "").startswith(prefix) for m in sent)

    await asyncio.to_thread(bot.emulator.wait_for, found, timeout)
    return next(m for m in bot.emulator.messages_to(user.id) if (m.text or "").startswith(prefix))


async def notices(bot):
    claire = (await bot.wait(CLAIRE, 1))[-1]
    john = (await bot.wait(JOHN, 1))[-1]
    return claire, john


async def test_a_manager_takes_relays_both_ways_and_hands_back(desk, stub):
    handoff_id = request(desk)
    claire_notice, john_notice = await notices(desk)
    assert claire_notice.text.startswith(f"🔔 Conversation à prendre (n° {handoff_id}) : Élodie Martin — demande un conseiller")
    assert "Commandes en cours : aucune" in claire_notice.text and claire_notice.button_titles == ["Prendre"]
    assert john_notice.text.startswith(f"🔔 Conversation to take (no. {handoff_id})") and john_notice.button_titles == ["Take"]

    [ack] = await desk.say(CLIENT, "bonjour, ma facture est fausse")
    assert ack.text == "Message transmis. Un conseiller va prendre votre demande en charge."
    desk.emulator.user_says(CLIENT, "vous êtes là ?")
    await asyncio.sleep(0.5)
    assert len(desk.emulator.messages_to(CLIENT.id)) == 1, "acknowledged once, not for every message"

    desk.emulator.user_presses(CLAIRE, claire_notice, index=0)
    taken = (await desk.wait(CLIENT, 2))[-1]
    assert taken.text == "Claire (conseiller) prend le relais. Vous pouvez lui écrire ici."
    welcome = await first(desk, CLAIRE, f"Vous avez la conversation n° {handoff_id} avec Élodie Martin.")
    assert welcome.text.endswith("→ bonjour, ma facture est fausse\n→ vous êtes là ?")
    await asyncio.to_thread(desk.emulator.wait_for, lambda sent: any(
        s.method == "editMessageText" and s.chat_id == JOHN.id for s in sent), 10)
    edited = [s for s in desk.emulator.sent if s.method == "editMessageText" and s.chat_id == JOHN.id]
    assert edited[0].text == f"✅ Conversation no. {handoff_id} taken by Claire Dubois."

    desk.emulator.user_presses(JOHN, john_notice, index=0)  # too late
    await asyncio.to_thread(desk.emulator.wait_for, lambda _: any(
        "Already taken by Claire Dubois." == a.get("text") for a in desk.emulator.callback_answers), 10)

    desk.emulator.user_says(CLIENT, "le montant est de 120 € au lieu de 100 €")
    await first(desk, CLAIRE, f"💬 Élodie Martin (n° {handoff_id}) :\nle montant est de 120 € au lieu de 100 €")
    desk.emulator.user_says(CLAIRE, "Je corrige la facture tout de suite.")
    reply = await first(desk, CLIENT, "Je corrige la facture tout de suite.")
    assert reply.method == "copyMessage"
    desk.emulator.user_sends(CLIENT, photo=[{"file_id": "p1", "file_unique_id": "p1", "width": 1, "height": 1}],
                             caption="la facture")
    photo = await first(desk, CLAIRE, f"💬 Élodie Martin (n° {handoff_id}) :\nla facture")
    assert photo.method == "copyMessage"
    assert stub.received == [], "Rasa is never asked while the desk holds the conversation"

    [card] = await desk.say(CLAIRE, "/client")
    assert card.text.startswith("👤 Élodie Martin — langue : fr")
    [noted] = await desk.say(CLAIRE, "/note Facture FA-2291 à corriger")
    assert noted.text == "Note enregistrée dans la fiche de Élodie Martin."

    [done] = await desk.say(CLAIRE, "/done")
    assert done.text == f"Conversation n° {handoff_id} terminée ; l'assistant reprend la main."
    closed = await first(desk, CLIENT, "La conversation avec le conseiller est terminée ; je reprends la main.")
    desk.emulator.user_presses(CLIENT, closed, index=4)
    await first(desk, CLIENT, "Merci pour votre note : 5/5.")
    [back] = await desk.say(CLIENT, "avez-vous des imprimantes ?")
    assert back.text == "[fr] avez-vous des imprimantes ?", "the assistant answers again"
    with crm(desk) as s:
        handoff = s.get(Handoff, handoff_id)
        assert (handoff.status, handoff.satisfaction) == ("closed", 5)
        assert s.scalar(select(ClientNote.text)) == "Facture FA-2291 à corriger"


async def test_two_conversations_need_an_explicit_target(desk, stub):
    one, two = request(desk, CLIENT), request(desk, OTHER)
    await desk.wait(CLAIRE, 2)
    for handoff_id in (one, two):
        desk.emulator.user_says(CLAIRE, f"/take {handoff_id}")
        await first(desk, CLAIRE, f"Vous avez la conversation n° {handoff_id}")
    await desk.wait(CLIENT, 1)
    await desk.wait(OTHER, 1)
    desk.emulator.user_says(CLIENT, "question d'Élodie")
    from_elodie = await first(desk, CLAIRE, f"💬 Élodie Martin (n° {one}) :")
    desk.emulator.user_says(OTHER, "question de Paul")
    await first(desk, CLAIRE, f"💬 Paul (n° {two}) :")
    [which] = await desk.say(CLAIRE, "Bonjour !")
    assert which.text.startswith(f"Vous tenez plusieurs conversations (n° {one}, n° {two}).")
    assert len(desk.emulator.messages_to(CLIENT.id)) == 1 and len(desk.emulator.messages_to(OTHER.id)) == 1
    desk.emulator.user_says(CLAIRE, "Réponse pour Élodie", reply_to=from_elodie)
    answer = (await desk.wait(CLIENT, 2))[-1]
    assert answer.text == "Réponse pour Élodie"
    assert len(desk.emulator.messages_to(OTHER.id)) == 1, "never a guess"
    [which] = await desk.say(CLAIRE, "/done")
    assert which.text.startswith("Vous tenez plusieurs conversations")
    [done] = await desk.say(CLAIRE, f"/done {two}", expect=1)
    assert done.text == f"Conversation n° {two} terminée ; l'assistant reprend la main."


@pytest.mark.parametrize("who", [CLIENT, HUGO], ids=["client", "marketer"])
async def test_clients_and_marketers_cannot_reach_the_desk(desk, stub, who):
    handoff_id = request(desk, OTHER)
    for command in ("/queue", f"/take {handoff_id}", "/done", "/client", "/note x"):
        [refusal] = await desk.say(who, command)
        assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise."
    with crm(desk) as s:
        assert s.get(Handoff, handoff_id).status == "queued"


async def test_help_lists_the_staff_commands_for_managers_only(desk, stub):
    [manager_help] = await desk.say(CLAIRE, "/help")
    [client_help] = await desk.say(CLIENT, "/help")
    assert "Commandes de l'équipe :\n/queue" in manager_help.text
    assert "/queue" not in client_help.text


async def test_the_queue_oldest_first(desk, stub):
    one, two = request(desk, CLIENT), request(desk, OTHER)
    desk.emulator.user_says(JOHN, "/queue")
    listing = await first(desk, JOHN, "Waiting (oldest first):")
    lines = listing.text.splitlines()
    assert lines[1].startswith(f"no. {one} — Élodie Martin") and lines[2].startswith(f"no. {two} — Paul")


async def test_a_restart_in_the_middle_loses_nothing(database_url, stub):  # noqa: F811
    from bot.emulator import BotApiEmulator

    emulator = BotApiEmulator().start()
    settings = make_settings(database_url, stub.url)
    try:
        async with BotHarness(settings, emulator) as bot:
            with crm(bot) as s:
                add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
                register_client(s, TelegramProfile(CLIENT.id, "Élodie", "Martin", None, "fr"))
            handoff_id = request(bot)
            await bot.wait(CLAIRE, 1)
            bot.emulator.user_says(CLAIRE, f"/take {handoff_id}")
            await first(bot, CLIENT, "Claire (conseiller) prend le relais.")
        emulator.user_says(CLIENT, "message écrit pendant le redémarrage")
        async with BotHarness(settings, emulator) as bot:
            await first(bot, CLAIRE, f"💬 Élodie Martin (n° {handoff_id}) :\nmessage écrit pendant le redémarrage")
            bot.emulator.user_says(CLAIRE, "Bien reçu.")
            await first(bot, CLIENT, "Bien reçu.")
        assert stub.received == []
    finally:
        emulator.stop()


STAFF_GROUP = -1001234567890


@pytest.fixture
async def group_desk(database_url, stub, monkeypatch):  # noqa: F811
    """The desk in a forum supergroup: a topic per client."""
    monkeypatch.setenv("STAFF_CHAT_ID", str(STAFF_GROUP))
    monkeypatch.setenv("STAFF_CHAT_LANGUAGE", "fr")
    install_settings(None)  # read again, with it
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        with crm(harness) as s:
            add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
            add_staff(s, JOHN.id, "admin", "John Smith")
            for user in (CLIENT, OTHER):
                register_client(s, TelegramProfile(user.id, user.first_name, user.last_name, None, "fr"))
        yield harness


async def in_group(bot, prefix, thread=None, timeout=15.0):
    """The first message of the staff group starting with `prefix` (in `thread` when given)."""
    def match(m):
        return m.chat_id == STAFF_GROUP and (m.text or "").startswith(prefix) and (thread is None or m.thread_id == thread)

    await asyncio.to_thread(bot.emulator.wait_for, lambda sent: any(match(m) for m in sent), timeout)
    return next(m for m in bot.emulator.sent if match(m))


async def test_a_staff_group_has_one_topic_per_client_and_relays_in_it(group_desk, stub):
    bot = group_desk
    handoff_id = request(bot)
    notice = await in_group(bot, f"🔔 Conversation à prendre (n° {handoff_id}) : Élodie Martin")
    topic = notice.thread_id
    assert bot.emulator.topics[STAFF_GROUP][topic] == f"Élodie Martin · {CLIENT.id}"
    assert bot.emulator.messages_to(CLAIRE.id) == [], "nobody is notified privately"

    bot.emulator.user_says(CLIENT, "bonjour, ma facture est fausse")
    await first(bot, CLIENT, "Message transmis.")
    await in_group(bot, f"💬 Élodie Martin (n° {handoff_id}) :\nbonjour, ma facture est fausse", topic)

    bot.emulator.user_says_in_group(CLAIRE, STAFF_GROUP, "Je regarde ça", thread_id=topic)
    await in_group(bot, "Ce client n'a pas de conversation en cours avec un conseiller", topic)
    bot.emulator.user_presses(CLAIRE, notice)
    await first(bot, CLIENT, "Claire (conseiller) prend le relais.")
    await in_group(bot, f"Claire Dubois a la conversation n° {handoff_id} avec Élodie Martin. Écrivez dans ce sujet", topic)

    bot.emulator.user_says_in_group(CLAIRE, STAFF_GROUP, "Je corrige la facture.", thread_id=topic)
    reply = await first(bot, CLIENT, "Je corrige la facture.")
    assert reply.method == "copyMessage"
    bot.emulator.user_says_in_group(JOHN, STAFF_GROUP, "Moi aussi je peux ?", thread_id=topic)
    await in_group(bot, "Cette conversation est tenue par Claire Dubois", topic)
    assert not any(m.text == "Moi aussi je peux ?" for m in bot.emulator.messages_to(CLIENT.id))

    bot.emulator.user_says(CLIENT, "merci")
    await in_group(bot, f"💬 Élodie Martin (n° {handoff_id}) :\nmerci", topic)
    bot.emulator.user_says_in_group(CLAIRE, STAFF_GROUP, "/done", thread_id=topic)
    await in_group(bot, f"Conversation n° {handoff_id} terminée", topic)
    await first(bot, CLIENT, "La conversation avec le conseiller est terminée")
    assert stub.received == []

    second = request(bot)  # the same client again: the same topic
    again = await in_group(bot, f"🔔 Conversation à prendre (n° {second})")
    assert again.thread_id == topic and len(bot.emulator.topics[STAFF_GROUP]) == 1
    other = request(bot, OTHER)
    assert (await in_group(bot, f"🔔 Conversation à prendre (n° {other})")).thread_id != topic


@pytest.mark.time_machine(WEDNESDAY_10H_PARIS)  # the desk is open
async def test_a_vip_client_goes_straight_to_a_manager(desk, stub):
    with crm(desk) as s:
        s.scalar(select(Client).where(Client.telegram_id == CLIENT.id)).vip = True
    [opened] = await desk.say(CLIENT, "Bonjour, j'ai besoin de 200 ramettes pour demain")
    assert opened.text.startswith("Je transmets votre demande à un conseiller")
    notice = await first(desk, CLAIRE, "🔔 Conversation à prendre")
    assert "client VIP" in notice.text and "⭐ Client VIP" in notice.text
    desk.emulator.user_presses(CLAIRE, notice)
    welcome = await first(desk, CLAIRE, "Vous avez la conversation")
    assert welcome.text.endswith("→ Bonjour, j'ai besoin de 200 ramettes pour demain")
    assert stub.received == []


@pytest.mark.time_machine(FRIDAY_18H55_PARIS)  # the desk closed at 18:00
async def test_outside_hours_the_client_can_leave_a_number_to_be_called_back(desk, stub):
    from crm.handoffs import hand_over

    with crm(desk) as s:
        client = s.scalar(select(Client).where(Client.telegram_id == CLIENT.id))
        told = hand_over(s, client, "request", "fr")
    assert "Nos conseillers sont absents pour le moment" in told and "lundi 7 décembre à 9 h 00" in told
    offer = await first(desk, CLIENT, "Vous préférez être rappelé ?")
    keyboard = offer.params["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_contact"] is True
    desk.emulator.user_sends(CLIENT, contact={"phone_number": "+33 6 12 34 56 78", "first_name": "Élodie",
                                              "user_id": CLIENT.id})
    noted = await first(desk, CLIENT, "C'est noté : un conseiller vous appellera au +33612345678 dès la "
                                      "réouverture, lundi 7 décembre à 9 h 00.")
    assert noted.params["reply_markup"] == {"remove_keyboard": True}
    await first(desk, CLAIRE, "📞 Élodie Martin")
    [listing] = await desk.say(CLAIRE, "/queue")
    assert "📞 +33612345678" in listing.text
    with crm(desk) as s:
        assert s.scalar(select(Client.phone).where(Client.telegram_id == CLIENT.id)) == "+33612345678"
    assert stub.received == []


async def test_a_manager_is_reminded_when_the_client_waits_for_an_answer(desk, stub):
    from datetime import datetime, timedelta, timezone

    from crm.handoffs import remind_overdue

    handoff_id = request(desk)
    await notices(desk)
    desk.emulator.user_says(CLAIRE, f"/take {handoff_id}")
    await first(desk, CLAIRE, f"Vous avez la conversation n° {handoff_id}")
    desk.emulator.user_says(CLIENT, "alors ?")
    await first(desk, CLAIRE, f"💬 Élodie Martin (n° {handoff_id}) :\nalors ?")
    with crm(desk) as s:
        remind_overdue(s, datetime.now(timezone.utc) + timedelta(minutes=6))
    await first(desk, CLAIRE, f"⏰ Claire, Élodie Martin (n° {handoff_id}) attend votre réponse depuis 5 min.")
    assert not any(m.text.startswith("⏰") for m in desk.emulator.messages_to(JOHN.id)), "only the holder"


async def test_the_queue_shows_staff_what_could_not_be_delivered(desk, stub):
    from crm.outbox import enqueue

    with crm(desk) as s:  # what the outbox records when Telegram refuses a message
        row = enqueue(s, OTHER.id, "Votre commande CMD-000042 est expédiée.")
        row.status, row.last_error = "failed", "Bad Request: chat not found"
    [listing] = await desk.say(CLAIRE, "/queue")
    assert listing.text.startswith("Aucune conversation en attente.")
    assert "⚠️ Messages non remis (les plus récents) :" in listing.text
    assert f"• à {OTHER.id} : « Votre commande CMD-000042 est expédiée. » — failed : Bad Request: chat not found" \
        in listing.text
