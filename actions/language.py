"""The `language` and `first_name` slots, filled from the Telegram metadata of every message."""

from __future__ import annotations

from rasa_sdk.forms import ValidationAction

from crm.i18n import normalise_language


def _metadata(tracker) -> dict:
    return (tracker.latest_message or {}).get("metadata") or {}


class ValidateSlotMappings(ValidationAction):
    """Runs after every user message (action_extract_slots calls it)."""

    def extract_language(self, dispatcher, tracker, domain):
        language = _metadata(tracker).get("language")
        if language is None:
            return {}
        language = normalise_language(language)
        return {"language": language} if language != tracker.get_slot("language") else {}

    def extract_first_name(self, dispatcher, tracker, domain):
        name = _metadata(tracker).get("first_name")
        if not isinstance(name, str) or not name or name == tracker.get_slot("first_name"):
            return {}
        return {"first_name": name[:64]}
