"""A business enquiry becomes a scored lead, a hot one reaches a manager at once, and a meeting is
booked, moved and cancelled: through Telegram (the emulator), the bot, Rasa, the actions, the CRM."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.models import Client, Lead, Meeting
from crm.staff import add_staff
from tests.e2e.test_client_flows import client, crm
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e


def manager(stack, language="fr") -> User:
    user = User(id=random.randint(3 * 10**9, 4 * 10**9), first_name="Claire", language_code=language)
    with crm(stack) as s:
        member = add_staff(s, user.id, "manager", "Claire Dubois")
        member.language = language
    return user


async def answer(bot, user, text, expect=1):
    return [m.text for m in await bot.say(user, text, expect=expect)]


async def press(bot, user, message, title, expect=1):
    before = len(bot.emulator.messages_to(user.id))
    bot.emulator.user_presses(user, message, index=message.button_titles.index(title))
    return (await bot.wait(user, before + expect))[before:]


async def test_a_qualification_in_french_with_skips_and_a_wrong_email(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        intro, ask = await bot.say(user, "nous voulons équiper nos nouveaux bureaux, pouvez-vous nous faire un devis ?",
                                   expect=2)
        assert intro.text.startswith("Avec plaisir ! Quelques questions rapides")
        assert ask.text == "Quel est le nom de votre entreprise ?" and ask.button_titles == ["Passer"]
        assert await answer(bot, user, "Dupont SARL") == ["Dans quel secteur d'activité êtes-vous ?"]
        [size] = await press(bot, user, (await bot.wait(user, 1))[-1], "Passer")
        assert size.text == "Combien de personnes compte votre entreprise ?"
        assert size.button_titles[:4] == ["1 à 9 personnes", "10 à 49 personnes", "50 à 249 personnes",
                                          "250 personnes et plus"]
        [budget] = await press(bot, user, size, "10 à 49 personnes")
        assert budget.text == "Quel budget envisagez-vous, à peu près ?", "the need was in the first message"
        assert await answer(bot, user, "beaucoup", expect=2) == [
            "Je n'ai pas trouvé de montant : par exemple « 5 000 € » ou « 10k » (ou « passer »).",
            "Quel budget envisagez-vous, à peu près ?"]
        assert await answer(bot, user, "environ 8 000 €") == ["Pour quand ?"]
        assert await answer(bot, user, "d'ici deux mois, 2 mois max") == ["Quel est votre rôle dans la décision d'achat ?"]
        assert await answer(bot, user, "je recommande à ma direction") == [
            "Comment vous joindre ? Un numéro de téléphone ou une adresse e-mail."]
        wrong = await answer(bot, user, "jean.dupont@", expect=2)
        assert wrong[0].startswith("Ce numéro ou cet e-mail ne semble pas valide.")
        [done] = await bot.say(user, "jean.dupont@dupont.fr")
        assert done.text.startswith("Merci ! Votre demande est enregistrée (prospect n°")
        assert done.button_titles == ["📅 Prendre rendez-vous"]
    with crm(stack) as s:
        lead = s.scalar(select(Lead).where(Lead.email == "jean.dupont@dupont.fr"))
        assert (lead.company, lead.sector, lead.size, lead.budget_eur, lead.timeline, lead.role) == (
            "Dupont SARL", None, "10-49", 8000, "3m", "influencer")
        assert lead.need.startswith("nous voulons équiper") and (lead.score, lead.status) == (65, "qualified")


async def test_a_hot_lead_in_english_reaches_a_manager_at_once(stack):
    user, claire = client("en"), manager(stack, "en")
    async with BotHarness(stack.settings) as bot:
        await bot.say(user, "we need a quote for 200 office chairs for our new headquarters", expect=2)
        for text, question in (("Acme Ltd", "What is your line of business?"),
                               ("logistics", "How many people work in your company?"),
                               ("about 300 people", "Roughly what budget do you have in mind?"),
                               ("50k", "By when?"),
                               ("urgent, this month", "What is your role in the buying decision?"),
                               ("I am the CEO", "How can we reach you? A phone number or an email address.")):
            assert await answer(bot, user, text) == [question], text
        [handed] = await bot.say(user, "+44 20 7946 0958")
        assert handed.text.startswith("I am passing your request to a manager")
        notice = (await bot.wait(claire, 1))[-1]
        assert notice.text.startswith("🔔 Conversation to take") and "hot lead" in notice.text
        assert "100/100 — hot" in notice.text
        assert notice.button_titles == ["Take", "📅 Propose a meeting"]
        before = len(bot.emulator.messages_to(user.id))
        bot.emulator.user_presses(claire, notice, index=1)
        offer = (await bot.wait(user, before + 1))[-1]
        assert offer.text.startswith("Here are our managers' next free slots (30 min)")
        booked, invitation = await press(bot, user, offer, offer.button_titles[0], expect=2)
        assert booked.text.startswith("Booked: meeting") and "with Claire (30 min)" in booked.text
        assert invitation.method == "sendDocument"
    with crm(stack) as s:
        lead = s.scalar(select(Lead).where(Lead.phone == "+442079460958"))
        assert (lead.score, lead.status) == (100, "hot")
        assert s.scalar(select(Meeting.lead_id).where(Meeting.client_id == lead.client_id)) == lead.id


async def test_stop_keeps_what_was_given(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        await bot.say(user, "je voudrais un devis", expect=2)
        assert await answer(bot, user, "Martin & Fils") == ["Dans quel secteur d'activité êtes-vous ?"]
        [stopped] = await bot.say(user, "stop")
        assert stopped.text.startswith("D'accord, j'arrête là. J'ai noté ce que vous m'avez dit")
        [back] = await bot.say(user, "avez-vous des imprimantes ?")
        assert "Imprimante" in back.text, "the assistant is back to normal"
    with crm(stack) as s:
        lead = s.scalar(select(Lead).where(Lead.company == "Martin & Fils"))
        assert lead.status == "new"


async def test_a_meeting_booked_moved_and_cancelled_in_words(stack):
    user = client("fr")
    manager(stack)
    async with BotHarness(stack.settings) as bot:
        [offer] = await bot.say(user, "je voudrais prendre rendez-vous avec un commercial")
        assert offer.text.startswith("Voici les prochains créneaux libres de nos conseillers (30 min)")
        booked, _ = await press(bot, user, offer, offer.button_titles[1], expect=2)
        assert booked.text.startswith("C'est réservé : rendez-vous")
        [choice] = await bot.say(user, "je voudrais déplacer mon rendez-vous")
        assert choice.text == "Choisissez le nouveau créneau :"
        moved, _ = await press(bot, user, choice, choice.button_titles[0], expect=2)
        assert moved.text.startswith("C'est déplacé : rendez-vous")
        [current] = await bot.say(user, "je veux un rendez-vous")
        assert current.text.startswith("Vous avez rendez-vous") and current.button_titles == [
            "Déplacer", "Annuler", "Le garder"]
        [cancelled] = await bot.say(user, "je dois annuler mon rendez-vous")
        assert cancelled.text.startswith("Votre rendez-vous") and cancelled.text.endswith("est annulé. Reprenez-en un quand vous voulez.")
    with crm(stack) as s:
        client_id = s.scalar(select(Client.id).where(Client.telegram_id == user.id))
        statuses = sorted(s.scalars(select(Meeting.status).where(Meeting.client_id == client_id)))
    assert statuses == ["cancelled", "moved"]
