"""Orders, complaints, product details, promotions and policy answers, as Rasa runs the actions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rasa_sdk.events import FollowupAction, SlotSet
from sqlalchemy import select

from actions.catalog import ActionProductInfo, ActionPromotions
from actions.company import ActionPolicyAnswer, ActionSubscribe, ActionUnsubscribe
from actions.complaints import ActionAskComplaintOrder, ActionStartComplaint, ActionSubmitComplaint, ValidateComplaintForm
from actions.orders import (
    ActionAskOrderAddress,
    ActionCancelOrder,
    ActionOrderStatus,
    ActionOrderSummary,
    ActionPlaceOrder,
    ActionStartOrder,
    ValidateOrderForm,
)
from crm.clients import TelegramProfile, register_client
from crm.consent import has_consent
from crm.db import unit_of_work
from crm.models import Client, Complaint, Notification, Product
from crm.orders import place_order, set_order_status
from crm.promotions import add_promotion
from crm.promotions import today as promotions_today
from crm.settings import install as install_settings
from crm.staff import add_staff
from tests.test_actions import crm, run, tracker  # noqa: F401  (fixture)

WEDNESDAY_10H_PARIS = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)

ALICE, BOB = "1001", "1002"


@pytest.fixture
def shop(crm):  # noqa: F811
    with unit_of_work(crm) as s:
        register_client(s, TelegramProfile(1001, "Alice", language_code="fr"))
        register_client(s, TelegramProfile(1002, "Bob", language_code="en"))
        add_staff(s, 9001, "manager", "Claire")
    return crm


def client(s, telegram_id):
    return s.scalar(select(Client).where(Client.telegram_id == int(telegram_id)))


def sku_id(s, sku):
    return s.scalar(select(Product.id).where(Product.sku == sku))


def order_for(engine, telegram_id, sku="PER-LOG-MXM3", quantity=1, status=None):
    with unit_of_work(engine) as s:
        order = place_order(s, client(s, telegram_id), sku_id(s, sku), quantity, "12 rue de la Paix, 75002 Paris")
        if status:
            set_order_status(s, order.number, status)
        return order.number


async def validate(action, slot, value, **kw):
    t = tracker(str(value), slots=kw.pop("slots", {}), sender=kw.pop("sender", ALICE), **kw)
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    result = await getattr(action, f"validate_{slot}")(value, dispatcher, t, {})
    return result, [m.get("text") for m in dispatcher.messages], dispatcher.messages


# --- products and promotions ---------------------------------------------------------------------


async def test_product_card_applies_the_running_promotion_and_suggests_related(shop):
    with unit_of_work(shop) as s:
        add_promotion(s, title_fr="Rentrée", title_en="Back to school", discount_percent=Decimal(10),
                      starts_on=promotions_today(), ends_on=promotions_today() + timedelta(days=7), category="Imprimantes")
    [card], _ = await run(ActionProductInfo(), tracker("prix de la HP M404dn ?", intent="ask_product_info"))
    text = card["text"]
    assert text.startswith("Imprimante laser HP LaserJet Pro M404dn (IMP-HP-M404)\nPrix : 260,10 € au lieu de 289,00 € (−10 % : Rentrée)")
    assert "Stock : en stock (14)" in text and "Garantie : 24 mois" in text and "recto verso" in text
    assert "Souvent choisis avec ce produit :" in text
    assert card["buttons"][0] == {"title": "Commander ce produit", "payload": '/place_order{"product": "IMP-HP-M404"}'}


async def test_product_bought_together_comes_first_among_related(shop):
    with unit_of_work(shop) as s:
        alice = client(s, ALICE)
        from crm.models import Order, OrderLine
        order = Order(client_id=alice.id, delivery_address="x", total=Decimal(1), number="CMD-777777")
        s.add(order)
        s.flush()
        s.add_all([OrderLine(order_id=order.id, product_id=sku_id(s, "IMP-HP-M404"), quantity=1, unit_price=1),
                   OrderLine(order_id=order.id, product_id=sku_id(s, "CON-HP-59A"), quantity=2, unit_price=1)])
    t = tracker("/ask_product_info", intent="ask_product_info", entities=[{"entity": "product", "value": "IMP-HP-M404"}])
    [card], _ = await run(ActionProductInfo(), t)
    related = card["text"].split("Souvent choisis avec ce produit :\n")[1].splitlines()
    assert related[0].startswith("• Toner HP 59A noir (CON-HP-59A)")


async def test_several_products_match_gives_buttons(shop):
    [message], _ = await run(ActionProductInfo(), tracker("prix de l'imprimante laser", intent="ask_product_info"))
    assert message["text"] == "Plusieurs produits correspondent. Lequel ?"
    assert len(message["buttons"]) >= 2


async def test_promotions_list_and_none(shop):
    from crm.models import Promotion

    with unit_of_work(shop) as s:  # the demo's own promotions end early
        for promotion in s.scalars(select(Promotion)):
            promotion.ends_on = promotions_today() - timedelta(days=1)
    [message], _ = await run(ActionPromotions(), tracker("des promos ?", language="en", intent="ask_promotions"))
    assert message["text"].startswith("No promotion is running right now.")
    with unit_of_work(shop) as s:
        add_promotion(s, title_fr="Semaine écrans", title_en="Screen week", discount_percent=Decimal("12.5"),
                      starts_on=promotions_today(), ends_on=date(2099, 1, 31), category="Écrans",
                      text_fr="Sur tous les écrans.", text_en="On every screen.")
    [message], _ = await run(ActionPromotions(), tracker("des promos ?", language="en", intent="ask_promotions"))
    assert message["text"] == "Our current promotions:\n• Screen week: −12.5% on the Monitors range, until 31/01/2099. On every screen."


# --- policy answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["ask_delivery", "ask_payment", "ask_returns", "ask_contract", "ask_contact",
                                   "ask_loyalty", "book_meeting"])
async def test_policy_answers_in_both_languages(shop, topic):
    [fr], _ = await run(ActionPolicyAnswer(), tracker("?", intent=topic))
    [en], _ = await run(ActionPolicyAnswer(), tracker("?", language="en", intent=topic))
    assert fr["text"] and en["text"] and fr["text"] != en["text"]


async def test_policy_answers_follow_the_profile_without_retraining(shop, tmp_path, monkeypatch):
    import yaml

    from crm.settings import ROOT

    profile = yaml.safe_load((ROOT / "company.yml").read_text())
    profile["answers"]["ask_delivery"]["fr"] = "Livraison gratuite partout, en 2 heures."
    path = tmp_path / "company.yml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    monkeypatch.setenv("COMPANY_PROFILE", str(path))
    install_settings(None)  # read again, with it
    [message], _ = await run(ActionPolicyAnswer(), tracker("délais ?", intent="ask_delivery"))
    assert message["text"] == "Livraison gratuite partout, en 2 heures."


# --- orders --------------------------------------------------------------------------------------


async def test_a_product_named_when_ordering_is_taken_at_once(shop):
    _, events = await run(ActionStartOrder(), tracker("je veux commander le thinkpad", intent="place_order"))
    assert SlotSet("order_product", "ORD-LEN-T14") in events
    _, events = await run(ActionStartOrder(), tracker("je veux commander", intent="place_order"))
    assert all(e["value"] is None for e in events)


async def test_the_product_and_count_of_the_first_message_fill_the_order_form(shop):
    _, events = await run(ActionStartOrder(), tracker("je voudrais commander 2 ThinkPad", intent="place_order"))
    assert SlotSet("order_product", "ORD-LEN-T14") in events and SlotSet("order_quantity", "2") in events
    _, events = await run(ActionStartOrder(), tracker("Je voudrais acheter 3 souris sans fil", intent="place_order"))
    assert SlotSet("order_product", "PER-LOG-MXM3") in events and SlotSet("order_quantity", "3") in events
    # Several matches: the form lists them, the count is kept for the one chosen.
    _, events = await run(ActionStartOrder(), tracker("I want to buy two monitors", intent="place_order"))
    assert SlotSet("order_product", "I want to buy two monitors") in events
    assert SlotSet("order_quantity", "2") in events
    # A size is not a count, an article is not a count, a button's payload is not a sentence.
    _, events = await run(ActionStartOrder(), tracker("je veux un écran 27 pouces", intent="place_order"))
    assert not any(e["name"] == "order_quantity" for e in events if e.get("event") == "slot")
    _, events = await run(ActionStartOrder(), tracker('/place_order{"product": "PER-LOG-MXM3"}', intent="place_order",
                                                      entities=[{"entity": "product", "value": "PER-LOG-MXM3"}]))
    assert events == [SlotSet("order_product", "PER-LOG-MXM3")]


async def test_a_product_only_named_gets_its_card_not_an_order_form(shop):
    """The model took "ramette Clairefontaine" for an order: a client naming a product asks about
    it; the card answers, with an Order button, and the rule's form does not start."""
    messages, events = await run(ActionStartOrder(), tracker("souris logitech mx master", intent="place_order"))
    assert events == [FollowupAction("action_listen")]
    assert "MX Master 3S" in messages[0]["text"] and "99" in messages[0]["text"]
    assert any(b["payload"].startswith("/place_order") for b in messages[0]["buttons"])
    # Order wording or a count: an order.
    for text in ("je prends la souris logitech mx master", "2 souris logitech mx master", "I need the mx master mouse"):
        _, events = await run(ActionStartOrder(), tracker(text, intent="place_order"))
        assert SlotSet("order_product", "PER-LOG-MXM3") in events, text


async def test_a_count_given_before_the_choice_meets_the_stock_of_the_product_chosen(shop):
    form = ValidateOrderForm()
    result, texts, _ = await validate(form, "order_quantity", "2", slots={"order_product": "I want to buy two monitors"})
    assert result == {"order_quantity": "2"} and texts == [], "kept until a product is chosen"
    result, texts, _ = await validate(form, "order_product", "ORD-LEN-T14", slots={"order_quantity": "9"})
    assert result == {"order_product": "ORD-LEN-T14", "order_quantity": None, "choices_shown": True}
    assert texts[1] == "Il n'en reste que 5 en stock. Combien en voulez-vous (5 au plus) ?"
    result, texts, _ = await validate(form, "order_product", "ORD-LEN-T14", slots={"order_quantity": "2"})
    assert result == {"order_product": "ORD-LEN-T14", "choices_shown": False} and len(texts) == 1


async def test_order_product_validation(shop):
    form = ValidateOrderForm()
    result, texts, _ = await validate(form, "order_product", "ThinkPad")
    assert result == {"order_product": "ORD-LEN-T14", "choices_shown": False}
    assert texts == ["C'est noté : Ordinateur portable Lenovo ThinkPad T14 Gen 4 à 1\u202f449,00 €, 5 en stock."]
    result, texts, messages = await validate(form, "order_product", "imprimante laser")
    assert result["order_product"] is None and texts[0] == "Plusieurs produits correspondent. Lequel voulez-vous ?"
    assert all(b["payload"].startswith('/inform{"product": ') for b in messages[0]["buttons"])
    result, texts, _ = await validate(form, "order_product", "réfrigérateur")
    assert result["order_product"] is None and texts[0].startswith("Je ne trouve pas ce produit")
    result, texts, messages = await validate(form, "order_product", "EliteBook 840")
    assert result["order_product"] is None
    assert texts[0] == "Ordinateur portable HP EliteBook 840 G10 est en rupture de stock. Voici des produits disponibles du même rayon :"
    assert len(messages[0]["buttons"]) == 4


@pytest.mark.parametrize("answer,expected", [
    ("beaucoup", "Combien exactement ? Indiquez un nombre entier, par exemple 2."),
    ("0", "La quantité doit être un nombre entier supérieur à zéro. Combien en voulez-vous ?"),
    ("-3", "La quantité doit être un nombre entier supérieur à zéro. Combien en voulez-vous ?"),
    ("10^9", "Il n'en reste que 5 en stock. Combien en voulez-vous (5 au plus) ?"),
    ("6", "Il n'en reste que 5 en stock. Combien en voulez-vous (5 au plus) ?"),
    ("2,5", "Combien exactement ? Indiquez un nombre entier, par exemple 2."),
])
async def test_bad_quantities_get_a_clear_reask(shop, answer, expected):
    result, texts, _ = await validate(ValidateOrderForm(), "order_quantity", answer, slots={"order_product": "ORD-LEN-T14"})
    assert result["order_quantity"] is None and texts == [expected]


async def test_good_quantities(shop):
    for answer, value in (("2", "2"), ("trois", "3"), ("5 unités", "5")):
        result, texts, _ = await validate(ValidateOrderForm(), "order_quantity", answer, slots={"order_product": "ORD-LEN-T14"})
        assert result["order_quantity"] == value and texts == []


async def test_address_validation_and_the_last_address_is_offered(shop):
    result, texts, _ = await validate(ValidateOrderForm(), "order_address", "ici")
    assert result["order_address"] is None and texts[0].startswith("Cette adresse semble incomplète")
    result, _, _ = await validate(ValidateOrderForm(), "order_address", " 5  avenue Louise, 1050 Bruxelles ")
    assert result["order_address"] == "5 avenue Louise, 1050 Bruxelles"
    [ask], _ = await run(ActionAskOrderAddress(), tracker("", sender=ALICE))
    assert ask["text"] == "À quelle adresse faut-il livrer ?"
    order_for(shop, ALICE)
    [ask], _ = await run(ActionAskOrderAddress(), tracker("", sender=ALICE))
    assert ask["text"].endswith("Votre dernière adresse : 12 rue de la Paix, 75002 Paris")
    assert ask["buttons"][0]["payload"] == '/inform{"address": "12 rue de la Paix, 75002 Paris"}'


ORDER_SLOTS = {"order_product": "IMP-HP-M404", "order_quantity": "3", "order_address": "5 avenue Louise, 1050 Bruxelles"}


async def test_summary_then_confirmation_places_the_order(shop):
    [summary], _ = await run(ActionOrderSummary(), tracker("", slots=ORDER_SLOTS))
    assert summary["text"] == ("Récapitulatif de votre commande :\n3 × Imprimante laser HP LaserJet Pro M404dn "
                               "(IMP-HP-M404) à 289,00 €\nTotal : 867,00 €\nLivraison : 5 avenue Louise, 1050 "
                               "Bruxelles\n\nJe confirme la commande ?")
    assert [b["payload"] for b in summary["buttons"]] == ["/affirm", "/deny"]
    [placed, offer], events = await run(ActionPlaceOrder(), tracker("/affirm", slots=ORDER_SLOTS))
    assert placed["text"].startswith("Commande CMD-")
    assert "3 × Imprimante laser HP LaserJet Pro M404dn, total 867,00 €" in placed["text"]
    assert SlotSet("order_product", None) in events
    with unit_of_work(shop) as s:
        assert s.scalar(select(Product.stock).where(Product.sku == "IMP-HP-M404")) == 11
    assert offer["text"].startswith("Souhaitez-vous recevoir nos nouveautés et promotions ici ?")
    assert offer["buttons"][0]["payload"] == '/subscribe_promotions{"consent_source": "button"}'
    [second], _ = await run(ActionPlaceOrder(), tracker("/affirm", slots=ORDER_SLOTS))
    assert second["text"].startswith("Commande CMD-"), "asked after the first order only"


async def test_the_consent_button_records_its_source(shop):
    from crm.consent import has_consent
    from crm.models import Consent

    from actions.company import ActionSubscribe

    [message], _ = await run(ActionSubscribe(), tracker('/subscribe_promotions{"consent_source": "button"}',
                                                        intent="subscribe_promotions",
                                                        entities=[{"entity": "consent_source", "value": "button"}]))
    assert message["text"].startswith("C'est noté : vous recevrez nos nouveautés")
    with unit_of_work(shop) as s:
        assert s.scalar(select(Consent.source)) == "button"
        assert has_consent(s, s.scalar(select(Client).where(Client.telegram_id == int(ALICE))))


async def test_stock_taken_meanwhile_is_explained_and_nothing_ordered(shop):
    with unit_of_work(shop) as s:
        s.scalar(select(Product).where(Product.sku == "IMP-HP-M404")).stock = 2
    [message], _ = await run(ActionPlaceOrder(), tracker("/affirm", slots=ORDER_SLOTS))
    assert message["text"].startswith("Désolé, entre-temps le stock a changé : il n'en reste que 2.")


async def test_order_status_shows_only_ones_own_orders(shop):
    [message], _ = await run(ActionOrderStatus(), tracker("où en est ma commande ?", intent="order_status"))
    assert message["text"] == "Vous n'avez pas encore passé de commande."
    mine = order_for(shop, ALICE, quantity=2)
    bobs = order_for(shop, BOB)
    [message], _ = await run(ActionOrderStatus(), tracker("mes commandes", intent="order_status"))
    assert message["text"].startswith("Vos dernières commandes :\n• " + mine) and bobs not in message["text"]
    [message], _ = await run(ActionOrderStatus(), tracker(f"où en est {mine} ?", intent="order_status"))
    assert message["text"].startswith(f"Commande {mine} du ") and "2 × Souris sans fil Logitech MX Master 3S" in message["text"]
    [foreign], _ = await run(ActionOrderStatus(), tracker(f"où en est {bobs} ?", intent="order_status"))
    [missing], _ = await run(ActionOrderStatus(), tracker("où en est CMD-999999 ?", intent="order_status"))
    assert foreign["text"] == f"Je ne trouve pas de commande {bobs} à votre nom. Vérifiez le numéro (par exemple CMD-000123)."
    assert missing["text"] == foreign["text"].replace(bobs, "CMD-999999"), "another client's order looks like no order"


async def test_a_product_named_in_a_status_question_or_a_complaint_finds_that_order(shop):
    mice = order_for(shop, ALICE, sku="PER-LOG-MXM3")
    screen = order_for(shop, ALICE, sku="ECR-DEL-P2423")
    order_for(shop, BOB, sku="ORD-LEN-T14")
    [message], _ = await run(ActionOrderStatus(), tracker("où en est ma commande de souris MX Master ?", intent="order_status"))
    assert message["text"].startswith(f"Commande {mice} du ") and screen not in message["text"]
    [message], _ = await run(ActionOrderStatus(), tracker("where is my Dell screen?", intent="order_status", language="en"))
    assert message["text"].startswith(f"Order {screen} ")
    [message], _ = await run(ActionOrderStatus(), tracker("où en est mon ThinkPad ?", intent="order_status"))
    assert message["text"].startswith("Vos dernières commandes :") and mice in message["text"], \
        "Bob's ThinkPad is not Alice's: her own orders are listed"
    _, events = await run(ActionStartComplaint(), tracker(
        "l'écran Dell que j'ai reçu est arrivé fissuré", intent="complain"))
    assert SlotSet("complaint_order", screen) in events


async def test_cancel_own_order_until_shipped(shop):
    mine = order_for(shop, ALICE, quantity=4)
    shipped = order_for(shop, ALICE, status="shipped")
    bobs = order_for(shop, BOB)
    [choice], _ = await run(ActionCancelOrder(), tracker("je veux annuler ma commande", intent="cancel_order"))
    assert choice["text"] == "Quelle commande voulez-vous annuler ?"
    assert [b["payload"] for b in choice["buttons"]] == [f'/cancel_order{{"order_number": "{mine}"}}']
    [foreign], _ = await run(ActionCancelOrder(), tracker(f"annuler {bobs}", intent="cancel_order"))
    assert foreign["text"].startswith(f"Je ne trouve pas de commande {bobs}")
    [late], _ = await run(ActionCancelOrder(), tracker(f"annuler {shipped}", intent="cancel_order"))
    assert late["text"].startswith(f"La commande {shipped} est expédiée : elle ne peut plus être annulée.")
    [done], _ = await run(ActionCancelOrder(), tracker("/cancel_order", intent="cancel_order",
                                                       entities=[{"entity": "order_number", "value": mine}]))
    assert done["text"] == f"La commande {mine} est annulée. Rien ne vous sera facturé."
    with unit_of_work(shop) as s:
        assert s.scalar(select(Product.stock).where(Product.sku == "PER-LOG-MXM3")) == 45 - 1 - 1


# --- complaints ----------------------------------------------------------------------------------


async def test_a_descriptive_first_message_is_kept(shop):
    _, events = await run(ActionStartComplaint(), tracker("mon colis est arrivé abîmé et en retard", intent="complain"))
    assert SlotSet("complaint_description", "mon colis est arrivé abîmé et en retard") in events
    _, events = await run(ActionStartComplaint(), tracker("réclamation", intent="complain"))
    assert all(e["value"] is None for e in events)


async def test_complaint_order_must_be_the_clients_own(shop):
    mine, bobs = order_for(shop, ALICE), order_for(shop, BOB)
    form = ValidateComplaintForm()
    assert (await validate(form, "complaint_order", f"c'est pour {mine}"))[0] == {"complaint_order": mine}
    result, texts, _ = await validate(form, "complaint_order", bobs)
    assert result["complaint_order"] is None and texts[0].startswith(f"Je ne trouve pas la commande {bobs} parmi les vôtres")
    assert (await validate(form, "complaint_order", "non"))[0] == {"complaint_order": "none"}
    assert (await validate(form, "complaint_order", "none"))[0] == {"complaint_order": "none"}
    [ask], _ = await run(ActionAskComplaintOrder(), tracker("", sender=ALICE))
    assert [b["payload"] for b in ask["buttons"]][-1] == '/inform{"complaint_order": "none"}'
    assert mine in ask["buttons"][0]["title"]


async def test_complaint_category_and_description(shop):
    form = ValidateComplaintForm()
    assert (await validate(form, "complaint_category", "delivery"))[0] == {"complaint_category": "delivery"}
    assert (await validate(form, "complaint_category", "la facture"))[0] == {"complaint_category": "invoice"}
    assert (await validate(form, "complaint_category", "bof"))[0] == {"complaint_category": None}
    result, texts, _ = await validate(form, "complaint_description", "nul")
    assert result["complaint_description"] is None
    assert texts == ["Pouvez-vous m'en dire un peu plus ? Quelques mots de description suffisent."]


@pytest.mark.time_machine(WEDNESDAY_10H_PARIS)  # during opening hours
async def test_submitting_a_severe_complaint_alerts_the_managers(shop):
    mine = order_for(shop, BOB)
    slots = {"complaint_order": mine, "complaint_category": "product",
             "complaint_description": "The charger caught fire, this is dangerous!"}
    [message, handed_over], events = await run(ActionSubmitComplaint(), tracker("", language="en", slots=slots, sender=BOB))
    assert message["text"].startswith("Your complaint REC-")
    assert handed_over["text"].startswith("I am passing your request to a manager")
    assert message["text"].endswith("It is handled as a priority: our managers have been alerted.")
    with unit_of_work(shop) as s:
        complaint = s.scalar(select(Complaint))
        assert complaint.severity == "critical" and complaint.order_id is not None
        alert = s.scalars(select(Notification).where(Notification.chat_id == 9001).order_by(Notification.id)).first()
        assert alert.text.startswith(f"⚠️ Réclamation critique {complaint.number} de Bob ({mine})")
    [status], _ = await run(ActionOrderStatus(), tracker("where does my complaint stand?", language="en", sender=BOB))
    assert status["text"].startswith("Your complaints:\n• REC-") and "being handled" in status["text"]


async def test_consent_through_the_conversation(shop):
    [message], _ = await run(ActionSubscribe(), tracker("abonnez-moi", intent="subscribe_promotions"))
    assert message["text"].startswith("C'est noté : vous recevrez nos nouveautés")
    with unit_of_work(shop) as s:
        assert has_consent(s, client(s, ALICE))
    await run(ActionUnsubscribe(), tracker("stop pub", intent="unsubscribe_promotions"))
    with unit_of_work(shop) as s:
        assert not has_consent(s, client(s, ALICE))


@pytest.mark.parametrize("text,describes", [
    ("I want to make a complaint", False), ("je veux faire une réclamation", False),
    ("j'ai une réclamation à faire", False), ("mon colis est arrivé abîmé et en retard", True),
    ("the printer I received does not print at all", True)])
def test_a_request_to_complain_is_not_taken_for_a_description(text, describes):
    from actions.parsing import describes_a_problem

    assert describes_a_problem(text) is describes


@pytest.mark.time_machine(WEDNESDAY_10H_PARIS)
async def test_asking_for_a_person_opens_one_handoff(shop):
    from actions.desk import ActionRequestHuman
    from crm.models import Handoff

    [opened], _ = await run(ActionRequestHuman(), tracker("un conseiller svp", intent="request_human"))
    assert opened["text"].startswith("Je transmets votre demande à un conseiller")
    [again], _ = await run(ActionRequestHuman(), tracker("allo ?", intent="request_human"))
    assert again["text"].startswith("Votre demande est déjà transmise à un conseiller.")
    with unit_of_work(shop) as s:
        assert len(s.scalars(select(Handoff)).all()) == 1


@pytest.mark.time_machine(datetime(2026, 12, 4, 17, 55, tzinfo=timezone.utc))  # Friday 18:55 in Paris: closed
async def test_outside_opening_hours_the_client_is_told_when(shop):
    from actions.desk import ActionRequestHuman

    [message], _ = await run(ActionRequestHuman(), tracker("human please", language="en", intent="request_human"))
    assert message["text"] == ("Our managers are away right now. Your request is recorded: a manager will answer "
                               "you here when we reopen, on Monday 7 December at 09:00. You can leave your message "
                               "now. (\"cancel\" to withdraw your request.)")


@pytest.mark.time_machine(WEDNESDAY_10H_PARIS)
async def test_two_misunderstandings_in_a_row_hand_over(shop):
    from actions.desk import ActionRephraseOrHandOver

    fallback = {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    other = {"event": "user", "parse_data": {"intent": {"name": "greet"}}}
    once = tracker("zzz", intent="nlu_fallback")
    once.events = [other, {"event": "bot"}, fallback]
    [message], _ = await run(ActionRephraseOrHandOver(), once)
    assert message["text"] == "Je ne suis pas sûr d'avoir compris. Pourriez-vous reformuler votre question ?"
    twice = tracker("zzz", intent="nlu_fallback")
    twice.events = [fallback, {"event": "bot"}, fallback]
    [message], _ = await run(ActionRephraseOrHandOver(), twice)
    assert message["text"].startswith("Je n'arrive pas à vous comprendre, je préfère passer la main à un conseiller. "
                                      "Je transmets votre demande")


async def test_another_clients_complaint_number_is_not_revealed(shop):
    from crm.complaints import open_complaint

    with unit_of_work(shop) as s:
        ticket = open_complaint(s, client(s, BOB), "delivery", "Colis en retard de dix jours").number
    [foreign], _ = await run(ActionOrderStatus(), tracker(f"où en est ma réclamation {ticket} ?", intent="order_status"))
    [missing], _ = await run(ActionOrderStatus(), tracker("où en est ma réclamation REC-999999 ?", intent="order_status"))
    assert foreign["text"] == f"Je ne trouve pas de réclamation {ticket} à votre nom."
    assert missing["text"] == foreign["text"].replace(ticket, "REC-999999")
    [mine], _ = await run(ActionOrderStatus(), tracker(f"where does complaint {ticket} stand?", language="en", sender=BOB))
    assert mine["text"].startswith(f"Complaint {ticket} — ") and "being handled" in mine["text"]


async def test_a_product_name_the_model_never_saw_is_still_searched(shop):
    from actions.desk import ActionRephraseOrHandOver
    from crm.catalog import import_catalog

    with unit_of_work(shop) as s:
        import_catalog(s, "sku,name,category,description,price,stock\n"
                          "FOU-PLA-A3,Plastifieuse GBC A3,Fournitures de bureau,Pochettes,89.00,4\n")
    [message], _ = await run(ActionRephraseOrHandOver(), tracker("une plastifieuse ?", intent="nlu_fallback"))
    assert message["text"].startswith("Plastifieuse GBC A3 (FOU-PLA-A3)")
    [message], _ = await run(ActionRephraseOrHandOver(), tracker("zkqw vbnx", intent="nlu_fallback"))
    assert message["text"] == "Je ne suis pas sûr d'avoir compris. Pourriez-vous reformuler votre question ?"


# --- meetings --------------------------------------------------------------------------------------


@pytest.mark.time_machine(datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc), tick=False)  # Wednesday 8:00 Paris
async def test_a_second_booking_offers_to_move_the_meeting_instead(shop):
    from actions.meetings import ActionBookMeeting
    from crm.meetings import book, free_slots, slot_payload, upcoming

    with unit_of_work(shop) as s:
        slots = free_slots(s, client(s, ALICE), count=6)
        first = book(s, client(s, ALICE), slots[0]).id
    pressed = [{"entity": "meeting_slot", "value": slots[2].isoformat()}]
    [offer], _ = await run(ActionBookMeeting(), tracker("", intent="choose_slot", entities=pressed))
    assert offer["text"] == ("Vous avez déjà rendez-vous mercredi 2 décembre à 10 h 00 avec Claire : un seul à la "
                             "fois. Voulez-vous le déplacer au mercredi 2 décembre à 11 h 00 ?")
    assert [b["title"] for b in offer["buttons"]] == ["Oui, le déplacer", "Garder le mer. 02/12 10:00"]
    assert offer["buttons"][0]["payload"] == slot_payload(slots[2], first)
    with unit_of_work(shop) as s:
        assert [m.id for m in upcoming(s, client(s, ALICE))] == [first], "nothing booked yet"

    moving = pressed + [{"entity": "meeting_id", "value": str(first)}]
    [moved], _ = await run(ActionBookMeeting(), tracker("", intent="choose_slot", entities=moving))
    assert moved["text"].startswith("C'est déplacé : rendez-vous mercredi 2 décembre à 11 h 00 avec Claire.")
