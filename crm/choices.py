"""A typed answer to a question asked with buttons: "livraison" at "De quel type de problème
s'agit-il ?", "skip" at a lead question, "mardi 10h" at a choice of meeting slots. When the
client's short message names exactly one of the buttons on screen, by its title, its value, a
synonym or its English form, it counts as pressing that button; anything else (a real question,
a sentence, two buttons named) is left to the assistant's understanding as usual.

The buttons on screen are those of the latest message the assistant sent the client, when that
message had buttons (`clients.choices_batch`, set at each delivery).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from crm import clock
from crm.buttons import BUTTON_LIFETIME
from crm.complaints import CATEGORY_WORDS
from crm.desk_hours import zone
from crm.leads import SKIP, SKIP_EXACT
from crm.models import ButtonPayload, Client
from crm.text import fold, typo_budget, within_edits

if TYPE_CHECKING:
    from crm.clients import Known

# A message longer than this is a sentence, not the choice of a button.
MAX_WORDS = 5
# Words that only carry the sentence around the choice: "c'est la livraison", "plutôt mardi".
FILLERS = frozenset("""
    c est ce sera la le les l un une des du de d a au aux pour par sur en je j choisis prends
    prendrais voudrais veux plutot alors euh hmm ok okay bon svp stp merci please thanks option
    choix reponse probleme souci question it s is the a an i ll take choose pick would like
    concerne concernant about regarding
""".split())
# Other ways of saying a button's value, by slot (entity) and value; the English form of a French
# title comes from the value itself when the value is an English word ("delivery").
VALUE_WORDS: dict[str, dict[str, list[str]]] = {
    "complaint_category": CATEGORY_WORDS,
}
SKIP_WORDS_ALL = sorted(SKIP_EXACT | {"passe", "aucune idee", "je sais pas", "sais pas", "no idea", "dont know"})
# Buttons that send an intent alone: what a client may type for them.
INTENT_WORDS = {
    "affirm": ["confirmer", "confirm", "je confirme", "valider", "valide", "yes confirm"],
    "deny": ["annuler", "cancel", "annule", "abandonner"],
}
DAY_WORDS = {
    0: ("lundi", "lun", "monday", "mon"), 1: ("mardi", "mar", "tuesday", "tue", "tues"),
    2: ("mercredi", "mer", "wednesday", "wed"), 3: ("jeudi", "jeu", "thursday", "thu", "thurs"),
    4: ("vendredi", "ven", "friday", "fri"), 5: ("samedi", "sam", "saturday", "sat"),
    6: ("dimanche", "dim", "sunday", "sun"),
}
_DAY = {word: day for day, words in DAY_WORDS.items() for word in words}
# "10h", "10 h 30", "14:30", "3pm", "2:30 pm", "10 heures"
_HOUR = re.compile(r"\b(\d{1,2})\s*(?:(?:h|heures?|:)\s*(\d{2})?)?\s*(am|pm)?\b")
_PAYLOAD = re.compile(r"^/(\w+)(\{.*\})?$", re.DOTALL)


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", fold(text).replace("'", " "))


def _content(text: str) -> list[str]:
    return [w for w in words_of(text) if w not in FILLERS]


def _parse_payload(payload: str) -> tuple[str, dict]:
    match = _PAYLOAD.match(payload.strip())
    if not match:
        return "", {}
    try:
        entities = json.loads(match.group(2)) if match.group(2) else {}
    except ValueError:
        entities = {}
    return match.group(1), entities if isinstance(entities, dict) else {}


def _phrases(title: str, payload: str) -> list[str]:
    """Every way of naming one button: its title, its values, their synonyms, its intent's words."""
    intent, entities = _parse_payload(payload)
    phrases = [title]
    for slot, value in entities.items():
        value = str(value)
        if value == SKIP:
            phrases += SKIP_WORDS_ALL
        elif slot != "meeting_id":
            phrases.append(value)
        phrases += VALUE_WORDS.get(slot, {}).get(value, [])
    phrases += INTENT_WORDS.get(intent, []) if not entities else []
    return phrases


def _names(typed: list[str], phrase: str) -> bool:
    """Whether the typed words name this phrase: the same words, a typo in one long word, the
    start of a long word ("confirm" for "Confirmer"), or every typed word found in the phrase."""
    wanted = _content(phrase) or words_of(phrase)
    if not wanted or not typed:
        return False
    if typed == wanted:
        return True
    if len(typed) == 1 and len(wanted) == 1:
        a, b = typed[0], wanted[0]
        if len(a) >= 4 and (b.startswith(a) or a.startswith(b)):
            return True
        return len(a) >= 5 and within_edits(a, b, typo_budget(b))
    return len(typed) >= 2 and all(w in wanted for w in typed)


def _slot_time(payload: str) -> datetime | None:
    intent, entities = _parse_payload(payload)
    if intent != "choose_slot" or "meeting_slot" not in entities:
        return None
    try:
        return clock.aware(datetime.fromisoformat(str(entities["meeting_slot"]))).astimezone(zone())
    except ValueError:
        return None


def _time_named(text: str) -> tuple[int | None, int | None, int | None]:
    """(weekday, hour, minute) named in "mardi 10h", "jeudi à 14 h 30", "Tue 3pm"; None for each
    part not named."""
    folded = fold(text)
    day = next((_DAY[w] for w in re.findall(r"[a-z]+", folded) if w in _DAY), None)
    hour = minute = None
    for match in _HOUR.finditer(folded):
        said = match.group(0)
        if not (match.group(3) or re.search(r"h|:", said)):
            continue  # a bare number (a date, a count) is not an hour
        hour = int(match.group(1)) % 12 + 12 if match.group(3) == "pm" else int(match.group(1))
        if match.group(3) == "am" and hour == 12:
            hour = 0
        minute = int(match.group(2)) if match.group(2) else None
        break
    return day, hour, minute


def _slot_choice(text: str, buttons: list[tuple[str, str]]) -> str | None:
    slots = [(payload, _slot_time(payload)) for _, payload in buttons]
    slots = [(p, t) for p, t in slots if t is not None]
    if not slots:
        return None
    day, hour, minute = _time_named(text)
    if day is None and hour is None:
        return None
    fitting = [p for p, t in slots if (day is None or t.weekday() == day) and (hour is None or t.hour == hour)
               and (minute is None or t.minute == minute)]
    return fitting[0] if len(fitting) == 1 else None


def choose(text: str, buttons: list[tuple[str, str]]) -> str | None:
    """The payload of the one button (title, payload) that the typed text names, or None."""
    if not text or not buttons or text.strip().startswith("/") or len(text) > 80:
        return None
    if len(words_of(text)) > MAX_WORDS or text.strip().endswith("?"):
        return None  # a sentence or a question: the assistant reads it as one
    by_time = _slot_choice(text, buttons)
    if by_time is not None:
        return by_time
    typed = _content(text) or words_of(text)
    named = [payload for title, payload in buttons if any(_names(typed, p) for p in _phrases(title, payload))]
    return named[0] if len(set(named)) == 1 else None


# --- the buttons on screen ------------------------------------------------------------------------


# Read for every message typed while buttons are on screen: built once.
_buttons = ButtonPayload.__table__.c
_ON_SCREEN = (select(_buttons.title, _buttons.payload, _buttons.created_at)
              .where(_buttons.chat_id == bindparam("chat"), _buttons.batch == bindparam("batch"))
              .order_by(_buttons.id))


def choices_on_screen(session: Session, client: Client | Known) -> list[tuple[str, str]]:
    if not client.choices_batch:
        return []
    rows = session.execute(_ON_SCREEN, {"chat": client.telegram_id, "batch": client.choices_batch}).all()
    fresh = clock.now() - BUTTON_LIFETIME
    return [(title, payload) for title, payload, created in rows if clock.aware(created) >= fresh]


def typed_choice(session: Session, client: Client | Known, text: str) -> str | None:
    """What a typed message means when it names one of the buttons on screen: that button's payload."""
    buttons = choices_on_screen(session, client)
    return choose(text, buttons) if buttons else None
