"""Broadcasts composed and followed in Telegram (the Bot API emulator, the sender running inside
the bot): text, English version, segment, preview, now or later, confirm; the unsubscribe button;
/broadcasts and cancelling; clients and managers refused."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.clients import TelegramProfile, register_client
from crm.consent import has_consent, set_consent
from crm.models import Broadcast, Client
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_desk import first
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

HUGO = User(id=821, first_name="Hugo", language_code="fr")
CLAIRE = User(id=822, first_name="Claire", language_code="fr")
ANNE = User(id=721, first_name="Anne", language_code="fr")
BEN = User(id=722, first_name="Ben", language_code="en")
CARL = User(id=723, first_name="Carl", language_code="fr")  # never agreed


@pytest.fixture
async def bot(database_url, stub):  # noqa: F811
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        with crm(harness) as s:
            add_staff(s, HUGO.id, "marketer", "Hugo Leroy")
            add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
            for user, language, agreed in ((ANNE, "fr", True), (BEN, "en", True), (CARL, "fr", False)):
                client, _ = register_client(s, TelegramProfile(user.id, user.first_name, "", None, language))
                if agreed:
                    set_consent(s, client, True, "command")
        yield harness


async def press(bot, user, message, title):
    bot.emulator.user_presses(user, message, index=message.button_titles.index(title))


async def test_compose_preview_send_and_unsubscribe(bot, stub):
    [ask] = await bot.say(HUGO, "/broadcast")
    assert ask.text.startswith("Nouvelle diffusion. Envoyez le texte en français")
    bot.emulator.user_says(HUGO, "Bonjour {prénom}, -20 % sur les écrans !",
                           entities=[{"type": "bold", "offset": 18, "length": 5}])
    ask_en = await first(bot, HUGO, "Maintenant la version anglaise")
    bot.emulator.user_says(HUGO, "Hello {first_name}, 20% off screens!")
    segment = await first(bot, HUGO, "À qui ? Choisissez, ou écrivez un segment")
    assert ask_en.button_titles == ["Texte français pour tous"]
    bot.emulator.user_says(HUGO, "lang:de")
    await first(bot, HUGO, "Impossible : segment : lang vaut fr ou en (reçu 'de')")
    await press(bot, HUGO, segment, "Tous les abonnés")
    preview = await first(bot, HUGO, "Bonjour Hugo, <b>-20 %</b> sur les écrans !")
    assert preview.params["parse_mode"] == "HTML"
    choice = await first(bot, HUGO, "👆 Aperçu. 2 destinataire(s)")
    await press(bot, HUGO, choice, "Maintenant")
    confirm = await first(bot, HUGO, "Envoyer maintenant à 2 destinataire(s) ?")
    await press(bot, HUGO, choice, "Maintenant")  # pressed again: that step is over
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: any(
        a.get("text") == "Ce bouton n'est plus valable." for a in bot.emulator.callback_answers), 10)
    await press(bot, HUGO, confirm, "Confirmer")
    await first(bot, HUGO, "✅ Diffusion n°")

    anne = await first(bot, ANNE, "Bonjour Anne, <b>-20 %</b> sur les écrans !", timeout=20)
    ben = await first(bot, BEN, "Hello Ben, 20% off screens!")
    assert anne.button_titles == ["Se désabonner"] and ben.button_titles == ["Unsubscribe"]
    report = await first(bot, HUGO, "📣 Diffusion n°", timeout=20)
    while "terminée" not in report.text:
        await asyncio.sleep(0.3)
        report = [m for m in bot.emulator.messages_to(HUGO.id) if m.text.startswith("📣")][-1]
    assert "2 envoyés, 0 en échec, 0 bloqués" in report.text
    assert bot.emulator.messages_to(CARL.id) == [], "never agreed: nothing"

    bot.emulator.user_presses(ANNE, anne)
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: any(
        (a.get("text") or "").startswith("C'est fait : vous ne recevrez plus") for a in bot.emulator.callback_answers), 10)
    with crm(bot) as s:
        assert not has_consent(s, s.scalar(select(Client).where(Client.telegram_id == ANNE.id)))
    assert stub.received == [], "composing never reaches Rasa"


async def test_schedule_list_and_cancel(bot, stub):
    await bot.say(HUGO, "/broadcast")
    bot.emulator.user_says(HUGO, "Soldes d'hiver")
    same = await first(bot, HUGO, "Maintenant la version anglaise")
    await press(bot, HUGO, same, "Texte français pour tous")
    await first(bot, HUGO, "À qui ?")
    bot.emulator.user_says(HUGO, "lang:fr")
    choice = await first(bot, HUGO, "👆 Aperçu. 1 destinataire(s) (segment : lang:fr)")
    await press(bot, HUGO, choice, "Programmer")
    await first(bot, HUGO, "Date et heure d'envoi")
    for bad, answer in (("demain", "Je n'ai pas compris la date 'demain'"),
                        ("31/02/2030 10:00", "Je n'ai pas compris la date '31/02/2030 10:00'"),
                        ("01/01/2020 10:00", "Le 01/01/2020 10:00 (Europe/Paris) est déjà passé"),
                        ("28/03/2027 02:30", "Le 28/03/2027 02:30 n'existe pas en heure de Europe/Paris : les "
                                             "horloges passent de 02:00 à 03:00")):
        before = len(bot.emulator.messages_to(HUGO.id))
        bot.emulator.user_says(HUGO, bad)
        assert (await bot.wait(HUGO, before + 1))[-1].text.startswith(answer), bad
    bot.emulator.user_says(HUGO, "15/12/2030 09:30")
    confirm = await first(bot, HUGO, "Envoyer le 15/12/2030 à 09:30 à 1 destinataire(s)")
    await press(bot, HUGO, confirm, "Confirmer")
    await first(bot, HUGO, "✅ Diffusion n°")
    [listing] = await bot.say(HUGO, "/broadcasts")
    assert "— programmée — 15/12 09:30 — 0/0 envoyés — lang:fr" in listing.text
    await press(bot, HUGO, listing, listing.button_titles[0])
    await first(bot, HUGO, "Diffusion n°")
    with crm(bot) as s:
        assert s.scalar(select(Broadcast.state).where(Broadcast.segment == "lang:fr")) == "cancelled"
    assert bot.emulator.messages_to(ANNE.id) == []


@pytest.mark.parametrize("who", [ANNE, CLAIRE], ids=["client", "manager"])
async def test_only_marketers_and_admins_broadcast(bot, stub, who):
    for command in ("/broadcast", "/broadcasts"):
        [refusal] = await bot.say(who, command)
        assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise."
    with crm(bot) as s:
        assert s.scalar(select(Broadcast.id)) is None
