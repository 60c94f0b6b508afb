"""A typed answer to a question asked with buttons counts as pressing the one button it names."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from crm.choices import choose
from crm.meetings import slot_payload

CATEGORIES = [("Produit", '/inform{"complaint_category":"product"}'),
              ("Livraison", '/inform{"complaint_category":"delivery"}'),
              ("Facture", '/inform{"complaint_category":"invoice"}'),
              ("Service", '/inform{"complaint_category":"service"}'),
              ("Autre", '/inform{"complaint_category":"other"}')]
DELIVERY, INVOICE = CATEGORIES[1][1], CATEGORIES[2][1]


@pytest.mark.parametrize("typed", ["livraison", "Livraison", "LIVRAISON !", "livraisons", "livraion", "la livraison",
                                   "c'est la livraison", "delivery", "un retard", "colis", "problème de livraison"])
def test_a_typed_category_names_its_button(typed):
    assert choose(typed, CATEGORIES) == DELIVERY


@pytest.mark.parametrize("typed", ["facture", "invoice", "c'est pour une facture", "billing"])
def test_the_invoice_button_in_words(typed):
    assert choose(typed, CATEGORIES) == INVOICE


@pytest.mark.parametrize("typed", [
    "vous livrez en Belgique ?",  # a real question
    "quels sont vos délais de livraison pour la Belgique et la Suisse",  # a sentence
    "livraison et facture",  # two buttons named
    "bonjour",
    "",
    "/inform{\"complaint_category\":\"delivery\"}",  # a payload typed by hand is not a button press
    "livraison " * 30,
])
def test_anything_else_is_left_to_the_assistant(typed):
    assert choose(typed, CATEGORIES) is None


def test_confirm_and_cancel_in_either_language():
    summary = [("Confirmer", "/affirm"), ("Annuler", "/deny")]
    assert choose("confirm", summary) == "/affirm"
    assert choose("je confirme", summary) == "/affirm"
    assert choose("cancel", summary) == "/deny"
    assert choose("annuler", summary) == "/deny"
    assert choose("peut-être", summary) is None


def test_skip_at_a_lead_question():
    choices = [("1 à 9", '/inform{"lead_size":"1-9"}'), ("10 à 49", '/inform{"lead_size":"10-49"}'),
               ("Passer", '/inform{"lead_size":"skip"}')]
    assert choose("skip", choices) == '/inform{"lead_size":"skip"}'
    assert choose("je passe", choices) == '/inform{"lead_size":"skip"}'
    assert choose("10 à 49", choices) == '/inform{"lead_size":"10-49"}'
    assert choose("10-49", choices) == '/inform{"lead_size":"10-49"}'


def test_meeting_slots_named_by_day_and_hour():
    paris = ZoneInfo("Europe/Paris")
    starts = [datetime(2026, 12, 8, 10, 0, tzinfo=paris), datetime(2026, 12, 8, 14, 30, tzinfo=paris),
              datetime(2026, 12, 10, 10, 0, tzinfo=paris)]
    slots = [(f"slot {i}", slot_payload(s)) for i, s in enumerate(starts)]
    assert choose("mardi 10h", slots) == slots[0][1]
    assert choose("Mardi à 14 h 30", slots) == slots[1][1]
    assert choose("Tue 2:30", slots) is None, "2:30 is not 14:30"
    assert choose("tuesday 14:30", slots) == slots[1][1]
    assert choose("Tue 2:30 pm", slots) == slots[1][1]
    assert choose("thursday 10am", slots) == slots[2][1]
    assert choose("mardi 10 heures", slots) == slots[0][1]
    assert choose("jeudi", slots) == slots[2][1]
    assert choose("mardi", slots) is None, "two slots on Tuesday: the client is asked again"
    assert choose("10h", slots) is None, "two slots at 10:00"
    assert choose("vendredi 10h", slots) is None
