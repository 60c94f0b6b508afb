"""A client's data end to end, with the real Rasa (its SQL tracker store on SQLite, and on
PostgreSQL in the production set-up): after they erase it in Telegram, no table of the CRM and
no event of Rasa's store holds their name, phone, e-mail, address or Telegram id; and neither
the logs of our processes nor Rasa's hold what they wrote, or a token."""

from __future__ import annotations

import logging
import random

import pytest
from sqlalchemy import create_engine, text

from bot.emulator import User
from crm.db import engine_for, unit_of_work
from tests.e2e.test_desk import first
from tests.harness import TOKEN, BotHarness
from tests.test_privacy import scan

pytestmark = pytest.mark.e2e

PHONE, EMAIL, ADDRESS = "06 98 76 54 32", "gwen.kerbrat@exemple.org", "17 allée des Tilleuls, 35000 Rennes"
SAID = [f"bonjour, je suis Gwenaëlle Kerbrat, mon numéro est le {PHONE}",
        f"écrivez-moi à {EMAIL}", f"livrez au {ADDRESS} s'il vous plaît", "avez-vous des imprimantes ?"]


def tracker_rows(url: str, sender: str, needles: list[str]) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            matches = "".join(f" or data like :n{i}" for i in range(len(needles)))
            rows = conn.execute(text(f"select sender_id, data from events where sender_id = :s{matches}"),
                                {"s": sender, **{f"n{i}": f"%{n}%" for i, n in enumerate(needles)}}).all()
    finally:
        engine.dispose()
    return [f"{row[0]}: {row[1]}" for row in rows]


async def test_an_erased_client_leaves_nothing_behind_and_logs_never_hold_their_words(stack, caplog):
    caplog.set_level(logging.WARNING)  # as `python -m bot` logs: libraries at WARNING, ours at INFO
    for ours in ("bot", "crm"):
        caplog.set_level(logging.INFO, logger=ours)
    client = User(id=random.randint(10**9, 2 * 10**9), first_name="Gwenaëlle", last_name="Kerbrat",
                  username="gwenkerbrat", language_code="fr")
    needles = ["Gwenaëlle", "Kerbrat", PHONE, EMAIL, "Tilleuls"]
    url = stack.settings.tracker_store_url
    async with BotHarness(stack.settings) as bot:
        for said in SAID:
            await bot.say(client, said, timeout=60)
        assert tracker_rows(url, str(client.id), needles), "Rasa's store holds the conversation before"
        [asked] = await bot.say(client, "/forget")
        bot.emulator.user_presses(client, asked, index=0)
        await first(bot, client, "✅ Vos données ont été effacées.")
        await first(bot, client, "🗑 Données effacées.")  # the confirmation, edited
    with unit_of_work(engine_for(stack.settings.database_url)) as s:
        assert scan(s, needles, client.id) == []
    assert tracker_rows(url, str(client.id), needles) == []
    logs = "\n".join(path.read_text(errors="replace") for path in stack.services.log_dir.glob("*.log"))
    logs += "\n" + caplog.text
    secrets = [TOKEN, stack.settings.rasa_token, stack.settings.action_token]
    for forbidden in needles + SAID + secrets:
        assert forbidden not in logs, f"{forbidden[:20]!r} is in the logs"


async def test_an_erasure_in_the_middle_of_an_order_leaves_a_fresh_conversation(stack):
    client = User(id=random.randint(10**9, 2 * 10**9), first_name="Yann", language_code="fr")
    async with BotHarness(stack.settings) as bot:
        [ask] = await bot.say(client, "je voudrais passer une commande")
        assert ask.text == "Quel produit souhaitez-vous commander ? (nom, modèle ou référence)"
        chosen, ask = await bot.say(client, "thinkpad", expect=2)
        assert ask.text == "Combien en voulez-vous ? (un nombre entier, par exemple 2)"
        sent = await bot.say(client, "effacez mes données personnelles", expect=2, timeout=60)
        [asked] = [m for m in sent if m.text.startswith("⚠️ Effacer vos données ?")]  # asked in words, in the form
        assert [m.text for m in sent if m is not asked] == ["Combien en voulez-vous ? (un nombre entier, par exemple 2)"] \
            or sent[0].text.startswith("Combien"), "the order goes on if the client cancels"
        bot.emulator.user_presses(client, asked, index=0)
        await first(bot, client, "✅ Vos données ont été effacées.")
        await first(bot, client, "🗑 Données effacées.")  # the confirmation, edited
        [answer] = await bot.say(client, "2", timeout=60)
        assert not answer.text.startswith("À quelle adresse"), "the form went with the conversation"
        [hello] = await bot.say(client, "bonjour")
        assert hello.text.startswith("Bonjour"), "a new conversation, greeted as a new client"
    kept = tracker_rows(stack.settings.tracker_store_url, str(client.id), [])
    assert kept and not any("thinkpad" in row.lower() or "Combien en voulez-vous" in row for row in kept), \
        "Rasa's store holds the new conversation only"
