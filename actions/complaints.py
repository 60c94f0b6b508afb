"""Complaints: the complaint form (optional order, category, description) and the ticket."""

from __future__ import annotations

from rasa_sdk import FormValidationAction
from rasa_sdk.events import SlotSet

from actions.common import CrmAction, button, client_for, in_unit_of_work, language_of, latest_text
from actions.orders import AskAfterValidation, AskForSlot
from actions.parsing import describes_a_problem, guess_category, means_none
from crm.complaints import CATEGORY_LABELS, open_complaint
from crm.desk_hours import desk_settings
from crm.handoffs import hand_over
from crm.i18n import Texts
from crm.models import COMPLAINT_CATEGORIES
from crm.orders import client_orders, client_orders_naming, find_client_order, order_summary_line, parse_order_number

NO_ORDER = "none"
TEXTS = Texts("chat.complaints")

# complaint_form's slots (domain.yml), emptied when a complaint is filed or dropped.
COMPLAINT_SLOTS = ("complaint_order", "complaint_category", "complaint_description")


class ActionStartComplaint(CrmAction):
    """Before the form: what the first message already says is kept (an order number, a
    description long enough to stand alone)."""

    def name(self) -> str:
        return "action_start_complaint"

    async def answer(self, dispatcher, tracker, domain, language):
        text = latest_text(tracker)
        events = [SlotSet(slot, None) for slot in COMPLAINT_SLOTS if tracker.get_slot(slot)]
        number = parse_order_number(text)
        if not number and not text.startswith("/"):  # "l'écran Dell reçu hier est fissuré": that order
            naming = await in_unit_of_work(lambda s: client_orders_naming(s, client_for(s, tracker), text))
            number = naming[0].number if len(naming) == 1 else None
        if number:
            events.append(SlotSet("complaint_order", number))
        if not text.startswith("/") and describes_a_problem(text):
            events.append(SlotSet("complaint_description", text))
            category = guess_category(text)
            if category:
                events.append(SlotSet("complaint_category", category))
        return events


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> str:
        return "validate_complaint_form"

    async def validate_complaint_order(self, value, dispatcher, tracker, domain):
        language = language_of(tracker)
        text = str(value or "")
        if not text.strip():
            return {"complaint_order": None}
        if text == NO_ORDER or means_none(text):
            return {"complaint_order": NO_ORDER}
        number = parse_order_number(text)
        if number is None:
            dispatcher.utter_message(text=TEXTS.t("order_unclear", language))
            return {"complaint_order": None, "choices_shown": True}
        order = await in_unit_of_work(lambda s: find_client_order(s, client_for(s, tracker), number))
        if order is None:
            dispatcher.utter_message(text=TEXTS.t("order_not_yours", language, number=number))
            return {"complaint_order": None, "choices_shown": True}
        return {"complaint_order": number}

    async def validate_complaint_category(self, value, dispatcher, tracker, domain):
        text = str(value or "")
        category = text if text in COMPLAINT_CATEGORIES else guess_category(text)
        if category is None:  # the question comes again, with its buttons
            return {"complaint_category": None}
        return {"complaint_category": category}

    async def validate_complaint_description(self, value, dispatcher, tracker, domain):
        text = " ".join(str(value or "").split())
        if not text:
            return {"complaint_description": None}
        if len(text) < 8 or text.startswith("/"):
            dispatcher.utter_message(text=TEXTS.t("short_description", language_of(tracker)))
            return {"complaint_description": None, "choices_shown": True}
        return {"complaint_description": text[:4000]}


class ActionAskComplaintOrder(AskAfterValidation):
    def name(self) -> str:
        return "action_ask_complaint_order"

    async def answer(self, dispatcher, tracker, domain, language):
        orders = await in_unit_of_work(lambda s: client_orders(s, client_for(s, tracker), limit=5))
        if not orders:
            dispatcher.utter_message(text=TEXTS.t("ask_order_none", language),
                                     buttons=[button(TEXTS.t("no_order", language), "inform", complaint_order=NO_ORDER)])
            return []
        buttons = [button(order_summary_line(o, language), "inform", complaint_order=o.number) for o in orders]
        buttons.append(button(TEXTS.t("no_order", language), "inform", complaint_order=NO_ORDER))
        dispatcher.utter_message(text=TEXTS.t("ask_order", language), buttons=buttons)
        return []


class ActionAskComplaintDescription(AskForSlot):
    slot = "complaint_description"
    texts = TEXTS


class ActionSubmitComplaint(CrmAction):
    def name(self) -> str:
        return "action_submit_complaint"

    async def answer(self, dispatcher, tracker, domain, language):
        number = tracker.get_slot("complaint_order")
        category = tracker.get_slot("complaint_category")
        description = tracker.get_slot("complaint_description")

        def work(session):
            client = client_for(session, tracker)
            order = find_client_order(session, client, number) if number and number != NO_ORDER else None
            return open_complaint(session, client, category, description, order)

        def record(session):
            complaint = work(session)
            handed_over = None
            if complaint.severity in desk_settings().get("handoff_severities", ["critical"]):
                detail = f"{complaint.number}: {complaint.description}"
                handed_over = hand_over(session, client_for(session, tracker), "complaint", language, detail)
            return complaint, handed_over

        complaint, handed_over = await in_unit_of_work(record)
        text = TEXTS.t("recorded", language, number=complaint.number,
                 category=CATEGORY_LABELS.t(complaint.category, language))
        if complaint.severity != "normal":
            text += " " + TEXTS.t("urgent", language)
        dispatcher.utter_message(text=text)
        if handed_over:
            dispatcher.utter_message(text=handed_over)
        return [SlotSet(slot, None) for slot in COMPLAINT_SLOTS]
