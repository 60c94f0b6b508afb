"""Lead qualification: a business enquiry becomes a conversation (company, sector, size, need,
budget, timeline, role in the decision, how to reach them). Every question may be skipped; the
client may stop at any time and what was given is kept. The score and status come from
crm/leads.py (company.yml's rules); a hot lead goes to the managers' desk at once."""

from __future__ import annotations

from rasa_sdk import FormValidationAction
from rasa_sdk.events import ActiveLoop, SlotSet

from actions.common import CrmAction, button, client_for, entity, in_unit_of_work, language_of, latest_text
from actions.orders import AskForSlot
from crm.handoffs import hand_over
from crm.i18n import Texts
from crm.leads import (
    BUDGETS,
    SKIP,
    label,
    lead_card,
    means_skip,
    means_stop,
    parse_budget,
    parse_contact,
    parse_role,
    parse_size,
    parse_timeline,
    save_lead,
)

LEAD_SLOTS = ("lead_company", "lead_sector", "lead_size", "lead_need", "lead_budget", "lead_timeline",
              "lead_role", "lead_contact")
BUDGET_LABELS = {"lt1k": "< 1 000 €", "1k-5k": "1 000 – 5 000 €", "5k-20k": "5 000 – 20 000 €", "gt20k": "> 20 000 €"}

TEXTS = Texts("chat.leads")



def skip_button(slot: str, language: str) -> dict:
    return button(TEXTS.t("skip", language), "inform", **{slot: SKIP})


def answer_for(tracker, slot: str, value) -> str:
    """What the client answered: the button's entity, else the text."""
    return (entity(tracker, slot) or str(value or "")).strip()


def _answers(tracker) -> dict:
    """The slots as Lead fields (parsed; skipped questions left out)."""
    def get(slot):
        value = tracker.get_slot(slot)
        return None if value in (None, "", SKIP) else str(value)

    phone, email = parse_contact(get("lead_contact") or "")
    budget = get("lead_budget")
    return {
        "company": get("lead_company"), "sector": get("lead_sector"), "size": get("lead_size"),
        "need": get("lead_need"), "timeline": get("lead_timeline"), "role": get("lead_role"),
        "budget_eur": parse_budget(budget) if budget else None,
        "budget_text": BUDGET_LABELS.get(budget, budget) if budget else None,
        "phone": phone, "email": email,
    }


def _given(answers: dict) -> bool:
    return any(value not in (None, "") for value in answers.values())


class ActionStartLead(CrmAction):
    """Before the form: a fresh start, what the first message already says (its need, a budget or
    a timeline), and what the CRM knows (company, phone, email) are kept; the client is told how
    to skip or stop."""

    def name(self) -> str:
        return "action_start_lead"

    async def answer(self, dispatcher, tracker, domain, language):
        events = [SlotSet(slot, None) for slot in LEAD_SLOTS] + [SlotSet("lead_stopped", False)]
        text = latest_text(tracker)
        if text and not text.startswith("/") and len(text.split()) >= 5:
            events.append(SlotSet("lead_need", text[:2000]))
            timeline = parse_timeline(text)
            if timeline:
                events.append(SlotSet("lead_timeline", timeline))

        def known(session):
            client = client_for(session, tracker)
            contact = " ".join(x for x in (client.phone, client.email) if x)
            return client.company, contact

        company, contact = await in_unit_of_work(known)
        if company:
            events.append(SlotSet("lead_company", company))
        if contact:
            events.append(SlotSet("lead_contact", contact))
        dispatcher.utter_message(text=TEXTS.t("intro", language))
        return events


class ValidateLeadForm(FormValidationAction):
    def name(self) -> str:
        return "validate_lead_form"

    def _common(self, slot: str, value, tracker) -> dict | None:
        """Skip and stop, the same for every question. None when the answer needs its own check."""
        text = answer_for(tracker, slot, value)
        if not text:
            return {slot: None}
        if means_skip(text):
            return {slot: SKIP}
        if means_stop(text):  # every question left is skipped: the form ends and the lead is saved
            filled = {s: SKIP for s in LEAD_SLOTS if tracker.get_slot(s) in (None, "")}
            return {**filled, "lead_stopped": True}
        return None

    def _text(self, slot: str, value, dispatcher, tracker, minimum: int = 2) -> dict:
        common = self._common(slot, value, tracker)
        if common is not None:
            return common
        text = " ".join(answer_for(tracker, slot, value).split())
        if len(text) < minimum or text.startswith("/"):
            dispatcher.utter_message(text=TEXTS.t("too_short", language_of(tracker)))
            return {slot: None, "choices_shown": True}
        return {slot: text[:2000] if slot == "lead_need" else text[:255]}

    def _parsed(self, slot: str, value, dispatcher, tracker, parse, error: str) -> dict:
        common = self._common(slot, value, tracker)
        if common is not None:
            return common
        parsed = parse(answer_for(tracker, slot, value))
        if parsed is None:
            dispatcher.utter_message(text=TEXTS.t(error, language_of(tracker)))
            return {slot: None}  # asked again, with its buttons
        return {slot: parsed}

    async def validate_lead_company(self, value, dispatcher, tracker, domain):
        return self._text("lead_company", value, dispatcher, tracker)

    async def validate_lead_sector(self, value, dispatcher, tracker, domain):
        return self._text("lead_sector", value, dispatcher, tracker)

    async def validate_lead_need(self, value, dispatcher, tracker, domain):
        return self._text("lead_need", value, dispatcher, tracker, minimum=3)

    async def validate_lead_size(self, value, dispatcher, tracker, domain):
        return self._parsed("lead_size", value, dispatcher, tracker, parse_size, "bad_size")

    async def validate_lead_budget(self, value, dispatcher, tracker, domain):
        def parse(text):
            if text in BUDGETS:
                return text
            return text[:255] if parse_budget(text) is not None else None

        return self._parsed("lead_budget", value, dispatcher, tracker, parse, "bad_budget")

    async def validate_lead_timeline(self, value, dispatcher, tracker, domain):
        return self._parsed("lead_timeline", value, dispatcher, tracker, parse_timeline, "bad_timeline")

    async def validate_lead_role(self, value, dispatcher, tracker, domain):
        return self._parsed("lead_role", value, dispatcher, tracker, parse_role, "bad_role")

    async def validate_lead_contact(self, value, dispatcher, tracker, domain):
        def parse(text):
            phone, email = parse_contact(text)
            return " ".join(x for x in (phone, email) if x) or None

        return self._parsed("lead_contact", value, dispatcher, tracker, parse, "bad_contact")


class AskLead(AskForSlot):
    """Asks one question of the lead form, with its buttons (always a "skip" one)."""

    def choices(self, language: str) -> list[dict]:
        return []

    async def answer(self, dispatcher, tracker, domain, language):
        buttons = self.choices(language) + [skip_button(self.slot, language)]
        dispatcher.utter_message(text=TEXTS.t(f"ask_{self.slot}", language), buttons=buttons)
        return []


class ActionAskLeadCompany(AskLead):
    slot = "lead_company"


class ActionAskLeadSector(AskLead):
    slot = "lead_sector"


class ActionAskLeadNeed(AskLead):
    slot = "lead_need"


class ActionAskLeadContact(AskLead):
    slot = "lead_contact"


class ActionAskLeadSize(AskLead):
    slot = "lead_size"

    def choices(self, language):
        return [button(label(code, language), "inform", lead_size=code) for code in ("1-9", "10-49", "50-249", "250+")]


class ActionAskLeadBudget(AskLead):
    slot = "lead_budget"

    def choices(self, language):
        return [button(title, "inform", lead_budget=code) for code, title in BUDGET_LABELS.items()]


class ActionAskLeadTimeline(AskLead):
    slot = "lead_timeline"

    def choices(self, language):
        return [button(label(code, language), "inform", lead_timeline=code) for code in ("now", "3m", "6m", "later")]


class ActionAskLeadRole(AskLead):
    slot = "lead_role"

    def choices(self, language):
        return [button(TEXTS.t(key, language), "inform", lead_role=code) for key, code in
                (("decides", "decision_maker"), ("recommends", "influencer"), ("looking", "researcher"))]


def _reset() -> list:
    return [SlotSet(slot, None) for slot in LEAD_SLOTS] + [SlotSet("lead_stopped", False),
                                                           SlotSet("choices_shown", False)]


async def _save(tracker, language: str, complete: bool):
    """Save the lead; a hot one goes to the desk. Returns (lead id or None, status, desk text)."""
    answers = _answers(tracker)
    if not _given(answers):
        return None, None, None

    def work(session):
        client = client_for(session, tracker)
        lead = save_lead(session, client, answers, complete)
        told = None
        if lead.status == "hot":
            told = hand_over(session, client, "lead", language, lead_card(session, lead, "fr"))
        return lead.id, lead.status, told

    return await in_unit_of_work(work)


class ActionSubmitLead(CrmAction):
    def name(self) -> str:
        return "action_submit_lead"

    async def answer(self, dispatcher, tracker, domain, language):
        stopped = bool(tracker.get_slot("lead_stopped"))
        lead_id, status, told = await _save(tracker, language, complete=not stopped)
        if lead_id is None:
            dispatcher.utter_message(text=TEXTS.t("stopped_empty", language))
        elif told:
            dispatcher.utter_message(text=told)
        elif stopped:
            dispatcher.utter_message(text=TEXTS.t("stopped", language))
        else:
            dispatcher.utter_message(text=TEXTS.t("recorded", language, id=lead_id),
                                     buttons=[button(TEXTS.t("book", language), "book_meeting")])
        return _reset()


class ActionStopLeadForm(CrmAction):
    """The client stops the qualification (or asks for a person): what was given is kept."""

    def name(self) -> str:
        return "action_stop_lead_form"

    async def answer(self, dispatcher, tracker, domain, language):
        lead_id, _, told = await _save(tracker, language, complete=False)
        asked_for_human = ((tracker.latest_message or {}).get("intent") or {}).get("name") == "request_human"
        if told:
            dispatcher.utter_message(text=told)
        elif not asked_for_human:
            dispatcher.utter_message(text=TEXTS.t("stopped" if lead_id else "stopped_empty", language))
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + _reset()
