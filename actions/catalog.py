"""The assortment: search, product details with related products, running promotions."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import CrmAction, button, entity, in_unit_of_work, latest_text
from crm.catalog import (
    Filters,
    SearchResult,
    categories,
    category_label,
    category_labels,
    product_by_sku,
    products_in_category,
    related_products,
    search_products,
)
from crm.i18n import Texts, format_money
from crm.text import query_words
from crm.models import Product, Promotion
from crm.promotions import price_of, running_promotions

TEXTS = Texts("chat.catalog")


def price_text(product: Product, promotions: list[Promotion], language: str) -> str:
    price = price_of(product, promotions)
    unit = format_money(price.unit, product.currency, language)
    if price.promotion is None:
        return unit
    title = price.promotion.title_en if language == "en" else price.promotion.title_fr
    return TEXTS.t("promo_price", language, price=unit, title=title,
                     list_price=format_money(price.list_price, product.currency, language),
                     discount=f"{price.promotion.discount_percent.normalize():f}")


def stock_text(product: Product, language: str) -> str:
    if product.stock > 0:
        return TEXTS.t("in_stock", language, stock=product.stock)
    return TEXTS.t("out_of_stock", language)


def product_line(product: Product, promotions: list[Promotion], language: str) -> str:
    return (f"• {product.name} ({product.sku}) — {price_text(product, promotions, language)} — "
            f"{stock_text(product, language)}")


def condition_text(filters: Filters, language: str) -> str:
    parts = []
    if filters.max_price is not None:
        parts.append(TEXTS.t("at_most", language, price=format_money(filters.max_price, "EUR", language)))
    if filters.min_price is not None:
        parts.append(TEXTS.t("at_least", language, price=format_money(filters.min_price, "EUR", language)))
    if filters.in_stock:
        parts.append(TEXTS.t("in_stock_now", language))
    return ", ".join(parts)


def category_buttons(names: list[str], labels: dict[str, str], language: str) -> list[dict]:
    """One button per range, titled in the client's language; it asks for the range by its key."""
    return [button(category_label(name, labels, language), "ask_catalog", category=name) for name in names]


def product_buttons(products: list[Product]) -> list[dict]:
    return [button(p.name, "ask_product_info", product=p.sku) for p in products]


def product_card(product: Product, related: list[Product], out_of_stock: bool,
                 promotions: list[Promotion], language: str) -> tuple[str, list[dict]]:
    """One product in full: price (with any promotion), stock, warranty, characteristics, and
    related products (alternatives when it is out of stock)."""
    card = TEXTS.t("card", language, name=product.name, sku=product.sku,
                     price=price_text(product, promotions, language),
                     stock=stock_text(product, language), warranty=product.warranty_months,
                     description=product.description)
    buttons = []
    if product.stock > 0:
        buttons.append(button(TEXTS.t("order_it", language), "place_order", product=product.sku))
    if related:
        key = "alternatives" if out_of_stock else "related"
        card += "\n\n" + TEXTS.t(key, language) + "\n" + "\n".join(
            product_line(p, promotions, language) for p in related)
        buttons += product_buttons(related)
    return card, buttons


def not_sold(dispatcher: CollectingDispatcher, query: str, ranges: list[str], labels: dict[str, str],
             language: str) -> None:
    buttons = category_buttons(ranges, labels, language) + [button(TEXTS.t("talk_to_manager", language), "request_human")]
    dispatcher.utter_message(text=TEXTS.t("not_sold", language, query=query[:80]), buttons=buttons)


def names_products(result: SearchResult, text: str) -> bool:
    """Whether a message the model did not take for a catalogue question still names products:
    a strong match (name, model, reference or range) covering at least half of its words, so that
    "stylos bic cristal bleu par 50" is answered from the catalogue whatever the intent, while
    "éteins la lumière du salon" is not, for one word found in a description."""
    asked = query_words(text)
    return result.strong and bool(asked) and len(result.understood) * 2 >= len(asked)


async def catalogue_first(dispatcher, tracker, domain, language) -> bool:
    """Answer from the catalogue when the client's message names products; True when it did."""
    text = latest_text(tracker)
    if not text or text.startswith("/"):
        return False
    result = await in_unit_of_work(lambda s: search_products(s, text))
    if not names_products(result, text):
        return False
    await ActionSearchCatalog().answer(dispatcher, tracker, domain, language, searched=result)
    return True


class ActionOutOfScope(CrmAction):
    """What the assistant does not handle, said plainly; but a product of the catalogue named in
    words the model never saw is answered first (the company's catalogue is not in its training)."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def answer(self, dispatcher, tracker, domain, language):
        if not await catalogue_first(dispatcher, tracker, domain, language):
            dispatcher.utter_message(response="utter_out_of_scope")
        return []


class ActionSearchCatalog(CrmAction):
    def name(self) -> str:
        return "action_search_catalog"

    async def answer(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain, language,
                     searched: SearchResult | None = None):
        """`searched`: the search of the client's message, when another action made it already."""
        category = entity(tracker, "category")
        text = entity(tracker, "product") or latest_text(tracker)
        if text.startswith("/"):  # a button without a product: the question is "what do you sell?"
            text = ""

        def work(session):
            if category:
                result = products_in_category(session, category)
            elif searched is not None and text == latest_text(tracker):
                result = searched
            elif text:
                result = search_products(session, text)
            else:
                result = SearchResult([])
            alternatives: list[Product] = []
            if result.total == 1:  # one product: its details at once
                alternatives = related_products(session, result.products[0])
            elif result.products and all(p.stock <= 0 for p in result.products):
                same_range = products_in_category(session, result.products[0].category, limit=50)
                alternatives = [p for p in same_range.products if p.stock > 0][:3]
            return result, alternatives, categories(session), category_labels(session), running_promotions(session)

        result, alternatives, ranges, labels, promotions = await in_unit_of_work(work)
        if result.total == 0 and result.nearest is not None:  # "laptops under 300 euros": none
            dispatcher.utter_message(
                text=TEXTS.t("none_within", language, condition=condition_text(result.filters, language))
                + "\n" + product_line(result.nearest, promotions, language),
                buttons=product_buttons([result.nearest]))
        elif result.total == 1:
            product = result.products[0]
            card, buttons = product_card(product, alternatives, product.stock <= 0, promotions, language)
            dispatcher.utter_message(text=card, buttons=buttons)
        elif result.products:
            self._list(dispatcher, result, alternatives, promotions, labels, language)
        elif not ranges:
            dispatcher.utter_message(text=TEXTS.t("empty_catalogue", language))
        elif text and not category:
            not_sold(dispatcher, text, ranges, labels, language)
        else:
            dispatcher.utter_message(text=TEXTS.t("ranges", language),
                                     buttons=category_buttons(ranges, labels, language))
        return []

    @staticmethod
    def _list(dispatcher, result: SearchResult, alternatives, promotions, labels: dict[str, str], language: str) -> None:
        if result.category:
            lines = [TEXTS.t("found_category", language,
                               category=category_label(result.category, labels, language))]
        else:
            lines = [TEXTS.t("found", language)]
        lines += [product_line(p, promotions, language) for p in result.products]
        hidden = result.total - len(result.products)
        if hidden > 0:
            lines.append(TEXTS.t("more", language, count=hidden))
        if alternatives:
            lines += ["", TEXTS.t("alternatives", language)]
            lines += [product_line(p, promotions, language) for p in alternatives]
        lines += ["", TEXTS.t("pick", language)]
        dispatcher.utter_message(text="\n".join(lines),
                                 buttons=product_buttons(result.products + alternatives))


class ActionProductInfo(CrmAction):
    """Price (with any running promotion), stock, key characteristics and warranty of one product."""

    def name(self) -> str:
        return "action_product_info"

    async def answer(self, dispatcher, tracker, domain, language):
        sku = entity(tracker, "product")
        text = latest_text(tracker)

        def work(session):
            product = product_by_sku(session, sku)
            result = SearchResult([product], 1) if product else search_products(session, text)
            related = related_products(session, result.products[0]) if result.total == 1 else []
            alternatives = []
            if result.total == 1 and result.products[0].stock <= 0:
                alternatives = related
            return (result, related, alternatives, categories(session), category_labels(session),
                    running_promotions(session))

        result, related, alternatives, ranges, labels, promotions = await in_unit_of_work(work)
        if result.total == 0:
            not_sold(dispatcher, text, ranges, labels, language)
        elif result.total > 1:
            dispatcher.utter_message(text=TEXTS.t("several", language),
                                     buttons=product_buttons(result.products))
        else:
            card, buttons = product_card(result.products[0], related, bool(alternatives), promotions, language)
            dispatcher.utter_message(text=card, buttons=buttons)
        return []


class ActionPromotions(CrmAction):
    def name(self) -> str:
        return "action_promotions"

    async def answer(self, dispatcher, tracker, domain, language):
        def work(session):
            promotions = running_promotions(session)
            names = {p.id: session.get(Product, p.product_id).name for p in promotions if p.product_id}
            return promotions, names, category_labels(session)

        promotions, product_names, labels = await in_unit_of_work(work)
        if not promotions:
            dispatcher.utter_message(text=TEXTS.t("no_promotions", language))
            return []
        lines = [TEXTS.t("promotions", language)]
        for p in promotions:
            if p.product_id:
                scope = product_names[p.id]
            elif p.category:
                scope = TEXTS.t("scope_category", language,
                                  category=category_label(p.category, labels, language))
            else:
                scope = TEXTS.t("scope_all", language)
            lines.append(TEXTS.t(
                "promotion_line", language, title=p.title_en if language == "en" else p.title_fr,
                discount=f"{p.discount_percent.normalize():f}", scope=scope, ends=p.ends_on,
                text=(p.text_en if language == "en" else p.text_fr) or "").rstrip())
        buttons = category_buttons([p.category for p in promotions if p.category], labels, language)
        dispatcher.utter_message(text="\n".join(lines), buttons=buttons)
        return []
