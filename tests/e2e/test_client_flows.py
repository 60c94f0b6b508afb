"""Whole client journeys through Telegram (the emulator), the bot, Rasa, the actions and the CRM."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.catalog import import_catalog
from crm.db import engine_for, unit_of_work
from crm.models import Complaint, Order, Product
from tests.harness import BotHarness

pytestmark = pytest.mark.e2e


def client(language: str = "fr") -> User:
    return User(id=random.randint(10**9, 2 * 10**9), first_name="Camille", language_code=language)


def crm(stack):
    return unit_of_work(engine_for(stack.settings.database_url))


async def press(bot, user, message, title):
    before = len(bot.emulator.messages_to(user.id))
    bot.emulator.user_presses(user, message, index=message.button_titles.index(title))
    return before


async def test_an_order_in_french_with_bad_quantities(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        [ask] = await bot.say(user, "je voudrais passer une commande")
        assert ask.text == "Quel produit souhaitez-vous commander ? (nom, modèle ou référence)"
        chosen, ask = await bot.say(user, "thinkpad", expect=2)
        assert chosen.text.startswith("C'est noté : Ordinateur portable Lenovo ThinkPad T14 Gen 4 à 1\u202f449,00 €")
        assert ask.text == "Combien en voulez-vous ? (un nombre entier, par exemple 2)"
        for bad, reask in (("beaucoup", "Combien exactement ?"), ("0", "La quantité doit être"),
                           ("-3", "La quantité doit être"), ("1000000000", "Il n'en reste que 5 en stock.")):
            [answer] = await bot.say(user, bad)
            assert answer.text.startswith(reask), (bad, answer.text)
        [ask] = await bot.say(user, "2")
        assert ask.text == "À quelle adresse faut-il livrer ?"
        [summary] = await bot.say(user, "12 rue de la Paix, 75002 Paris")
        assert "2 × Ordinateur portable Lenovo ThinkPad T14 Gen 4 (ORD-LEN-T14) à 1\u202f449,00 €\nTotal : 2\u202f898,00 €" in summary.text
        before = await press(bot, user, summary, "Confirmer")
        placed, offer = (await bot.wait(user, before + 2))[before:before + 2]
        assert placed.text.startswith("Commande CMD-") and "confirmée" in placed.text
        assert offer.text.startswith("Souhaitez-vous recevoir nos nouveautés et promotions ici ?"), "a first order"
        before = await press(bot, user, offer, "Oui, je veux les recevoir")
        assert (await bot.wait(user, before + 1))[-1].text.startswith("C'est noté : vous recevrez nos nouveautés")
        number = placed.text.split()[1]
        [status] = await bot.say(user, "où en est ma commande ?")
        assert status.text.startswith(f"Vos dernières commandes :\n• {number}")
        [choice] = await bot.say(user, "je veux annuler ma commande")
        before = await press(bot, user, choice, choice.button_titles[0])
        cancelled = (await bot.wait(user, before + 1))[-1]
        assert cancelled.text == f"La commande {number} est annulée. Rien ne vous sera facturé."
    with crm(stack) as s:
        assert s.scalar(select(Order.status).where(Order.number == number)) == "cancelled"
        assert s.scalar(select(Product.stock).where(Product.sku == "ORD-LEN-T14")) >= 5


async def test_stopping_an_order_midway_records_nothing(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        await bot.say(user, "je veux commander")
        await bot.say(user, "la souris MX Master", expect=2)
        [stopped] = await bot.say(user, "non")
        assert stopped.text == "D'accord, j'arrête là. Rien n'a été enregistré."
        [answer] = await bot.say(user, "où en est ma commande ?")
    assert answer.text == "Vous n'avez pas encore passé de commande."


async def test_a_complaint_in_english_through_buttons(stack):
    user = client("en")
    async with BotHarness(stack.settings) as bot:
        [ask_order] = await bot.say(user, "I want to make a complaint")
        assert ask_order.text.startswith("Is your complaint about an order?")
        before = await press(bot, user, ask_order, "Not about an order")
        ask_category = (await bot.wait(user, before + 1))[-1]
        assert ask_category.text == "What kind of problem is it?"
        before = await press(bot, user, ask_category, "Service")
        ask_description = (await bot.wait(user, before + 1))[-1]
        assert ask_description.text == "Please describe the problem in a few sentences."
        [recorded] = await bot.say(user, "Nobody answered my emails for two weeks, this is unacceptable.")
        assert recorded.text.startswith("Your complaint REC-")
        assert recorded.text.endswith("It is handled as a priority: our managers have been alerted.")
        ticket = recorded.text.split()[2]
        [status] = await bot.say(user, f"what is the status of my complaint {ticket}?")
        assert status.text.startswith(f"Complaint {ticket} — ") and "being handled" in status.text
    with crm(stack) as s:
        complaint = s.scalar(select(Complaint).where(Complaint.number == ticket))
        assert (complaint.category, complaint.severity) == ("service", "high")


async def test_a_complaint_answered_in_words_with_a_question_in_the_middle(stack):
    """What a new client types at the category question: the word, not a button. A real question
    there is answered and the form goes on."""
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        [ask_order] = await bot.say(user, "je veux faire une réclamation")
        assert ask_order.text.startswith("Votre réclamation concerne-t-elle une commande ?")
        [ask_category] = await bot.say(user, "non")
        assert ask_category.text == "De quel type de problème s'agit-il ?"
        answer, again = await bot.say(user, "vous livrez en Belgique ?", expect=2)
        assert answer.text.startswith("Livraison en France métropolitaine, en Belgique")
        assert again.text == "De quel type de problème s'agit-il ?"
        [ask_description] = await bot.say(user, "livraison")
        assert ask_description.text == "Décrivez-moi le problème en quelques phrases, s'il vous plaît."
        [recorded] = await bot.say(user, "Le colis est arrivé avec trois jours de retard et le carton était ouvert.")
        assert recorded.text.startswith("Votre réclamation REC-")
        ticket = recorded.text.split()[2]
    with crm(stack) as s:
        complaint = s.scalar(select(Complaint).where(Complaint.number == ticket))
        assert complaint.category == "delivery"


async def test_the_product_and_count_of_the_first_message_fill_the_order(stack):
    user = client("fr")
    async with BotHarness(stack.settings) as bot:
        chosen, ask = await bot.say(user, "Je voudrais acheter 3 souris sans fil", expect=2)
        assert chosen.text.startswith("C'est noté : Souris sans fil Logitech MX Master 3S")
        assert ask.text == "À quelle adresse faut-il livrer ?", "the count was given: no quantity question"
        [recap] = await bot.say(user, "12 rue de la République, 69002 Lyon")
        assert "3 × Souris sans fil Logitech MX Master 3S" in recap.text


async def test_several_products_listed_with_the_count_kept(stack):
    user = client("en")
    async with BotHarness(stack.settings) as bot:
        [which] = await bot.say(user, "I want to buy two monitors")
        assert which.text == "Several products match. Which one do you want?"
        before = await press(bot, user, which, "Écran Dell P2423D 24 pouces")
        chosen, ask = (await bot.wait(user, before + 2))[before:]
        assert chosen.text.startswith("Noted: Écran Dell P2423D")
        assert ask.text == "Which address should we deliver to?", "the count was given: no quantity question"
        [recap] = await bot.say(user, "12 rue de la République, 69002 Lyon")
        assert "2 × Écran Dell P2423D 24 pouces" in recap.text


async def test_policy_questions_in_both_languages(stack):
    fr, en = client("fr"), client("en")
    async with BotHarness(stack.settings) as bot:
        [delivery] = await bot.say(fr, "quels sont vos délais de livraison ?")
        [payment] = await bot.say(en, "how can I pay?")
        [returns] = await bot.say(fr, "comment retourner un produit ?")
        [contact] = await bot.say(en, "what are your opening hours?")
    assert delivery.text.startswith("Livraison en France métropolitaine")
    assert payment.text.startswith("We accept card, bank transfer")
    assert returns.text.startswith("Vous disposez de 30 jours")
    assert contact.text.startswith("Bureau Plus — 12 rue des Entrepreneurs")


async def test_products_absent_out_of_stock_and_added_after_training(stack):
    user = client("fr")
    with crm(stack) as s:
        import_catalog(s, "sku,name,category,description,price,stock\n"
                          "FOU-PLA-A3,Plastifieuse GBC A3,Fournitures de bureau,Pochettes 80 à 125 microns,89.00,4\n")
    async with BotHarness(stack.settings) as bot:
        [absent] = await bot.say(user, "vous vendez des réfrigérateurs ?")
        [missing] = await bot.say(user, "avez-vous l'EliteBook 840 ?")
        [new] = await bot.say(user, "avez-vous une plastifieuse ?")
    assert absent.text.startswith("Je ne trouve pas « vous vendez des réfrigérateurs ? » dans notre catalogue")
    assert "Parler à un conseiller" in absent.button_titles
    assert "Stock : en rupture de stock" in missing.text and "Ce produit est en rupture." in missing.text
    assert new.text.startswith("Plastifieuse GBC A3 (FOU-PLA-A3)\nPrix : 89,00 €")


async def test_a_catalogue_nobody_trained_on(stack):
    """Products of a company's own catalogue, named as clients write them, whatever intent the
    model guesses; a product the company does not sell gets an honest answer, never a neighbour."""
    user = client("fr")
    with crm(stack) as s:
        import_catalog(s, "sku,name,category,description,price,stock\n"
                          "BUR-SUR-STA10,Surligneurs Stabilo Boss Original (étui de 10),Écriture,Fluo,12.40,40\n"
                          "MOB-TAB-QUA240,Table de réunion Quadra 240x120 cm,Mobilier de bureau,10 personnes,689.00,2\n"
                          "IMP-TON-KYO1160,Toner Kyocera TK-1160 noir,Consommables,7 200 pages,89.00,12\n"
                          "PAP-RAM-CLA,Ramette Clairefontaine Clairalfa A4 80 g,Papier,500 feuilles,5.90,300\n")
    async with BotHarness(stack.settings) as bot:
        [ream] = await bot.say(user, "ramette Clairefontaine Clairalfa")
        [ink] = await bot.say(client("en"), "ink bottles for ecotank")
        [marker] = await bot.say(user, "surligneur stabillo boss")
        [table] = await bot.say(user, "table de reunion quadra 240")
        [toner] = await bot.say(user, "toner TK1160")
        [projector] = await bot.say(user, "je cherche un vidéoprojecteur pour la salle de réunion")
    # the two Clairefontaine reams (the demo catalogue has one), the one named first: no order form
    assert ream.text.startswith("Voici ce que j'ai trouvé :\n• Ramette Clairefontaine Clairalfa A4 80 g (PAP-RAM-CLA)")
    assert ink.text.startswith("Bouteilles d'encre Epson 104 (pack 4 couleurs) (CON-EPS-104)"), "found by meaning"
    assert marker.text.startswith("Surligneurs Stabilo Boss Original (étui de 10) (BUR-SUR-STA10)")
    assert table.text.startswith("Table de réunion Quadra 240x120 cm (MOB-TAB-QUA240)")
    assert toner.text.startswith("Toner Kyocera TK-1160 noir (IMP-TON-KYO1160)")
    assert projector.text.startswith("Je ne trouve pas « je cherche un vidéoprojecteur pour la salle de réunion »")
    assert "Quadra" not in projector.text


async def test_another_clients_order_number_is_not_revealed(stack):
    owner, other = client("fr"), client("fr")
    async with BotHarness(stack.settings) as bot:
        await bot.say(owner, "je veux commander")
        await bot.say(owner, "CON-PAP-A4-80", expect=2)
        await bot.say(owner, "3")
        summary = (await bot.say(owner, "8 boulevard Haussmann, 75009 Paris"))[0]
        before = await press(bot, owner, summary, "Confirmer")
        number = (await bot.wait(owner, before + 2))[before].text.split()[1]
        [answer] = await bot.say(other, f"où en est la commande {number} ?")
        [cancel] = await bot.say(other, f"annuler la commande {number}")
    assert answer.text == f"Je ne trouve pas de commande {number} à votre nom. Vérifiez le numéro (par exemple CMD-000123)."
    assert cancel.text == answer.text


async def test_an_order_in_english_from_a_product_card(stack):
    user = client("en")
    async with BotHarness(stack.settings) as bot:
        [card] = await bot.say(user, "how much is the Logitech MX Keys keyboard?")
        assert card.text.startswith("Clavier sans fil Logitech MX Keys (PER-LOG-MXK)\nPrice: €119.00")
        before = await press(bot, user, card, "Order this product")
        chosen, ask = (await bot.wait(user, before + 2))[-2:]
        assert chosen.text.startswith("Noted: Clavier sans fil Logitech MX Keys at €119.00")
        assert ask.text == "How many would you like? (a whole number, for example 2)"
        [ask_address] = await bot.say(user, "two")
        assert ask_address.text == "Which address should we deliver to?"
        [summary] = await bot.say(user, "10 Downing Street, London SW1A 2AA")
        assert "Total: €238.00" in summary.text and summary.button_titles == ["Confirm", "Cancel"]
        before = await press(bot, user, summary, "Cancel")
        cancelled = (await bot.wait(user, before + 1))[-1]
    assert cancelled.text == "Cancelled: nothing was ordered."
