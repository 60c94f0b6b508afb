"""The review queue: client phrasings the assistant did not understand well, kept for managers
to label, so that the next model learns them (issue 15: review, retrain, swap).

What is kept: a message that fell back (nlu_fallback), was understood with a low confidence, or
was followed within a minute by the client rephrasing it or asking for a person. Its text is
masked first (e-mails, phone numbers, order and complaint numbers, long numbers, the client's own
names), then kept once per normalised text with how often it came back, and the model's three
likeliest intents with their confidences.

Labelling: each reviewer claims one item at a time (a conditional UPDATE: two reviewers never get
the same one), and a label is written only by the reviewer holding the claim, and only once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from crm import clock, desk_hours
from crm.alerts import announce
from crm.company import company_profile
from crm.db import insert_unless_exists
from crm.i18n import Refusal, Texts
from crm.models import REVIEW_REASONS, Announcement, Client, ConversationMessage, Retraining, ReviewItem
from crm.settings import ROOT
from crm.text import fold

MAX_TEXT = 500  # characters kept of a message (the start carries the request)
CLAIM = timedelta(minutes=15)  # a reviewer who walked away: the item goes to the next one
# Intents a label may not be: the fallback itself, and those only buttons send.
NOT_LABELS = ("nlu_fallback", "inform", "choose_slot")
OFF_TOPIC = "off_topic"

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
REFERENCE = {"order": re.compile(r"\bCMD[-\s]?\d{1,9}\b", re.IGNORECASE),
             "complaint": re.compile(r"\bREC[-\s]?\d{1,9}\b", re.IGNORECASE)}
PHONE = re.compile(r"(?<![\w])\+?\d[\d .\-/()]{6,}\d(?![\w])")
NUMBER = re.compile(r"\d{6,}")
# A postal address: a street number and a kind of way, then up to a comma or the sentence's end
# ("17 allée des Tilleuls", "3 bis, rue de Paris"), and a postcode with its town ("35000 Rennes").
STREET = re.compile(r"\b\d{1,4}\s*(?:bis|ter)?,?\s+(?:rue|avenue|av\.?|all[ée]e|boulevard|bd|chemin|place|"
                    r"impasse|route|quai|cours|square|passage|voie|rond-point|lieu-dit|street|st\.?|road|rd\.?|lane|"
                    r"drive|way)\b[^,.;:!?\n]*", re.IGNORECASE)
STREET_EN = re.compile(r"\b\d{1,4}\s+(?:[A-Z][\w'-]*\s+){1,3}(?:street|st|road|rd|avenue|ave|lane|drive|way|"
                       r"boulevard|place|square)\b\.?", re.IGNORECASE)
POSTCODE = re.compile(r"\b(?:F-)?\d{5}\s+[A-ZÀ-Ý][\w'-]*(?:[\s-]+[A-ZÀ-Ý][\w'-]*)*")


class ReviewError(Refusal):
    """A label refused: `unknown_intent`, `not_yours` (another reviewer has it, or it was
    labelled meanwhile), `unknown` (no such item)."""

    texts = Texts("review.error")


def _phone(match: re.Match) -> str:
    digits = sum(c.isdigit() for c in match.group())  # E.164: 15 digits at most; a card has 16
    return "[phone]" if 8 <= digits <= 15 else "[number]" if digits > 15 else match.group()


def mask(text: str, names: tuple[str, ...] = ()) -> str:
    """The text with personal data replaced by a marker: [email], [address] (a street address, a
    postcode and its town), [order], [complaint], [phone], [number], [name] (each of `names`, the
    client's own, as a whole word in any case)."""
    masked = EMAIL.sub("[email]", text)
    masked = POSTCODE.sub("[address]", STREET_EN.sub("[address]", STREET.sub("[address]", masked)))
    for marker, pattern in REFERENCE.items():
        masked = pattern.sub(f"[{marker}]", masked)
    masked = PHONE.sub(_phone, masked)
    masked = NUMBER.sub("[number]", masked)
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len, reverse=True):
        masked = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "[name]", masked, flags=re.IGNORECASE)
    return masked


def normalise(text: str) -> str:
    """What makes two phrasings "the same": case, accents, punctuation and spaces aside."""
    return " ".join(re.findall(r"\[\w+\]|\w+", fold(text)))


def _key(text: str) -> str:
    return hashlib.sha256(normalise(text).encode()).hexdigest()


def note(session: Session, text: str, reason: str, predictions: list[tuple[str, float]], language: str = "fr",
         names: tuple[str, ...] = (), message_id: str | None = None, now: datetime | None = None) -> bool:
    """Keep a misunderstood message for review, masked; counted once per message (`message_id`,
    Rasa's id of the user message: several actions may see it). A labelled item coming back is
    counted (the new model is not in yet); a skipped one comes back to the queue. Returns whether
    it was kept (a button's payload, an empty or numbers-only message is not)."""
    if reason not in REVIEW_REASONS:
        raise ValueError(f"unknown review reason {reason!r}")
    text = (text or "").strip()
    if not text or text.startswith("/"):
        return False
    masked = mask(text[:MAX_TEXT], names)
    if not re.search(r"[^\W\d_]{2,}", re.sub(r"\[\w+\]", "", masked)):
        return False  # nothing left to learn from but markers and numbers
    now = now or clock.now()
    key = _key(masked)
    top = [[str(intent), round(float(confidence), 3)] for intent, confidence in predictions[:3]]
    if insert_unless_exists(session, ReviewItem, dict(
            key=key, text=masked, language=language, reason=reason, predictions=top, count=1,
            last_message_id=message_id, first_seen=now, last_seen=now, status="pending"), ["key"]):
        return True
    again = session.execute(
        update(ReviewItem).where(ReviewItem.key == key, or_(ReviewItem.last_message_id.is_(None),
                                                            ReviewItem.last_message_id != (message_id or "")))
        .values(count=ReviewItem.count + 1, last_seen=now, last_message_id=message_id, predictions=top)
        .execution_options(synchronize_session=False))
    if again.rowcount:
        session.execute(update(ReviewItem).where(ReviewItem.key == key, ReviewItem.status == "skipped")
                        .values(status="pending").execution_options(synchronize_session=False))
    return True


@dataclass(frozen=True)
class Item:
    """An item as a reviewer sees it."""

    id: int
    text: str
    language: str
    reason: str
    predictions: tuple[tuple[str, float], ...]
    count: int
    status: str
    label: str | None


def _item(row: ReviewItem) -> Item:
    return Item(row.id, row.text, row.language, row.reason, tuple((p[0], p[1]) for p in row.predictions or []),
                row.count, row.status, row.label)


def next_item(session: Session, staff_id: int, now: datetime | None = None) -> Item | None:
    """The item this reviewer holds, else the most frequent one nobody holds, claimed for them;
    None when the queue is empty."""
    now = now or clock.now()
    stale = now - CLAIM
    held = session.scalar(select(ReviewItem).where(ReviewItem.status == "pending", ReviewItem.claimed_by == staff_id,
                                                   ReviewItem.claimed_at > stale).limit(1))
    if held is not None:
        return _item(held)
    free = or_(ReviewItem.claimed_by.is_(None), ReviewItem.claimed_at <= stale)
    for candidate in session.scalars(select(ReviewItem.id).where(ReviewItem.status == "pending", free)
                                     .order_by(ReviewItem.count.desc(), ReviewItem.last_seen.desc(), ReviewItem.id)
                                     .limit(10)).all():
        won = session.execute(update(ReviewItem).where(ReviewItem.id == candidate, ReviewItem.status == "pending", free)
                              .values(claimed_by=staff_id, claimed_at=now)
                              .execution_options(synchronize_session=False)).rowcount
        if won == 1:
            return _item(session.get(ReviewItem, candidate, populate_existing=True))
    return None


@lru_cache(maxsize=1)
def intents() -> tuple[str, ...]:
    """The intents a message may be labelled with: the domain's, but for those only buttons send."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return tuple(i for i in domain.get("intents", []) if isinstance(i, str) and i not in NOT_LABELS)


def label(session: Session, item_id: int, intent: str, staff_id: int | None, now: datetime | None = None) -> Item:
    """Label an item with an intent, or OFF_TOPIC, or "skip" (back to the queue for later).
    A reviewer (`staff_id`) labels only the item they hold; the command line (None) any pending
    one. Raises ReviewError; a label is never overwritten."""
    if intent != "skip" and intent != OFF_TOPIC and intent not in intents():
        raise ReviewError("unknown_intent", intent=intent)
    row = session.get(ReviewItem, item_id)
    if row is None:
        raise ReviewError("unknown", id=item_id)
    now = now or clock.now()
    mine = [ReviewItem.claimed_by == staff_id, ReviewItem.claimed_at > now - CLAIM] if staff_id is not None else []
    if intent == "skip":
        values = dict(status="skipped")
    else:
        values = dict(status="labelled" if intent != OFF_TOPIC else "off_topic", label=intent,
                      labelled_by=staff_id, labelled_at=now)
    done = session.execute(update(ReviewItem).where(ReviewItem.id == item_id, ReviewItem.status == "pending", *mine)
                           .values(claimed_by=None, claimed_at=None, **values)
                           .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise ReviewError("not_yours", id=item_id)
    return _item(session.get(ReviewItem, item_id, populate_existing=True))


def pending(session: Session, limit: int = 20) -> list[Item]:
    """The queue, most frequent first (the command line's `review list`)."""
    rows = session.scalars(select(ReviewItem).where(ReviewItem.status == "pending")
                           .order_by(ReviewItem.count.desc(), ReviewItem.last_seen.desc(), ReviewItem.id).limit(limit))
    return [_item(row) for row in rows]


def labelled_examples(session: Session) -> dict[str, list[str]]:
    """intent -> the labelled texts, for the training data (off-topic ones go to out_of_scope)."""
    examples: dict[str, list[str]] = {}
    for text, intent in session.execute(select(ReviewItem.text, ReviewItem.label).where(
            ReviewItem.status.in_(("labelled", "off_topic"))).order_by(ReviewItem.id)):
        examples.setdefault("out_of_scope" if intent == OFF_TOPIC else intent, []).append(text)
    return examples


# What a masked marker becomes in the training data: a value of its kind, so that the sentence
# reads as clients write it (a bare "[phone]" would also be Rasa's entity-annotation syntax).
MARKER_VALUES = {"[email]": "client@example.com", "[address]": "12 rue de la Paix", "[order]": "CMD-000123", "[complaint]": "REC-000045",
                 "[phone]": "06 12 34 56 78", "[number]": "123456", "[name]": "Dupont"}


class _Dumper(yaml.SafeDumper):
    """Examples as a literal block, the way Rasa's own files write them."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def training_examples(labelled: dict[str, list[str]]) -> dict[str, list[str]]:
    """The labelled texts as training sentences: each marker replaced by a value of its kind."""
    examples: dict[str, list[str]] = {}
    for intent, texts in labelled.items():
        for text in texts:
            for marker, value in MARKER_VALUES.items():
                text = text.replace(marker, value)
            examples.setdefault(intent, []).append(" ".join(text.split()))
    return {intent: list(dict.fromkeys(texts)) for intent, texts in examples.items()}


def write_training_data(session: Session, path: Path) -> int:
    """The labelled examples as a Rasa NLU file at `path` (written whole, then moved in place);
    returns how many. With none, the file is removed: the model is the repository's alone."""
    examples = training_examples(labelled_examples(session))
    total = sum(len(texts) for texts in examples.values())
    if total == 0:
        path.unlink(missing_ok=True)
        return 0
    nlu = [{"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)}
           for intent, texts in sorted(examples.items())]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_suffix(".tmp")
    draft.write_text("# The managers' labels (python -m bot review): generated, do not edit.\n"
                     + yaml.dump({"version": "3.1", "nlu": nlu}, Dumper=_Dumper, allow_unicode=True, sort_keys=False,
                                 width=1000), encoding="utf-8")
    draft.replace(path)
    return total


RETRAIN = "retrain:"  # the announcements (crm/alerts.py) that mark each retraining


def labels_since(session: Session, since: datetime | None) -> int:
    """Labels given (intents and off topic) after `since` (all of them when None)."""
    query = select(func.count(ReviewItem.id)).where(ReviewItem.status.in_(("labelled", "off_topic")))
    if since is not None:
        query = query.where(ReviewItem.labelled_at > since)
    return int(session.scalar(query) or 0)


def last_retraining(session: Session) -> datetime | None:
    return session.scalar(select(func.max(Announcement.created_at)).where(Announcement.key.like(f"{RETRAIN}%")))


def note_retraining(session: Session, now: datetime | None = None) -> None:
    """A retraining starts now (by /retrain or the command line): new labels count from here."""
    announce(session, f"{RETRAIN}manual:{(now or clock.now()).isoformat()}")


def claim_nightly_retraining(session: Session, now: datetime | None = None) -> bool:
    """Whether this process retrains now: past review.retrain_at in the desk's time zone, at
    least review.retrain_after_labels labels since the last retraining, and not yet tonight
    (claimed once whatever the number of bot processes)."""
    settings = company_profile()["review"]
    needed = settings["retrain_after_labels"]
    if not needed:
        return False
    now = now or clock.now()
    local = now.astimezone(desk_hours.zone())
    hour, minute = (int(part) for part in settings["retrain_at"].split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return False
    if labels_since(session, last_retraining(session)) < needed:
        return False
    return announce(session, f"{RETRAIN}{local.date().isoformat()}")


def counts(session: Session) -> dict[str, int]:
    """How many items in each status."""
    found = dict(session.execute(select(ReviewItem.status, func.count(ReviewItem.id)).group_by(ReviewItem.status)).all())
    return {status: int(found.get(status, 0)) for status in ("pending", "labelled", "off_topic", "skipped")}


def note_fallback(session: Session, message_row: int, telegram_id: int) -> bool:
    """The model fell back on this client message (`message_row`, the bot's row id that Rasa
    passes on in the message's metadata; only a row of this client's counts)."""
    client = select(Client.id).where(Client.telegram_id == telegram_id).scalar_subquery()
    return session.execute(
        update(ConversationMessage).where(ConversationMessage.id == message_row, ConversationMessage.client_id == client,
                                          ConversationMessage.direction == "in")
        .values(understood=False).execution_options(synchronize_session=False)).rowcount == 1


@dataclass(frozen=True)
class Understanding:
    """Client texts the model read over a period, and how many it did not fall back on."""

    messages: int
    understood: int

    @property
    def rate(self) -> float | None:
        return self.understood / self.messages if self.messages else None


def understanding(session: Session, start: datetime, end: datetime) -> Understanding:
    """The understanding rate from `start` (included) to `end` (excluded): of the clients' texts
    the model read (conversation_messages.understood set), the share it did not fall back on."""
    messages, understood = session.execute(
        select(func.count(ConversationMessage.id),
               func.count(ConversationMessage.id).filter(ConversationMessage.understood.is_(True)))
        .where(ConversationMessage.created_at >= start, ConversationMessage.created_at < end,
               ConversationMessage.understood.is_not(None))).one()
    return Understanding(int(messages or 0), int(understood or 0))


STATS_DAYS = 7  # the understanding rate over the last week, and the week before and after each swap
STATS_SWAPS = 5


@dataclass(frozen=True)
class Swap:
    """A retraining and the understanding rate in the week before it and since (a week at most)."""

    at: datetime
    swapped: bool
    reason: str
    before_held_out: float | None
    after_held_out: float | None
    week_before: Understanding
    week_after: Understanding


@dataclass(frozen=True)
class Stats:
    counts: dict[str, int]
    labels: int                  # labels given (intents and off topic)
    labels_since_retraining: int
    last_week: Understanding
    retrainings: tuple[Swap, ...]  # newest first


def stats(session: Session, now: datetime | None = None) -> Stats:
    """What /review stats and `python -m bot review stats` show."""
    now = now or clock.now()
    week = timedelta(days=STATS_DAYS)
    found = counts(session)
    swaps = []
    for row in session.scalars(select(Retraining).order_by(Retraining.at.desc(), Retraining.id.desc())
                               .limit(STATS_SWAPS)):
        at = clock.aware(row.at)
        swaps.append(Swap(at, row.swapped, row.reason, row.before_held_out, row.after_held_out,
                          understanding(session, at - week, at), understanding(session, at, min(now, at + week))))
    return Stats(found, found["labelled"] + found["off_topic"], labels_since(session, last_retraining(session)),
                 understanding(session, now - week, now), tuple(swaps))


def record_retraining(session: Session, values: dict, now: datetime | None = None) -> None:
    """Keep a retraining's outcome (bot/retrain.py) for the stats."""
    session.add(Retraining(at=now or clock.now(), **values))
