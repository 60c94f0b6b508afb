"""A client's requests about their own data, understood in their words: the bot carries them out
(bot/privacy.py), as for /mydata and /forget. The action answers with a custom payload the bot
reads ({"privacy": "export" | "forget"}), never with the data itself: the file is built, and the
erasure confirmed, where the client's chat is."""

from __future__ import annotations

from actions.common import CrmAction


class PrivacyRequest(CrmAction):
    """Abstract (no name()): rasa-sdk registers only the two below."""

    kind: str  # what the bot does: "export" (the client's file) or "forget" (ask, then erase)

    async def answer(self, dispatcher, tracker, domain, language):
        dispatcher.utter_message(json_message={"privacy": self.kind})
        return []


class ActionSendMyData(PrivacyRequest):
    kind = "export"

    def name(self) -> str:
        return "action_send_my_data"


class ActionAskErasure(PrivacyRequest):
    kind = "forget"

    def name(self) -> str:
        return "action_ask_erasure"
