"""A client asks the real assistant for a person; a manager takes the conversation in Telegram,
they talk through the bot, and the assistant takes over again."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.emulator import User
from crm.db import engine_for, unit_of_work
from crm.staff import add_staff
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e


async def first(bot, user, prefix, timeout=30.0):
    def found(sent):
        return any(m.chat_id == user.id and (m.text or "").startswith(prefix) for m in sent)

    await asyncio.to_thread(bot.emulator.wait_for, found, timeout)
    return next(m for m in bot.emulator.messages_to(user.id) if (m.text or "").startswith(prefix))


async def test_request_take_relay_and_back_to_the_assistant(stack):
    client = User(id=random.randint(10**9, 2 * 10**9), first_name="Camille", language_code="fr")
    manager = User(id=random.randint(10**9, 2 * 10**9), first_name="Claire", language_code="fr")
    with unit_of_work(engine_for(stack.settings.database_url)) as s:
        add_staff(s, manager.id, "manager", "Claire Dubois")
    async with BotHarness(stack.settings) as bot:
        [answer] = await bot.say(client, "je veux parler à un conseiller")
        assert answer.text.startswith("Je transmets votre demande à un conseiller")
        notice = await first(bot, manager, "🔔 Conversation à prendre")
        assert "Camille" in notice.text and notice.button_titles == ["Prendre"]
        bot.emulator.user_presses(manager, notice, index=0)
        await first(bot, client, "Claire (conseiller) prend le relais.")
        bot.emulator.user_says(client, "avez-vous des imprimantes ?")
        await first(bot, manager, "💬 Camille (n° ")
        bot.emulator.user_says(manager, "Oui, je vous envoie le détail.")
        await first(bot, client, "Oui, je vous envoie le détail.")
        assert not any(m.text.startswith("Voici notre rayon") for m in bot.emulator.messages_to(client.id)), \
            "the assistant stays silent while the manager holds the conversation"
        bot.emulator.user_says(manager, "/done")
        await first(bot, client, "La conversation avec le conseiller est terminée")
        bot.emulator.user_says(client, "avez-vous des imprimantes ?")
        await first(bot, client, "Voici notre rayon Imprimantes :")
