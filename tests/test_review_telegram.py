"""/review in Telegram (the Bot API emulator, a stub Rasa): one message at a time with the model's
guesses in business words, one tap labels it and the next comes; clients, marketers and forged
buttons are refused and change nothing."""

from __future__ import annotations

import asyncio

import pytest

from bot.emulator import User
from crm import review
from crm.models import ReviewItem
from crm.staff import add_staff
from tests.harness import BotHarness, make_settings
from tests.test_desk import first
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)

CLIENT = User(id=711, first_name="Élodie", last_name="Martin", language_code="fr")
CLAIRE = User(id=811, first_name="Claire", language_code="fr")
JOHN = User(id=812, first_name="John", language_code="en")
HUGO = User(id=813, first_name="Hugo", language_code="fr")
GUESS = [("order_status", 0.41), ("ask_delivery", 0.3), ("complain", 0.1)]


@pytest.fixture
async def bot(database_url, stub):  # noqa: F811
    async with BotHarness(make_settings(database_url, stub.url)) as harness:
        with crm(harness) as s:
            add_staff(s, CLAIRE.id, "manager", "Claire Dubois")
            add_staff(s, JOHN.id, "admin", "John Smith").language = "en"
            add_staff(s, HUGO.id, "marketer", "Hugo")
            for n in range(3):
                review.note(s, "il est où mon carton", "fallback", GUESS, message_id=f"a{n}")
            review.note(s, "vous faites les tampons encreurs", "low_confidence",
                        [("ask_catalog", 0.5), ("ask_product_info", 0.2)], message_id="b")
        yield harness


async def answered(bot, text):
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: any(
        a.get("text") == text for a in bot.emulator.callback_answers), 10)


async def test_a_manager_labels_in_one_tap_and_gets_the_next(bot, stub):
    [shown] = await bot.say(CLAIRE, "/review")
    assert shown.text.startswith("À revoir (n° ") and "3 fois, non compris" in shown.text
    assert "« il est où mon carton »" in shown.text
    assert "Le modèle pensait : Suivi de commande 41 %, Livraison 30 %, Réclamation 10 %" in \
        shown.text.replace("\u202f", " ").replace("\xa0", " ")
    assert shown.button_titles == ["Suivi de commande", "Livraison", "Réclamation", "Hors sujet",
                                   "Autre intention…", "Passer"]
    bot.emulator.user_presses(CLAIRE, shown, index=4)  # "Autre intention…": every intent
    await asyncio.to_thread(bot.emulator.wait_for, lambda _: bot.emulator.markup_edits, 10)
    titles = [b["text"] for row in bot.emulator.markup_edits[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert "Prendre rendez-vous" in titles and "Se désabonner des offres" in titles and titles[-1] == "← Retour"
    assert len(titles) == len(review.intents()) + 1
    bot.emulator.user_presses(CLAIRE, shown, index=0)  # "Suivi de commande"
    done = await first(bot, CLAIRE, "✅")
    assert done.method == "editMessageText" and done.text == "✅ « il est où mon carton » → Suivi de commande"
    following = await first(bot, CLAIRE, "À revoir (n° " + str(int(shown.text.split("n° ")[1].split(",")[0]) + 1))
    assert "« vous faites les tampons encreurs »" in following.text and "compris sans certitude" in following.text
    with crm(bot) as s:
        labelled = s.query(ReviewItem).filter(ReviewItem.status == "labelled").one()
        assert (labelled.text, labelled.label) == ("il est où mon carton", "order_status")
    assert stub.received == [], "reviewing never reaches Rasa"
    for text in ("bonjour", "le zigouigoui bleu", "la facture"):
        await bot.say(CLIENT, text)
    rows = [body["metadata"]["message"] for body in stub.received]
    assert len(set(rows)) == 3, "each message tells Rasa its row"
    with crm(bot) as s:  # what the action server does when the model falls back on the second
        assert review.note_fallback(s, rows[1], CLIENT.id)
        assert not review.note_fallback(s, rows[2], CLAIRE.id), "only the client's own row"
    [stats] = await bot.say(CLAIRE, "/review stats")
    assert stats.text.replace("\u202f", " ").replace("\xa0", " ") == (
        "📊 Revue : 1 à revoir, 1 étiquetés, 0 hors sujet, 0 passés.\n"
        "Étiquettes données : 1, dont 1 depuis le dernier réentraînement.\n"
        "Taux de compréhension sur 7 jours : 67 % (2 messages compris sur 3).\n"
        "Aucun réentraînement pour l'instant.")
    [stats] = await bot.say(JOHN, "/review stats")
    assert stats.text.startswith("📊 Review: 1 to review, 1 labelled") and "Understanding rate over 7 days: 67" in stats.text


async def test_two_reviewers_see_different_messages_and_nobody_else_may_label(bot, stub):
    [claire_sees] = await bot.say(CLAIRE, "/review")
    [john_sees] = await bot.say(JOHN, "/review")
    assert "il est où mon carton" in claire_sees.text
    assert "vous faites les tampons encreurs" in john_sees.text and john_sees.text.startswith("To review")
    assert john_sees.button_titles[:2] == ["Question about the range", "Product details"]
    # John presses a copy of Claire's button: not his to label.
    bot.emulator.user_presses(JOHN, claire_sees, index=0)
    await answered(bot, "Message no. {} is no longer yours: another reviewer took it over, or it was labelled "
                        "already.".format(claire_sees.buttons[0][0]["callback_data"].split(":")[1]))
    for who in (CLIENT, HUGO):
        [refusal] = await bot.say(who, "/review")
        assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise."
        bot.emulator.user_presses(who, claire_sees, index=0)
    await answered(bot, "Ce bouton n'est plus valable.")
    item_id = claire_sees.buttons[0][0]["callback_data"].split(":")[1]
    for forged in (f"rv:{item_id}:drop_table", f"rv:{item_id}:", "rv:x:order_status", f"rv:{item_id}:greet:1"):
        bot.emulator.user_presses(CLAIRE, claire_sees, data=forged)
    await answered(bot, "« drop_table » n'est pas une intention que l'assistant connaît.")
    await asyncio.sleep(0.5)
    with crm(bot) as s:
        assert s.query(ReviewItem).filter(ReviewItem.status != "pending").count() == 0, "nothing labelled"
    [usage] = await bot.say(CLAIRE, "/review everything")
    assert usage.text == "Usage : /review, ou /review stats"
    assert stub.received == []


async def test_retrain_is_for_admins_one_at_a_time(bot, stub, monkeypatch):
    import threading

    import bot.review as review_module

    for who in (CLIENT, HUGO, CLAIRE):
        [refusal] = await bot.say(who, "/retrain")
        assert refusal.text == "Cette commande est réservée à l'équipe de l'entreprise.", who
    [nothing] = await bot.say(JOHN, "/retrain")
    assert nothing.text == "No labelled example: nothing to learn yet (/review)."
    with crm(bot) as s:
        item = review.next_item(s, _id(s, JOHN))
        review.label(s, item.id, "order_status", _id(s, JOHN))
    release, runs = threading.Event(), []
    monkeypatch.setattr(review_module, "retrain_and_tell", lambda engine, url, token: runs.append(url) or release.wait(10))
    [started] = await bot.say(JOHN, "/retrain")
    assert started.text.startswith("Training a new model with 1 labelled examples")
    [again] = await bot.say(JOHN, "/retrain")
    assert again.text == "A training is already running: I will tell you its result."
    release.set()
    await asyncio.sleep(0.5)
    assert runs == [bot.settings.rasa_url], "one training, against the configured Rasa"
    [third] = await bot.say(JOHN, "/retrain")
    assert third.text.startswith("Training a new model"), "the lock is released once it ends"
    release.set()


def _id(session, user):
    from crm.models import Staff

    return session.query(Staff).filter(Staff.telegram_id == user.id).one().id
