"""Policy questions (delivery, payment, returns, contract, contact, loyalty, ...) answered from
the company profile, and promotional consent."""

from __future__ import annotations

from actions.common import CrmAction, client_for, entity, in_unit_of_work
from crm.company import POLICY_TOPICS, policy_answer
from crm.consent import TEXTS, set_consent


class ActionPolicyAnswer(CrmAction):
    def name(self) -> str:
        return "action_policy_answer"

    async def answer(self, dispatcher, tracker, domain, language):
        topic = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if topic not in POLICY_TOPICS:
            topic = "ask_contact"
        dispatcher.utter_message(text=policy_answer(topic, language))
        return []


class ConsentAction(CrmAction):
    granted: bool

    async def answer(self, dispatcher, tracker, domain, language):
        source = "button" if entity(tracker, "consent_source") == "button" else "conversation"
        await in_unit_of_work(lambda s: set_consent(s, client_for(s, tracker), self.granted, source))
        dispatcher.utter_message(text=TEXTS.t("subscribed" if self.granted else "unsubscribed", language))
        return []


class ActionSubscribe(ConsentAction):
    granted = True

    def name(self) -> str:
        return "action_subscribe"


class ActionUnsubscribe(ConsentAction):
    granted = False

    def name(self) -> str:
        return "action_unsubscribe"
