"""Leads and meetings on the Telegram side (the Bot API emulator, a stub Rasa): the lead card for
managers only, status buttons, "propose a meeting", invitations and reminders that survive a
restart of the bot."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from bot.emulator import BotApiEmulator, User
from crm.clients import TelegramProfile, register_client
from crm.handoffs import open_handoff
from crm.leads import save_lead
from crm.meetings import book, free_slots
from crm.models import Client, Lead, Notification
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_desk import first
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

CLIENT = User(id=711, first_name="Élodie", last_name="Martin", language_code="fr")
CLAIRE = User(id=811, first_name="Claire", language_code="fr")
HUGO = User(id=813, first_name="Hugo", language_code="fr")
WEDNESDAY_8H = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)


def setup_people(bot):
    with crm(bot) as s:
        add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
        add_staff(s, HUGO.id, "marketer", "Hugo")
        client, _ = register_client(s, TelegramProfile(CLIENT.id, "Élodie", "Martin", None, "fr"))
        lead = save_lead(s, client, {"company": "Dupont SARL", "need": "40 chaises", "budget_eur": 25000,
                                     "role": "decision_maker", "timeline": "now"}, complete=True)
        return lead.id


@pytest.fixture
async def bot(database_url, stub):  # noqa: F811
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        harness.lead_id = setup_people(harness)
        yield harness


async def test_lead_cards_for_managers_only(bot, stub):
    lead_id = bot.lead_id
    [listing] = await bot.say(CLAIRE, "/leads")
    assert listing.text.startswith("Prospects en cours (meilleur score d'abord) :\n")
    assert f"n° {lead_id} — 85/100 — chaud — Élodie Martin (Dupont SARL)" in listing.text
    [card] = await bot.say(CLAIRE, f"/lead {lead_id}")
    assert card.text.startswith(f"🎯 Prospect n° {lead_id} — score 85/100 — chaud")
    assert card.button_titles == ["Contacté", "Gagné", "Perdu", "📅 Proposer un RDV"]
    for who in (CLIENT, HUGO):
        for command in ("/leads", f"/lead {lead_id}", f"/lead {lead_id} won"):
            [refusal] = await bot.say(who, command)
            assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise.", (who, command)
    for bad in ("/lead", "/lead abc", f"/lead {lead_id} maybe", "/lead 1 2 3"):
        [usage] = await bot.say(CLAIRE, bad)
        assert usage.text.startswith("Usage : /lead N"), bad
    [unknown] = await bot.say(CLAIRE, "/lead 424242")
    assert unknown.text == "Prospect n° 424242 introuvable."

    bot.emulator.user_presses(CLIENT, card, data=f"lstat:{lead_id}:won")  # a forged press by the client
    bot.emulator.user_presses(CLAIRE, card, index=0)  # "Contacté"
    edited = await asyncio.to_thread(bot.emulator.wait_for, lambda sent: any(
        s.method == "editMessageText" and "contacté" in s.text for s in sent), 10)
    assert any(a.get("text") == "Ce bouton n'est plus valable." for a in bot.emulator.callback_answers)
    assert edited
    with crm(bot) as s:
        assert s.get(Lead, lead_id).status == "contacted"
    [moved] = await bot.say(CLAIRE, f"/lead {lead_id} won")
    assert "gagné" in moved.text.splitlines()[0]
    assert stub.received == [], "staff commands never reach Rasa"


async def test_a_manager_proposes_a_meeting_and_the_client_picks_a_slot(bot, stub):
    [card] = await bot.say(CLAIRE, f"/lead {bot.lead_id}")
    bot.emulator.user_presses(CLAIRE, card, index=3)  # "📅 Proposer un RDV"
    offer = await first(bot, CLIENT, "Voici les prochains créneaux libres de nos conseillers (30 min)")
    assert len(offer.button_titles) == 6 and offer.button_titles[0][:4] in ("lun.", "mar.", "mer.", "jeu.", "ven.")
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: any(
        "6 créneaux proposés à Élodie Martin." == a.get("text") for a in bot.emulator.callback_answers), 10)
    bot.emulator.user_presses(CLIENT, offer, index=0)
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: len(stub.received) == 1, 10)
    assert stub.received[0]["message"].startswith('/choose_slot{"meeting_slot":"')
    bot.emulator.user_presses(HUGO, card, index=3)  # a marketer cannot
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: any(
        a.get("text") == "Ce bouton n'est plus valable." for a in bot.emulator.callback_answers), 10)


async def test_a_hot_lead_notice_offers_take_and_meeting(bot, stub):
    with crm(bot) as s:
        client = s.scalar(select(Client).where(Client.telegram_id == CLIENT.id))
        open_handoff(s, client, "lead")
    notice = await first(bot, CLAIRE, "🔔 Conversation à prendre")
    assert "prospect chaud" in notice.text and "Prospects :\n• n°" in notice.text
    assert notice.button_titles == ["Prendre", "📅 Proposer un RDV"]


@pytest.mark.time_machine(WEDNESDAY_8H)
async def test_invitations_and_a_reminder_that_survives_a_restart(database_url, stub):  # noqa: F811
    emulator = BotApiEmulator().start()
    settings = make_settings(database_url, stub.url)
    try:
        async with BotHarness(settings, emulator) as bot:
            setup_people(bot)
            with crm(bot) as s:
                client = s.scalar(select(Client).where(Client.telegram_id == CLIENT.id))
                thursday_10h = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
                assert thursday_10h in free_slots(s, client, count=100)
                meeting_id = book(s, client, thursday_10h).id
            invitation = await first(bot, CLIENT, "📎 Invitation pour votre agenda : rendez-vous jeudi 3 décembre à 10 h 00")
            assert invitation.method == "sendDocument" and invitation.params["document"] == "<upload rendez-vous.ics>"
            assert "DTSTART:20261203T090000Z" in invitation.params["document_content"]
            manager = await first(bot, CLAIRE, "📅 Nouveau rendez-vous : Élodie Martin, jeudi 3 décembre à 10 h 00")
            assert "Prospect n°" in manager.text and manager.method == "sendDocument"
        with crm(bot) as s:  # the bot is stopped; the reminders fall due meanwhile
            s.execute(update(Notification).where(Notification.meeting_id == meeting_id,
                                                 Notification.not_before.is_not(None))
                      .values(not_before=WEDNESDAY_8H))
        async with BotHarness(settings, emulator) as bot:
            reminder = await first(bot, CLIENT, "⏰ Rappel : rendez-vous jeudi 3 décembre à 10 h 00, avec Claire.")
            assert reminder.button_titles == ["Déplacer", "Annuler"]
            await first(bot, CLAIRE, "⏰ Rappel : rendez-vous avec Élodie Martin")
            bot.emulator.user_presses(CLIENT, reminder, index=1)
            await asyncio.to_thread(bot.emulator.wait_for, lambda _: len(stub.received) == 1, 10)
            assert stub.received[0]["message"] == f'/cancel_meeting{{"meeting_id":"{meeting_id}"}}'
        reminders = [m for m in emulator.messages_to(CLIENT.id) if m.text.startswith("⏰")]
        assert len(reminders) == 2, "the day before and the hour before, each once"
    finally:
        emulator.stop()
