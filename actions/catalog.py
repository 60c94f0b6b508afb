"""The assortment: search the CRM catalogue and list products with price and stock."""

from __future__ import annotations

import json

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import CrmAction, in_unit_of_work
from crm.catalog import (
    SearchResult,
    categories,
    format_money,
    products_in_category,
    search_products,
)
from crm.i18n import translate
from crm.models import Product

TEXTS = {
    "found": {"fr": "Voici ce que j'ai trouvé :", "en": "Here is what I found:"},
    "found_category": {"fr": "Voici notre rayon {category} :", "en": "Here is our {category} range:"},
    "more": {
        "fr": "… et {count} autre(s). Précisez votre recherche (marque, modèle, taille) pour affiner.",
        "en": "… and {count} more. Tell me a brand, model or size to narrow it down.",
    },
    "in_stock": {"fr": "en stock ({stock})", "en": "in stock ({stock})"},
    "out_of_stock": {"fr": "en rupture de stock", "en": "out of stock"},
    "alternatives": {
        "fr": "Ce produit est en rupture. Disponibles dans le même rayon :",
        "en": "This product is out of stock. Available in the same range:",
    },
    "not_sold": {
        "fr": "Je ne trouve pas « {query} » dans notre catalogue : nous ne proposons pas ce produit. "
        "Voici nos rayons :",
        "en": "I cannot find \"{query}\" in our catalogue: we do not sell this product. "
        "Here are our ranges:",
    },
    "ranges": {"fr": "Voici nos rayons. Lequel vous intéresse ?", "en": "Here are our ranges. Which one interests you?"},
    "empty_catalogue": {
        "fr": "Notre catalogue est en cours de mise à jour : je ne peux pas vous proposer de produit "
        "pour le moment.",
        "en": "Our catalogue is being updated: I cannot offer you a product right now.",
    },
}


def product_line(product: Product, language: str) -> str:
    price = format_money(product.price, product.currency, language)
    stock = (
        translate(TEXTS, "in_stock", language, stock=product.stock)
        if product.stock > 0
        else translate(TEXTS, "out_of_stock", language)
    )
    return f"• {product.name} ({product.sku}) — {price} — {stock}"


def category_buttons(names: list[str]) -> list[dict]:
    return [
        {"title": name, "payload": "/ask_catalog" + json.dumps({"category": name}, ensure_ascii=False)}
        for name in names
    ]


def _entity(tracker: Tracker, name: str) -> str | None:
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == name and isinstance(entity.get("value"), str):
            return entity["value"]
    return None


class ActionSearchCatalog(CrmAction):
    def name(self) -> str:
        return "action_search_catalog"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain, language):
        category = _entity(tracker, "category")
        text = _entity(tracker, "product") or (tracker.latest_message or {}).get("text") or ""
        if text.startswith("/"):  # a button without a product: the question is "what do you sell?"
            text = ""

        def work(session):
            if category:
                result = products_in_category(session, category)
            elif text.strip():
                result = search_products(session, text)
            else:
                result = SearchResult([])
            alternatives: list[Product] = []
            if result.products and all(p.stock <= 0 for p in result.products):
                same_range = products_in_category(session, result.products[0].category, limit=50)
                alternatives = [p for p in same_range.products if p.stock > 0][:3]
            return result, alternatives, categories(session)

        result, alternatives, ranges = await in_unit_of_work(work)
        if result.products:
            self._list(dispatcher, result, alternatives, language)
        elif not ranges:
            dispatcher.utter_message(text=translate(TEXTS, "empty_catalogue", language))
        elif text.strip() and not category:
            query = text.strip()[:80]
            dispatcher.utter_message(
                text=translate(TEXTS, "not_sold", language, query=query),
                buttons=category_buttons(ranges),
            )
        else:
            dispatcher.utter_message(
                text=translate(TEXTS, "ranges", language), buttons=category_buttons(ranges)
            )
        return []

    @staticmethod
    def _list(dispatcher, result: SearchResult, alternatives: list[Product], language: str) -> None:
        if result.category:
            lines = [translate(TEXTS, "found_category", language, category=result.category)]
        else:
            lines = [translate(TEXTS, "found", language)]
        lines += [product_line(p, language) for p in result.products]
        hidden = result.total - len(result.products)
        if hidden > 0:
            lines.append(translate(TEXTS, "more", language, count=hidden))
        if alternatives:
            lines.append("")
            lines.append(translate(TEXTS, "alternatives", language))
            lines += [product_line(p, language) for p in alternatives]
        dispatcher.utter_message(text="\n".join(lines))
