"""The managers' desk over the Bot API emulator: one client, two managers, a stub Rasa that must
stay silent while a human holds the conversation."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.clients import TelegramProfile, register_client
from crm.handoffs import open_handoff
from crm.models import Client, ClientNote, Handoff
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

CLIENT = User(id=701, first_name="Élodie", last_name="Martin", language_code="fr")
OTHER = User(id=702, first_name="Paul", language_code="fr")
CLAIRE = User(id=801, first_name="Claire", language_code="fr")
JOHN = User(id=802, first_name="John", language_code="en")
HUGO = User(id=803, first_name="Hugo", language_code="fr")


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
