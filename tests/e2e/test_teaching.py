"""A manager teaches the real assistant a phrasing it did not understand, in Telegram: the client's
message falls back, is kept masked, labelled with /review, learnt with /retrain (a real training
and the real gate), swapped into the running Rasa, and the same message then gets the labelled
intent's answer, with no restart. A candidate taught wrong labels on purpose is refused.

Two real trainings in all: the second stack finds the same labels, so the same cached model."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from sqlalchemy import select

from bot import retrain
from bot.emulator import User
from crm import review
from crm.db import engine_for, unit_of_work
from crm.models import ConversationMessage, ReviewItem
from crm.staff import add_staff
from tests.e2e.test_desk import first
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e

# Slang for "how much do I have to pay for the bill": the model of the repository's data falls
# back on it (checked below, so a change of the training data that teaches it fails loudly here).
SLANG = "faut que je raque combien pour la douloureuse de la {order}"
PAYMENT_ANSWER = "Paiement par carte bancaire, virement ou prélèvement SEPA."


def _spaces(text: str) -> str:
    return text.replace("\u202f", " ").replace("\xa0", " ")


@pytest.fixture
def var(tmp_path, monkeypatch):
    """The labels file and the candidate's aside set in a folder of the test's own."""
    monkeypatch.setattr(retrain, "VAR", tmp_path)
    return tmp_path


async def _review_until(bot, manager: User, text: str):
    """/review, skipping what other tests left in the queue, until the message is `text`."""
    [shown] = await bot.say(manager, "/review")
    for _ in range(20):
        if f"« {text} »" in shown.text:
            return shown
        assert shown.text.startswith("À revoir"), shown.text
        before = len(bot.emulator.messages_to(manager.id))
        bot.emulator.user_presses(manager, shown, index=len(shown.button_titles) - 1)  # "Passer"
        shown = (await bot.wait(manager, before + 2))[-1]  # "⏭ Passé", then the next message
    pytest.fail(f"« {text} » never came up in /review")


async def test_a_phrasing_labelled_in_telegram_is_understood_after_retrain(stack, var):
    engine = engine_for(stack.settings.database_url)
    url, token = stack.settings.rasa_url, stack.settings.rasa_token
    serving = await asyncio.to_thread(retrain.served_model, url, token)
    client = User(id=random.randint(10**9, 2 * 10**9), first_name="Élodie", language_code="fr")
    manager = User(id=random.randint(10**9, 2 * 10**9), first_name="Claire", language_code="fr")
    admin = User(id=random.randint(10**9, 2 * 10**9), first_name="John", language_code="en")
    with unit_of_work(engine) as s:
        add_staff(s, manager.id, "manager", "Claire Dubois")
        add_staff(s, admin.id, "admin", "John Smith").language = "en"
    try:
        async with BotHarness(stack.settings) as bot:
            [answer] = await bot.say(client, SLANG.format(order="CMD-000777"))
            assert answer.text == "Je ne suis pas sûr d'avoir compris. Pourriez-vous reformuler votre question ?"
            masked = SLANG.format(order="[order]")
            with unit_of_work(engine) as s:
                item = s.scalar(select(ReviewItem).where(ReviewItem.text == masked))
                assert item is not None and item.reason == "fallback", "kept, the order number masked"
                assert not s.scalars(select(ReviewItem.text).where(ReviewItem.text.contains("000777"))).all()
                row = s.scalar(select(ConversationMessage).where(ConversationMessage.text.contains("douloureuse"))
                               .order_by(ConversationMessage.id.desc()))
                assert row.understood is False, "the action server marked the row: it counts as misunderstood"

            shown = await _review_until(bot, manager, masked)
            bot.emulator.user_presses(manager, shown, index=len(shown.button_titles) - 2)  # "Autre intention…"
            await asyncio.to_thread(bot.emulator.wait_for, lambda _: bot.emulator.markup_edits, 10)
            buttons = [b for line in bot.emulator.markup_edits[-1]["reply_markup"]["inline_keyboard"] for b in line]
            payment = next(b["callback_data"] for b in buttons if b["text"] == "Paiement")
            bot.emulator.user_presses(manager, shown, data=payment)
            await first(bot, manager, f"✅ « {masked} » → Paiement")

            [started] = await bot.say(admin, "/retrain")
            assert started.text.startswith("Training a new model with 1 labelled"), started.text
            told = await first(bot, admin, "🧠", timeout=600)  # a real training, then both models judged
            assert told.text.startswith("🧠 New model in service"), told.text
            served = await asyncio.to_thread(retrain.served_model, url, token)
            assert served != serving and served.name in told.text, "swapped in, with no restart"

            [answer] = await bot.say(client, SLANG.format(order="CMD-000777"))
            assert answer.text.startswith(PAYMENT_ANSWER), "the same message, now understood"
            [stats] = await bot.say(manager, "/review stats")
            assert re.search(r"• .* : mis en service\. Jeu de test : \d+ % → \d+ %\.", _spaces(stats.text)), stats.text
    finally:
        assert await asyncio.to_thread(retrain.swap, url, token, serving, None), "the first model back"
        with unit_of_work(engine) as s:  # the next test starts from an empty set of labels
            s.query(ReviewItem).filter(ReviewItem.status != "pending").delete()


def _held_out_examples(count: int) -> list[tuple[str, str]]:
    """(intent, text) of the held-out set, `count` of them spread over its intents."""
    import yaml

    data = yaml.safe_load(retrain.HELD_OUT.read_text(encoding="utf-8"))
    pairs = [(block["intent"], line[2:].strip()) for block in data["nlu"]
             for line in block["examples"].splitlines() if line.startswith("- ")]
    return pairs[::max(1, len(pairs) // count)][:count]


async def test_a_candidate_taught_wrong_labels_is_refused_by_the_real_gate(stack, var):
    engine = engine_for(stack.settings.database_url)
    url, token = stack.settings.rasa_url, stack.settings.rasa_token
    serving = await asyncio.to_thread(retrain.served_model, url, token)
    admin = User(id=random.randint(10**9, 2 * 10**9), first_name="John", language_code="en")
    wrong = [(text, "greet" if intent != "greet" else "goodbye") for intent, text in _held_out_examples(15)]
    with unit_of_work(engine) as s:
        add_staff(s, admin.id, "admin", "John Smith").language = "en"
        for n, (text, _) in enumerate(wrong):  # a careless reviewer labels held-out phrasings wrong
            review.note(s, text, "fallback", [("greet", 0.3)], message_id=f"wrong-{n}")
        for text, label in wrong:
            item = s.scalar(select(ReviewItem.id).where(ReviewItem.key == review._key(review.mask(text))))
            review.label(s, item, label, None)
    try:
        outcome = await asyncio.to_thread(retrain.retrain_and_tell, engine, url, token)
        assert (outcome.swapped, outcome.reason) == (False, "worse_held_out"), outcome
        assert outcome.after.held_out < outcome.before.held_out - retrain.GATE_MARGIN
        assert (retrain.REFUSED / outcome.model).exists(), "kept for inspection"
        served = await asyncio.to_thread(retrain.served_model, url, token)
        assert served == serving, "the model in service stays"
        async with BotHarness(stack.settings) as bot:
            told = await first(bot, admin, "🧠", timeout=60)
            assert told.text.startswith("🧠 New model refused (worse on the test set)"), told.text
    finally:
        if (await asyncio.to_thread(retrain.served_model, url, token)) != serving:
            await asyncio.to_thread(retrain.swap, url, token, serving, None)
        with unit_of_work(engine) as s:
            s.query(ReviewItem).filter(ReviewItem.status != "pending").delete()
