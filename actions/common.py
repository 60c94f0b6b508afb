"""What every action shares: the client's language, and CRM work off the event loop."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.review import keep_for_review
from crm.db import unit_of_work
from crm.i18n import Texts, normalise_language

log = logging.getLogger(__name__)
T = TypeVar("T")


def language_of(tracker: Tracker) -> str:
    """The slot, else the language of the Telegram metadata of the last message."""
    slot = tracker.get_slot("language")
    if slot:
        return normalise_language(slot)
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    return normalise_language(metadata.get("language"))


def run_in_unit_of_work(work: Callable[[Session], T]) -> T:
    with unit_of_work() as session:
        return work(session)


async def in_unit_of_work(work: Callable[[Session], T]) -> T:
    """Run blocking CRM work in a thread, in its own unit of work (never a shared session)."""
    return await asyncio.to_thread(run_in_unit_of_work, work)


class CrmAction(Action, ABC):
    """An action that answers from the CRM. If the CRM fails, the client gets an apology in
    their language and the conversation goes on; the error is logged, never swallowed silently."""

    TEXTS = Texts("chat.common")

    @abstractmethod
    def name(self) -> str:
        """The action's name in domain.yml."""

    @abstractmethod
    async def answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict, language: str
    ) -> list[dict[str, Any]]:
        """Send the answer in `language`; return the events."""

    async def run(self, dispatcher, tracker, domain):
        language = language_of(tracker)
        await keep_for_review(tracker)  # what the model missed, for the managers' /review
        try:
            return await self.answer(dispatcher, tracker, domain, language)
        except Exception:
            log.exception("%s failed", self.name())
            dispatcher.utter_message(text=self.TEXTS.t("crm_down", language))
            return []


def client_for(session: Session, tracker: Tracker):
    """The CRM client behind this conversation (the sender id is their Telegram id). The bot
    registers clients first; a conversation that reached Rasa another way is registered here."""
    from crm.clients import TelegramProfile, register_client
    from crm.models import Client
    from sqlalchemy import select

    try:
        telegram_id = int(tracker.sender_id)
    except (TypeError, ValueError):
        raise ValueError(f"sender {tracker.sender_id!r} is not a Telegram user id") from None
    client = session.scalar(select(Client).where(Client.telegram_id == telegram_id))
    if client is None:
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        client, _ = register_client(session, TelegramProfile(
            telegram_id, metadata.get("first_name") or "", metadata.get("last_name") or "",
            metadata.get("username"), metadata.get("language")))
    return client


def entity(tracker: Tracker, name: str) -> str | None:
    for item in (tracker.latest_message or {}).get("entities") or []:
        if item.get("entity") == name and isinstance(item.get("value"), (str, int)):
            return str(item["value"])
    return None


def latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()


def button(title: str, intent: str, **entities) -> dict:
    """A button that sends `intent` with `entities` to Rasa when pressed."""
    import json

    payload = f"/{intent}" + (json.dumps(entities, ensure_ascii=False) if entities else "")
    return {"title": title[:60], "payload": payload}
