"""Custom actions, run as Rasa runs them: a recorded tracker in, a CollectingDispatcher out."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog import ActionOutOfScope, ActionSearchCatalog
from actions.language import ValidateSlotMappings
from crm.catalog import import_catalog
from crm.db import unit_of_work
from crm.demo import load_demo_if_empty
from crm.settings import install as install_settings

DOMAIN = {"slots": {"language": {"mappings": [{"type": "custom"}]},
                    "first_name": {"mappings": [{"type": "custom"}]}}}


def tracker(text: str, language: str | None = "fr", entities=None, metadata=None, slots=None,
            intent: str = "ask_catalog", sender: str = "1001") -> Tracker:
    return Tracker(
        sender_id=sender,
        slots={"language": language, "first_name": None, **(slots or {})},
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.9},
                        "entities": entities or [], "metadata": metadata or {}},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest.fixture
def crm(engine, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    install_settings(None)  # read again, with it
    with unit_of_work(engine) as session:
        load_demo_if_empty(session)
    return engine


async def run(action, t: Tracker) -> tuple[list[dict], list]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, DOMAIN)
    return dispatcher.messages, events


async def test_printers_are_listed_with_prices_and_stock(crm):
    [message], events = await run(ActionSearchCatalog(), tracker("avez-vous des imprimantes ?"))
    lines = message["text"].splitlines()
    assert lines[0] == "Voici notre rayon Imprimantes :"
    assert "• Imprimante laser HP LaserJet Pro M404dn (IMP-HP-M404) — 289,00 € — en stock (14)" in lines
    assert lines[5] == "• Imprimante Epson EcoTank ET-2850 (IMP-EPS-ET2850) — 279,00 € — en rupture de stock"
    assert lines[-1] == "Touchez un produit pour le détail."
    assert message["buttons"][0]["payload"].startswith('/ask_product_info{"product": "IMP-')
    assert events == []


async def test_english_clients_get_english_prices(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("do you have printers?", language="en"))
    assert message["text"].startswith("Here is our Printers range:")
    assert "€289.00 — in stock (14)" in message["text"]


async def test_english_clients_read_the_ranges_in_english_and_press_them(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("/ask_catalog", language="en"))
    titles = {b["title"]: b["payload"] for b in message["buttons"]}
    assert "Laptops" in titles and "Ordinateurs portables" not in titles
    assert titles["Laptops"] == '/ask_catalog{"category": "Ordinateurs portables"}', "the key stays the category"
    t = tracker(titles["Laptops"], language="en",
                entities=[{"entity": "category", "value": "Ordinateurs portables"}])
    [listed], _ = await run(ActionSearchCatalog(), t)
    assert listed["text"].startswith("Here is our Laptops range:")
    [french], _ = await run(ActionSearchCatalog(), tracker("/ask_catalog"))
    assert "Ordinateurs portables" in [b["title"] for b in french["buttons"]]


async def test_a_category_without_an_english_label_is_shown_as_written(crm):
    with unit_of_work(crm) as session:
        import_catalog(session, "sku,name,category,description,price,stock\n"
                                "PLA-1,Plastifieuse GBC A3,Plastification,x,89.00,4\n")
    [message], _ = await run(ActionSearchCatalog(), tracker("/ask_catalog", language="en"))
    assert "Plastification" in [b["title"] for b in message["buttons"]]


async def test_a_category_button_lists_that_category(crm):
    t = tracker('/ask_catalog{"category":"Écrans"}', entities=[{"entity": "category", "value": "Écrans"}])
    [message], _ = await run(ActionSearchCatalog(), t)
    assert message["text"].startswith("Voici notre rayon Écrans :")
    assert message["text"].count("•") == 4


async def test_a_product_we_do_not_sell_is_never_invented(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("vous vendez des réfrigérateurs ?"))
    assert message["text"].startswith("Je ne trouve pas « vous vendez des réfrigérateurs ? »")
    assert "•" not in message["text"]
    assert "Imprimantes" in [b["title"] for b in message["buttons"]]
    assert message["buttons"][-1] == {"title": "Parler à un conseiller", "payload": "/request_human"}
    assert message["buttons"][0]["payload"].startswith('/ask_catalog{"category": ')


async def test_a_product_named_in_words_the_model_took_for_out_of_scope_is_answered(crm):
    """The company's own catalogue is not in the model's training: what it calls out of scope is
    checked against the catalogue first."""
    with unit_of_work(crm) as session:
        import_catalog(session, "sku,name,category,description,price,stock\n"
                                "CAI-GAU-3,Caisson mobile Gautier 3 tiroirs,Mobilier,Serrure,149.00,4\n"
                                "SUR-STA-10,Surligneurs Stabilo Boss (lot de 10),Écriture,Couleurs assorties,9.50,12\n")
    [listed], _ = await run(ActionOutOfScope(), tracker("caisson gautier 3 tiroirs", intent="out_of_scope"))
    assert listed["text"].splitlines()[1].startswith("• Caisson mobile Gautier 3 tiroirs (CAI-GAU-3)"), "named first"
    [card], _ = await run(ActionOutOfScope(), tracker("surligneur stabillo boss", intent="out_of_scope"))
    assert card["text"].startswith("Surligneurs Stabilo Boss")
    for question in ("quel temps fera-t-il demain ?", "éteins la lumière du salon", "raconte-moi une blague"):
        [answer], _ = await run(ActionOutOfScope(), tracker(question, intent="out_of_scope"))
        assert answer.get("response") == "utter_out_of_scope", question


async def test_price_and_stock_conditions_filter_the_answer(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("laptops under 700 euros", language="en"))
    assert message["text"].startswith("Ordinateur portable Asus ExpertBook B1 (ORD-ASU-B1)\nPrice: €649.00"), \
        "the one laptop under 700 euros: its card"
    [message], _ = await run(ActionSearchCatalog(), tracker("un écran à moins de 300 €"))
    assert "ECR-DEL-P2423" in message["text"] and "ECR-IIY-XU2294" in message["text"]
    assert "ECR-LG-27UP" not in message["text"] and "ECR-SAM-S34" not in message["text"]
    [none], _ = await run(ActionSearchCatalog(), tracker("un portable à moins de 300 €"))
    assert none["text"].startswith("Je n'ai rien de tel à 300,00 € ou moins. Le plus proche :\n• ")
    assert "(ORD-ASU-B1) — 649,00 €" in none["text"], "the cheapest laptop, said plainly"
    [stocked], _ = await run(ActionSearchCatalog(), tracker("ordinateurs portables en stock"))
    assert "ORD-HP-840" not in stocked["text"], "out of stock, left out when the client asks for stock"


async def test_the_catalogue_button_offers_the_ranges(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("/ask_catalog"))
    assert message["text"] == "Voici nos rayons. Lequel vous intéresse ?"
    assert len(message["buttons"]) == 8


async def test_out_of_stock_product_offers_alternatives(crm):
    [message], _ = await run(ActionSearchCatalog(), tracker("EliteBook 840"))
    text = message["text"]
    assert text.startswith("Ordinateur portable HP EliteBook 840 G10 (ORD-HP-840)\nPrix : 1\u202f379,00 €\n"
                           "Stock : en rupture de stock")
    alternatives = text.split("Ce produit est en rupture. Disponibles dans le même rayon :")[1]
    assert alternatives.count("en stock") == 3 and "rupture" not in alternatives
    assert "Commander ce produit" not in [b["title"] for b in message["buttons"]]


async def test_products_added_after_training_are_found(crm):
    with unit_of_work(crm) as session:
        import_catalog(session, "sku,name,category,description,price,stock\n"
                                "FOU-PLA-A3,Plastifieuse GBC A3,Fournitures de bureau,Pochettes,89.00,4\n")
    [message], _ = await run(ActionSearchCatalog(), tracker("une plastifieuse"))
    assert message["text"].startswith("Plastifieuse GBC A3 (FOU-PLA-A3)\nPrix : 89,00 €\nStock : en stock (4)")


async def test_a_crm_outage_gets_an_apology_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    install_settings(None)  # read again, with it
    [message], events = await run(ActionSearchCatalog(), tracker("imprimantes", language="en"))
    assert message["text"] == "Sorry, I cannot reach our data right now. Please try again in a few minutes."


async def test_language_slot_follows_the_telegram_metadata():
    action = ValidateSlotMappings()
    _, events = await run(action, tracker("hello", language="fr", metadata={"language": "en", "first_name": "John"}))
    assert SlotSet("language", "en") in events and SlotSet("first_name", "John") in events
    _, events = await run(action, tracker("bonjour", language="fr", metadata={"language": "fr"}))
    assert events == []
    _, events = await run(action, tracker("hallo", language="fr", metadata={"language": "de"}))
    assert events == [], "an unsupported language falls back to French"


@pytest.mark.parametrize("form", ["order_form", "complaint_form", "lead_form"])
async def test_stopping_a_form_empties_that_forms_slots_as_the_domain_declares_them(form):
    import yaml

    from actions.orders import ActionStopForm
    from crm.settings import ROOT

    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    declared = domain["forms"][form]["required_slots"]
    t = tracker("laissez tomber")
    t.active_loop = {"name": form}
    dispatcher = CollectingDispatcher()
    events = await ActionStopForm().run(dispatcher, t, domain)
    assert dispatcher.messages[0]["text"] == "D'accord, j'arrête là. Rien n'a été enregistré."
    emptied = [e["name"] for e in events if e["event"] == "slot" and e["value"] is None and e["name"] in
               [s for f in domain["forms"].values() for s in f["required_slots"]]]
    assert emptied == declared, "the stopped form's slots, and no other form's"
    assert any(e["event"] == "active_loop" and e["name"] is None for e in events), "the form stops"
