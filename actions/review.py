"""What the action server keeps for the review queue (crm/review.py), read off the tracker Rasa
sends with every action call: the client's message when the model fell back on it or was unsure
(company.yml review.low_confidence), and their previous message when, within
review.rephrase_seconds, they wrote it again in other words or asked for a person."""

from __future__ import annotations

import asyncio
import logging

from rasa_sdk import Tracker

from crm.company import company_profile
from crm.db import unit_of_work
from crm.review import note, note_fallback
from crm.text import query_words

log = logging.getLogger(__name__)
FALLBACK = "nlu_fallback"


def _user_events(tracker: Tracker) -> list[dict]:
    return [e for e in tracker.events if e.get("event") == "user"]


def _guesses(parse_data: dict) -> list[tuple[str, float]]:
    ranking = parse_data.get("intent_ranking") or [parse_data.get("intent") or {}]
    return [(r["name"], float(r.get("confidence") or 0)) for r in ranking
            if r.get("name") and r["name"] != FALLBACK]


def _intent(parse_data: dict) -> tuple[str | None, float]:
    intent = parse_data.get("intent") or {}
    return intent.get("name"), float(intent.get("confidence") or 0)


def _typed(event: dict) -> bool:
    text = (event.get("text") or "").strip()
    return bool(text) and not text.startswith("/")


def rephrased(before: str, after: str) -> bool:
    """The second message says the first again: half the words of the shorter one or more."""
    first, second = set(query_words(before)), set(query_words(after))
    shorter = min(len(first), len(second))
    return shorter >= 2 and len(first & second) * 2 >= shorter


def to_review(tracker: Tracker) -> list[tuple[dict, str]]:
    """(user event, reason) of what this turn puts in the review queue."""
    events = _user_events(tracker)
    if not events or not _typed(events[-1]):
        return []
    settings = company_profile()["review"]
    latest = events[-1]
    data = latest.get("parse_data") or {}
    intent, confidence = _intent(data)
    found = []
    if intent == FALLBACK:
        found.append((latest, "fallback"))
    elif intent is not None and confidence < settings["low_confidence"]:
        found.append((latest, "low_confidence"))
    if len(events) >= 2 and _typed(events[-2]):
        previous = events[-2]
        before, _ = _intent(previous.get("parse_data") or {})
        soon = float(latest.get("timestamp") or 0) - float(previous.get("timestamp") or 0) <= settings["rephrase_seconds"]
        if soon and intent == "request_human" and before not in ("request_human", FALLBACK):
            found.append((previous, "asked_human"))
        elif soon and before != intent and before != FALLBACK and rephrased(previous["text"], latest["text"]):
            found.append((previous, "rephrased"))
    return found


def fell_back_on(tracker: Tracker) -> int | None:
    """The bot's row of the client's latest message (its metadata "message") when the model fell
    back on it, for the understanding rate; None otherwise."""
    events = _user_events(tracker)
    if not events or _intent(events[-1].get("parse_data") or {})[0] != FALLBACK:
        return None
    row = (events[-1].get("metadata") or {}).get("message")
    return row if isinstance(row, int) and not isinstance(row, bool) and row > 0 else None


def _sender(tracker: Tracker) -> int | None:
    try:
        return int(tracker.sender_id)
    except (TypeError, ValueError):
        return None


async def keep_for_review(tracker: Tracker) -> None:
    """Note what this turn shows the assistant missed (the review queue, and the message's row
    marked misunderstood); never fails the answer."""
    try:
        found = to_review(tracker)
        row, sender = fell_back_on(tracker), _sender(tracker)
        if not found and (row is None or sender is None):
            return
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        names = tuple(n for n in (metadata.get("first_name"), metadata.get("last_name"), metadata.get("username")) if n)
        language = metadata.get("language") or tracker.get_slot("language") or "fr"

        def work(session):
            if row is not None and sender is not None:
                note_fallback(session, row, sender)
            for event, reason in found:
                note(session, event.get("text") or "", reason, _guesses(event.get("parse_data") or {}),
                     language=language, names=names, message_id=event.get("message_id"))

        def run() -> None:
            with unit_of_work() as session:
                work(session)

        await asyncio.to_thread(run)
    except Exception as exc:  # the review queue is a help, never a reason not to answer
        log.warning("could not keep a message for review: %s", type(exc).__name__)
