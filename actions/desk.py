"""Handing a conversation to a human manager: on request, after repeated misunderstandings,
and for severe complaints (company.yml, desk)."""

from __future__ import annotations

from actions.catalog import catalogue_first
from actions.common import CrmAction, client_for, in_unit_of_work, latest_text
from crm.desk_hours import desk_settings
from crm.handoffs import client_text, hand_over
from crm.i18n import Texts

TEXTS = Texts("chat.desk")


class ActionRequestHuman(CrmAction):
    def name(self) -> str:
        return "action_request_human"

    async def answer(self, dispatcher, tracker, domain, language):
        text = await in_unit_of_work(
            lambda s: hand_over(s, client_for(s, tracker), "request", language, latest_text(tracker)))
        dispatcher.utter_message(text=text)
        return []


def misunderstood_in_a_row(tracker) -> int:
    """How many of the latest user messages in a row fell back (nlu_fallback)."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if ((event.get("parse_data") or {}).get("intent") or {}).get("name") != "nlu_fallback":
            break
        count += 1
    return count


class ActionRephraseOrHandOver(CrmAction):
    def name(self) -> str:
        return "action_rephrase_or_hand_over"

    async def answer(self, dispatcher, tracker, domain, language):
        # A product name the model never saw (added to the catalogue after training) is still a
        # catalogue question: answer it from the CRM rather than ask to rephrase.
        if await catalogue_first(dispatcher, tracker, domain, language):
            return []
        limit = int(desk_settings().get("fallbacks_before_handoff", 2))
        if misunderstood_in_a_row(tracker) < limit:
            dispatcher.utter_message(text=TEXTS.t("rephrase", language))
            return []
        text = await in_unit_of_work(
            lambda s: hand_over(s, client_for(s, tracker), "fallback", language, latest_text(tracker)))
        dispatcher.utter_message(text=client_text("fallback", language) + " " + text)
        return []
