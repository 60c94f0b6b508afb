"""Orders: the order form (product, quantity, address), the summary and confirmation, following
and cancelling one's own orders. Stopping a form is here too (it serves every form)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from rasa_sdk import FormValidationAction
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from sqlalchemy import select

from actions.catalog import ActionSearchCatalog, names_products, price_text
from actions.common import (
    CrmAction,
    button,
    client_for,
    entity,
    in_unit_of_work,
    language_of,
    latest_text,
)
from actions.parsing import asks_to_order, parse_quantity, quantity_in_request
from crm.catalog import product_by_sku, products_in_category, search_products
from crm.complaints import client_complaints, complaint_line, find_client_complaint, parse_complaint_number
from crm.consent import consent_unknown
from crm.i18n import Texts, format_money
from crm.models import Product
from crm.orders import (
    MAX_QUANTITY,
    NotEnoughStock,
    cancel_order,
    cancellable,
    client_orders,
    client_orders_naming,
    find_client_order,
    last_address,
    order_lines,
    order_summary_line,
    parse_order_number,
    place_order,
    quote,
    status_label,
)
from crm.promotions import running_promotions
from crm.text import fold

ORDER_SLOTS = ("order_product", "order_quantity", "order_address")

TEXTS = Texts("chat.orders")



class ActionStartOrder(CrmAction):
    """Before the form: what the first message already says is taken at once. One product named:
    the form goes straight on (to the quantity, or past it); several: the form lists them; a
    count ("3 souris", "two monitors") is kept for whichever product is chosen.

    A message that only names products, with no order wording and no count ("ramette
    Clairefontaine Clairalfa"), is a question about them whatever the model thought: it gets the
    catalogue's answer (with an Order button) and no form."""

    def name(self) -> str:
        return "action_start_order"

    async def answer(self, dispatcher, tracker, domain, language):
        sku = entity(tracker, "product")
        text = latest_text(tracker)
        typed = not text.startswith("/")  # not a button's payload

        def work(session):
            if sku:
                product = product_by_sku(session, sku)
                return (product.sku if product and product.stock > 0 else None), False, None
            result = search_products(session, text)
            if not asks_to_order(text) and names_products(result, text):
                return None, False, result
            if result.total == 1 and result.strong and result.products[0].stock > 0:
                return result.products[0].sku, False, None
            return None, result.total > 1 and result.strong, None

        found, several, only_named = await in_unit_of_work(work) if (sku or typed) else (None, False, None)
        if only_named is not None:  # the search that found them is the answer's
            await ActionSearchCatalog().answer(dispatcher, tracker, domain, language, searched=only_named)
            return [FollowupAction("action_listen")]  # the rule's order form does not start
        # Only slots left over from an earlier order are emptied: a reset counts as "set", and the
        # form would validate (and complain about) empty values.
        events: list[dict[str, Any]] = [SlotSet(slot, None) for slot in ORDER_SLOTS if tracker.get_slot(slot)]
        if found:
            events.append(SlotSet("order_product", found))
        elif several:  # the form's product check lists the matches
            events.append(SlotSet("order_product", text))
        quantity = quantity_in_request(text) if typed else None
        if quantity is not None and (found or several):
            events.append(SlotSet("order_quantity", str(quantity)))
        return events


class ValidateOrderForm(FormValidationAction):
    def name(self) -> str:
        return "validate_order_form"

    async def validate_order_product(self, value, dispatcher, tracker, domain):
        language = language_of(tracker)
        text = str(value or "")
        if not text.strip():
            return {"order_product": None}

        def work(session):
            product = product_by_sku(session, text)
            result = search_products(session, text) if product is None else None
            if product is None and result.total == 1 and result.strong:
                product = result.products[0]
            alternatives = []
            if product is not None and product.stock <= 0:
                same = products_in_category(session, product.category, limit=50).products
                alternatives = [p for p in same if p.stock > 0][:4]
            return product, result, alternatives, running_promotions(session)

        product, result, alternatives, promotions = await in_unit_of_work(work)
        if product is None and result is not None and result.total > 1 and result.strong:
            dispatcher.utter_message(text=TEXTS.t("which_product", language),
                                     buttons=[button(p.name, "inform", product=p.sku) for p in result.products])
            return {"order_product": None, "choices_shown": True}
        if product is None:
            dispatcher.utter_message(text=TEXTS.t("unknown_product", language))
            return {"order_product": None, "choices_shown": True}
        if product.stock <= 0:
            dispatcher.utter_message(text=TEXTS.t("out_of_stock", language, name=product.name),
                                     buttons=[button(p.name, "inform", product=p.sku) for p in alternatives])
            return {"order_product": None, "choices_shown": True}
        dispatcher.utter_message(text=TEXTS.t("chosen", language, name=product.name, stock=product.stock,
                                        price=price_text(product, promotions, language)))
        # A count given with the request, before this product was chosen from a list, meets the
        # stock now (given in the same message, the quantity's own check does it).
        kept = None if "order_quantity" in tracker.slots_to_validate() else \
            parse_quantity(str(tracker.get_slot("order_quantity") or ""))
        if kept is not None and kept > min(product.stock, MAX_QUANTITY):
            dispatcher.utter_message(text=TEXTS.t("quantity_stock", language, stock=product.stock))
            return {"order_product": product.sku, "order_quantity": None, "choices_shown": True}
        return {"order_product": product.sku, "choices_shown": False}

    async def validate_order_quantity(self, value, dispatcher, tracker, domain):
        language = language_of(tracker)
        if value is None:
            return {"order_quantity": None}
        quantity = parse_quantity(str(value or ""))
        sku = tracker.get_slot("order_product")
        if quantity is None:
            dispatcher.utter_message(text=TEXTS.t("quantity_not_number", language))
            return {"order_quantity": None, "choices_shown": True}
        if quantity <= 0:
            dispatcher.utter_message(text=TEXTS.t("quantity_positive", language))
            return {"order_quantity": None, "choices_shown": True}
        stock = await in_unit_of_work(lambda s: s.scalar(select(Product.stock).where(Product.sku == sku)))
        if stock is None:  # given with the request, before a product was chosen: checked once it is
            return {"order_quantity": str(quantity)}  # (the product's check speaks this turn)
        if quantity > min(stock, MAX_QUANTITY):
            dispatcher.utter_message(text=TEXTS.t("quantity_stock", language, stock=stock))
            return {"order_quantity": None, "choices_shown": True}
        return {"order_quantity": str(quantity), "choices_shown": False}

    async def validate_order_address(self, value, dispatcher, tracker, domain):
        language = language_of(tracker)
        address = " ".join(str(value or "").split())
        if not address:
            return {"order_address": None}
        if address.startswith("/") or not 8 <= len(address) <= 300 or not any(c.isalpha() for c in address):
            dispatcher.utter_message(text=TEXTS.t("bad_address", language))
            return {"order_address": None, "choices_shown": True}
        return {"order_address": address, "choices_shown": False}


class AskAfterValidation(CrmAction):
    """An ask action that stays quiet when validation has just asked (with buttons or a reason)."""

    async def run(self, dispatcher, tracker, domain):
        if tracker.get_slot("choices_shown"):
            return [SlotSet("choices_shown", False)]
        return await super().run(dispatcher, tracker, domain)


class AskForSlot(AskAfterValidation):
    """`action_ask_<slot>`: asks for one slot of a form with the text `ask_<slot without the
    form's prefix>` of `texts` ("order_quantity" -> chat.orders.ask_quantity)."""

    texts = TEXTS

    @property
    @abstractmethod
    def slot(self) -> str:
        """The slot it asks for (a class attribute in each subclass)."""

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def answer(self, dispatcher, tracker, domain, language):
        dispatcher.utter_message(text=self.texts.t("ask_" + self.slot.split("_", 1)[1], language))
        return []


class ActionAskOrderProduct(AskForSlot):
    slot = "order_product"


class ActionAskOrderQuantity(AskForSlot):
    slot = "order_quantity"


class ActionAskOrderAddress(AskAfterValidation):
    def name(self) -> str:
        return "action_ask_order_address"

    async def answer(self, dispatcher, tracker, domain, language):
        address = await in_unit_of_work(lambda s: last_address(s, client_for(s, tracker)))
        if address:
            dispatcher.utter_message(text=TEXTS.t("ask_address_last", language, address=address),
                                     buttons=[button(TEXTS.t("use_last", language), "inform", address=address)])
        else:
            dispatcher.utter_message(text=TEXTS.t("ask_address", language))
        return []


def _order_quote(session, tracker, language):
    product = product_by_sku(session, tracker.get_slot("order_product"), active_only=False)
    quantity = int(tracker.get_slot("order_quantity"))
    return product, quote(session, product, quantity, language)


class ActionOrderSummary(CrmAction):
    def name(self) -> str:
        return "action_order_summary"

    async def answer(self, dispatcher, tracker, domain, language):
        product, priced = await in_unit_of_work(lambda s: _order_quote(s, tracker, language))
        dispatcher.utter_message(
            text=TEXTS.t("summary", language, quantity=priced.quantity, name=product.name, sku=product.sku,
                   unit=format_money(priced.unit_price, product.currency, language),
                   total=format_money(priced.total, product.currency, language),
                   address=tracker.get_slot("order_address")),
            buttons=[button(TEXTS.t("confirm", language), "affirm"), button(TEXTS.t("cancel", language), "deny")])
        return []


class ActionPlaceOrder(CrmAction):
    def name(self) -> str:
        return "action_place_order"

    async def answer(self, dispatcher, tracker, domain, language):
        sku, address = tracker.get_slot("order_product"), tracker.get_slot("order_address")
        if not (sku and tracker.get_slot("order_quantity") and address):
            dispatcher.utter_message(text=TEXTS.t("form_stopped", language))
            return [SlotSet(s, None) for s in ORDER_SLOTS]
        quantity = int(tracker.get_slot("order_quantity"))

        def work(session):
            client = client_for(session, tracker)
            product = product_by_sku(session, sku, active_only=False)
            order = place_order(session, client, product.id, quantity, address)
            # After a first order, a client who never said yes or no to promotions is asked once.
            offer = len(client_orders(session, client, limit=2)) == 1 and consent_unknown(session, client)
            return order, product, offer

        try:
            order, product, offer_news = await in_unit_of_work(work)
        except NotEnoughStock as exc:
            dispatcher.utter_message(text=TEXTS.t("gone", language, stock=exc.available))
            return [SlotSet(s, None) for s in ORDER_SLOTS]
        dispatcher.utter_message(text=TEXTS.t(
            "placed", language, number=order.number, quantity=quantity, name=product.name,
            total=format_money(order.total, order.currency, language), address=order.delivery_address))
        if offer_news:
            dispatcher.utter_message(text=TEXTS.t("offer_news", language), buttons=[
                button(TEXTS.t("yes_news", language), "subscribe_promotions", consent_source="button")])
        return [SlotSet(s, None) for s in ORDER_SLOTS]


class ActionDiscardOrder(CrmAction):
    def name(self) -> str:
        return "action_discard_order"

    async def answer(self, dispatcher, tracker, domain, language):
        dispatcher.utter_message(text=TEXTS.t("discarded", language))
        return [SlotSet(s, None) for s in ORDER_SLOTS]


class ActionStopForm(CrmAction):
    """The client stops a form midway: nothing is recorded, the form's slots are emptied."""

    def name(self) -> str:
        return "action_stop_form"

    async def answer(self, dispatcher, tracker, domain, language):
        dispatcher.utter_message(text=TEXTS.t("form_stopped", language))
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("choices_shown", False)] + [
            SlotSet(s, None) for s in form_slots(domain, tracker.active_loop_name)]


def form_slots(domain: dict, form: str | None) -> list[str]:
    """The slots a form asks for, as the domain declares them (domain.yml `forms:`)."""
    declared = (domain.get("forms") or {}).get(form) or {}
    return list(declared.get("required_slots") or [])


COMPLAINT_WORDS = ("reclamation", "plainte", "ticket", "complaint", "rec-")


def order_detail(session, order, language: str) -> str:
    lines = "\n".join(f"{line.quantity} × {product.name} ({product.sku})" for line, product in order_lines(session, order))
    return TEXTS.t("order_detail", language, number=order.number, date=order.created_at,
             status=status_label(order.status, language), lines=lines,
             total=format_money(order.total, order.currency, language), address=order.delivery_address)


class ActionOrderStatus(CrmAction):
    """The client's own orders (or one by number), and their complaints when they ask about them."""

    def name(self) -> str:
        return "action_order_status"

    async def answer(self, dispatcher, tracker, domain, language):
        text = latest_text(tracker)
        order_no = entity(tracker, "order_number") or parse_order_number(text)
        complaint_no = parse_complaint_number(text)
        about_complaints = complaint_no or any(w in fold(text) for w in COMPLAINT_WORDS)

        def work(session):
            client = client_for(session, tracker)
            if complaint_no:
                complaint = find_client_complaint(session, client, complaint_no)
                if complaint is None:
                    return TEXTS.t("complaint_not_found", language, number=complaint_no)
                resolution = f"\n{complaint.resolution}" if complaint.resolution else ""
                return TEXTS.t("complaint_detail", language, line=complaint_line(complaint, language),
                         resolution=resolution)
            if about_complaints:
                complaints = client_complaints(session, client)
                if not complaints:
                    return TEXTS.t("no_complaints", language)
                return "\n".join([TEXTS.t("your_complaints", language)] + [f"• {complaint_line(c, language)}" for c in complaints])
            if order_no:
                order = find_client_order(session, client, order_no)
                if order is None:
                    return TEXTS.t("order_not_found", language, number=order_no)
                return order_detail(session, order, language)
            naming = client_orders_naming(session, client, text)  # "ma commande de souris"
            if len(naming) == 1:
                return order_detail(session, naming[0], language)
            orders = naming or client_orders(session, client)
            if not orders:
                return TEXTS.t("no_orders", language)
            return "\n".join([TEXTS.t("your_orders", language)] + [f"• {order_summary_line(o, language)}" for o in orders])

        dispatcher.utter_message(text=await in_unit_of_work(work))
        return []


class ActionCancelOrder(CrmAction):
    def name(self) -> str:
        return "action_cancel_order"

    async def answer(self, dispatcher, tracker, domain, language):
        number = entity(tracker, "order_number") or parse_order_number(latest_text(tracker))

        def work(session):
            client = client_for(session, tracker)
            if number:
                order = find_client_order(session, client, number)
                if order is None:
                    return TEXTS.t("order_not_found", language, number=number), []
                if not cancellable(order):
                    return TEXTS.t("not_cancellable", language, number=order.number,
                             status=status_label(order.status, language)), []
                cancel_order(session, order)
                return TEXTS.t("cancelled", language, number=order.number), []
            open_orders = [o for o in client_orders(session, client, limit=20) if cancellable(o)]
            if not open_orders:
                return TEXTS.t("none_cancellable", language), []
            return TEXTS.t("which_cancel", language), [
                button(order_summary_line(o, language), "cancel_order", order_number=o.number) for o in open_orders[:6]]

        text, buttons = await in_unit_of_work(work)
        dispatcher.utter_message(text=text, buttons=buttons)
        return []
