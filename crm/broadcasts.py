"""Marketers' broadcasts: segments of the clients who agreed, one delivery row per recipient
(created when the broadcast starts), claimed one at a time by the sender, with every outcome
recorded. A row is claimed (`sending`) before its request to Telegram: a crash leaves it
`unconfirmed`, never sent twice. The sender itself is bot/broadcaster.py."""

from __future__ import annotations

import html
import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from html.parser import HTMLParser

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from crm import clock, desk_hours
from crm.settings import current as settings
from crm.i18n import Refusal, Texts, languages
from crm.models import (
    Broadcast,
    BroadcastDelivery,
    Client,
    ClientTag,
    Consent,
    Lead,
    Order,
    OrderLine,
    Product,
    Staff,
)
from crm.outbox import enqueue

MAX_ATTEMPTS = 5
PROGRESS_EVERY = timedelta(seconds=30)
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler",
                "span", "blockquote"}
FIRST_NAME = re.compile(r"\{(first_name|prenom|prénom)\}")
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024
NAME_ROOM = 64  # Telegram's longest first name: what each {first_name} may grow the text by
# The only attributes Telegram reads; any other makes it refuse the whole message.
ALLOWED_ATTRIBUTES = {"a": {"href"}, "span": {"class"}, "code": {"class"}, "blockquote": {"expandable"}}
ENTITIES = {"lt", "gt", "amp", "quot"}  # with numeric ones (&#38; &#x26;), all Telegram understands
ENTITY = re.compile(r"&(#\d{1,7};|#x[0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]*;)?")

TEXTS = Texts("broadcasts")


ERRORS = Texts("broadcasts.error")


class BroadcastError(Refusal):
    texts = ERRORS


# --- segments --------------------------------------------------------------------------------------

SEGMENT_HELP = ("all | lang:fr|en | category:NAME | product:SKU | last_order>DAYS | last_order<DAYS | no_order | "
                "lead:STATUS | score>=N | score<N | vip | tag:TAG  (combined: all must hold)")


@dataclass(frozen=True)
class Condition:
    kind: str
    value: str | int | None = None


def parse_segment(spec: str) -> list[Condition]:
    """`lang:fr category:"Écrans" last_order>90 vip` -> conditions (all must hold)."""
    try:
        tokens = shlex.split(spec or "")
    except ValueError as exc:
        raise BroadcastError("segment_syntax", error=str(exc)) from None
    conditions = []
    for token in tokens:
        low = token.lower()
        if low in ("all", "tous", "*"):
            continue
        if low in ("vip", "no_order"):
            conditions.append(Condition(low))
            continue
        match = re.fullmatch(r"(last_order|score)\s*(>=|<=|>|<)\s*(\d{1,6})", low)
        if match:
            conditions.append(Condition(f"{match.group(1)}{match.group(2)}", int(match.group(3))))
            continue
        key, sep, value = token.partition(":")
        key = key.lower()
        if sep and value and key in ("lang", "category", "product", "lead", "tag"):
            if key == "lang" and value.lower() not in languages():
                raise BroadcastError("segment_lang", value=value)
            conditions.append(Condition(key, value))
            continue
        raise BroadcastError("segment_unknown", token=token, help=SEGMENT_HELP)
    return conditions


def consenting_clients(session: Session):
    """A query of the clients whose latest consent is granted and who did not block the bot."""
    latest = (select(Consent.client_id, func.max(Consent.id).label("last_id"))
              .group_by(Consent.client_id).subquery())
    return (select(Client).join(latest, latest.c.client_id == Client.id)
            .join(Consent, Consent.id == latest.c.last_id)
            .where(Consent.granted.is_(True), Client.unreachable.is_(False)))


def segment_client_ids(session: Session, spec: str, now: datetime | None = None) -> list[int]:
    """The exact recipients of a segment, in a stable order."""
    now = now or clock.now()
    query = consenting_clients(session)
    for c in parse_segment(spec):
        if c.kind == "lang":
            query = query.where(Client.language == str(c.value).lower())
        elif c.kind == "vip":
            query = query.where(Client.vip.is_(True))
        elif c.kind == "tag":
            query = query.where(Client.id.in_(select(ClientTag.client_id).where(ClientTag.tag == str(c.value).lower())))
        elif c.kind in ("category", "product"):
            # Compared in Python: SQLite's lower() leaves "É" as it is.
            wanted = str(c.value).casefold()
            products = [p.id for p in session.scalars(select(Product))
                        if (p.category if c.kind == "category" else p.sku).casefold() == wanted]
            ordered = (select(Order.client_id).join(OrderLine, OrderLine.order_id == Order.id)
                       .where(OrderLine.product_id.in_(products), Order.status != "cancelled"))
            query = query.where(Client.id.in_(ordered))
        elif c.kind == "no_order":
            query = query.where(Client.id.not_in(select(Order.client_id)))
        elif c.kind.startswith("last_order"):
            last = select(Order.client_id, func.max(Order.created_at).label("at")).group_by(Order.client_id).subquery()
            # Calendar days in the desk's time zone: an order on 1 March is 30 days old on 31 March,
            # whatever the hour and a DST change between. days > N <=> ordered before day today-N.
            tz = desk_hours.zone()
            today = clock.today(tz, now)
            older = clock.start_of_day(today - timedelta(days=int(c.value)), tz)      # days > N
            older_eq = clock.start_of_day(today - timedelta(days=int(c.value) - 1), tz)  # days >= N
            at = {"last_order>": last.c.at < older, "last_order>=": last.c.at < older_eq,
                  "last_order<": last.c.at >= older_eq, "last_order<=": last.c.at >= older}[c.kind]
            query = query.where(Client.id.in_(select(last.c.client_id).where(at)))
        elif c.kind == "lead":
            query = query.where(Client.id.in_(select(Lead.client_id).where(Lead.status == str(c.value).lower())))
        elif c.kind.startswith("score"):
            best = select(Lead.client_id).group_by(Lead.client_id)
            op = c.kind[len("score"):]
            score = func.max(Lead.score)
            having = {">": score > c.value, ">=": score >= c.value, "<": score < c.value, "<=": score <= c.value}[op]
            query = query.where(Client.id.in_(best.having(having)))
    return list(session.scalars(query.with_only_columns(Client.id).order_by(Client.id)))


# --- composing -----------------------------------------------------------------------------------


class _TagCheck(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.error: tuple[str, dict] | None = None  # the first problem: (ERRORS key, values)

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.error = self.error or ("tag_not_allowed", {"tag": tag, "allowed": ", ".join(sorted(ALLOWED_TAGS))})
        allowed = ALLOWED_ATTRIBUTES.get(tag, set())
        for name, value in attrs:
            if name not in allowed:
                self.error = self.error or ("attribute_not_allowed", {
                    "tag": tag, "name": name, "allowed": ", ".join(sorted(allowed)) or "-"})
            elif tag == "span" and value != "tg-spoiler":
                self.error = self.error or ("span_class", {})
            elif tag == "a" and not re.match(r"(https?|tg)://\S+$", value or ""):
                self.error = self.error or ("link_href", {"href": value or ""})
        if tag == "span" and not attrs:
            self.error = self.error or ("span_class", {})
        if tag == "a" and not any(name == "href" for name, _ in attrs):
            self.error = self.error or ("link_href", {"href": ""})
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or ("tag_not_closing", {"tag": tag})


def _entities(text: str) -> str:
    """A bare "&" (Martin & Fils) is written &amp; for Telegram; an entity Telegram does not
    know (&nbsp;) is refused, named."""
    def fix(match: re.Match) -> str:
        entity = match.group(1)
        if entity is None:
            return "&amp;"
        if not entity.startswith("#") and entity[:-1] not in ENTITIES:
            raise BroadcastError("entity_unknown", entity="&" + entity)
        return match.group(0)

    return ENTITY.sub(fix, text)


def longest(text: str) -> int:
    """How long the text can get once each {first_name} is replaced by the longest name."""
    names = len(FIRST_NAME.findall(text))
    return len(FIRST_NAME.sub("", text)) + names * NAME_ROOM


def check_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """The message as Telegram HTML, checked: not empty, under the limit with the longest first
    names in it, tags, attributes and entities Telegram accepts."""
    text = (text or "").strip()
    if not text:
        raise BroadcastError("empty")
    if len(text) > limit:
        raise BroadcastError("too_long" if limit == TEXT_LIMIT else "caption_too_long", length=len(text))
    text = _entities(text)
    if longest(text) > limit:
        raise BroadcastError("too_long_names", count=len(FIRST_NAME.findall(text)), room=NAME_ROOM,
                             length=longest(text), limit=limit)
    checker = _TagCheck()
    checker.feed(text)
    checker.close()
    if checker.error:
        raise BroadcastError(checker.error[0], **checker.error[1])
    if checker.stack:
        raise BroadcastError("tag_never_closed", tag=checker.stack[-1])
    return text


def render(broadcast: Broadcast, language: str, first_name: str) -> str:
    """The text a client reads: their language (French when there is no English version), their
    first name where the marketer put {first_name} / {prénom}."""
    text = broadcast.text_en if language == "en" and broadcast.text_en else broadcast.text_fr
    return FIRST_NAME.sub(html.escape((first_name or "")[:NAME_ROOM], quote=False), text)


def create(session: Session, staff: Staff | None, text_fr: str, text_en: str = "", segment: str = "",
           photo: str | None = None) -> Broadcast:
    limit = CAPTION_LIMIT if photo is not None else TEXT_LIMIT
    text_fr = check_text(text_fr, limit)
    text_en = check_text(text_en, limit) if (text_en or "").strip() else ""
    parse_segment(segment)
    broadcast = Broadcast(created_by=staff.id if staff else None, text_fr=text_fr, text_en=text_en,
                          segment=segment.strip(), photo=photo, state="draft")
    session.add(broadcast)
    session.flush()
    return broadcast


SEND_TIME = (re.compile(r"\s*(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})\s+(?P<H>\d{1,2})[:h](?P<M>\d{2})\s*"),
             re.compile(r"\s*(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})[ T](?P<H>\d{1,2})[:h](?P<M>\d{2})\s*"))


def send_time(text: str, now: datetime | None = None) -> datetime:
    """A send time typed by a marketer, "15/12/2026 09:30" (or "2026-12-15 09:30"), on the desk's
    wall clock, as a UTC instant. Refused with a BroadcastError: not a date, already past, or a
    time that does not exist (inside the spring DST gap, e.g. 28/03/2027 02:30 in Paris). A time
    that exists twice (the autumn fold) is its first occurrence."""
    now = clock.aware(now or clock.now())
    tz = desk_hours.zone()
    tomorrow = clock.today(tz, now) + timedelta(days=1)
    example = f"{tomorrow:%d/%m/%Y} 09:30"
    match = next((m for m in (p.fullmatch(text or "") for p in SEND_TIME) if m), None)
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"])) if match else None
        at = time(int(match["H"]), int(match["M"])) if match else None
    except ValueError:
        day = None
    if day is None:
        raise BroadcastError("when_format", value=(text or "").strip()[:40], example=example)
    shown = f"{day:%d/%m/%Y} {at:%H:%M}"
    try:
        when = clock.local_instant(day, at, tz)
    except clock.NonexistentTime:
        after = clock.clock_instant(day, f"{at:%H:%M}", tz)  # the first instant after the gap
        last_minute = (after - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
        raise BroadcastError("when_gap", value=shown, zone=tz.key,
                             before=f"{last_minute + timedelta(minutes=1):%H:%M}",
                             after=f"{after.astimezone(tz):%H:%M}") from None
    if when <= now:
        raise BroadcastError("when_past", value=shown, zone=tz.key, example=example)
    return when


def schedule(session: Session, broadcast: Broadcast, when: datetime | None = None) -> Broadcast:
    """Confirmed: sent at `when` (now when None). Rows are made when it starts."""
    if broadcast.state != "draft":
        raise BroadcastError("state", id=broadcast.id, state=broadcast.state)
    # Stored in UTC (SQLite keeps the wall-clock time only); a naive time read back is UTC already.
    when = clock.aware(when or clock.now()).astimezone(timezone.utc)
    broadcast.state, broadcast.scheduled_at, broadcast.compose_step = "scheduled", when, None
    return broadcast


def cancel(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise BroadcastError("unknown", id=broadcast_id)
    if broadcast.state in ("done", "cancelled"):
        raise BroadcastError("already", id=broadcast_id, state=broadcast.state)
    broadcast.state, broadcast.finished_at = "cancelled", clock.now()
    session.execute(update(BroadcastDelivery).where(BroadcastDelivery.broadcast_id == broadcast_id,
                                                    BroadcastDelivery.status == "pending")
                    .values(status="cancelled"))
    return broadcast


# --- the composer: a marketer writes a broadcast step by step, in Telegram -----------------------
# A draft's `compose_step`: text_fr -> text_en -> segment -> when_choice (-> when) -> confirm. The
# typed steps take a message; each button is accepted at one step only (CHOICES), by the draft's
# author; "drop" at any step of a draft; "cancel" (from /broadcasts) on any scheduled or running
# broadcast, by any marketer.
TYPED_STEPS = ("text_fr", "text_en", "segment", "when")
CHOICES = {"same": "text_en", "seg:all": "segment", "seg:vip": "segment", "seg:fr": "segment",
           "seg:en": "segment", "now": "when_choice", "later": "when_choice", "ok": "confirm"}
SEGMENT_CHOICES = {"seg:all": "all", "seg:vip": "vip", "seg:fr": "lang:fr", "seg:en": "lang:en"}


@dataclass(frozen=True)
class Draft:
    id: int
    step: str | None


def start_draft(session: Session, staff_id: int) -> Draft:
    """A new draft (one at a time: an older one of the same author is cancelled)."""
    for old in session.scalars(select(Broadcast).where(Broadcast.created_by == staff_id, Broadcast.state == "draft")):
        old.state = "cancelled"
    draft = Broadcast(created_by=staff_id, state="draft", compose_step="text_fr")
    session.add(draft)
    session.flush()
    return Draft(draft.id, draft.compose_step)


def waiting_draft(session: Session, staff_id: int) -> Draft | None:
    """The author's draft waiting for a typed answer (a text, a segment, a date), if any."""
    draft = session.scalar(select(Broadcast).where(Broadcast.created_by == staff_id, Broadcast.state == "draft")
                           .order_by(Broadcast.id.desc()).limit(1))
    return Draft(draft.id, draft.compose_step) if draft and draft.compose_step in TYPED_STEPS else None


def accepts(session: Session, broadcast_id: int, staff_id: int, choice: str) -> bool:
    """Whether the button `choice` of broadcast `broadcast_id` may be pressed by this marketer now."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        return False
    if choice == "cancel":
        return True  # crm.broadcasts.cancel says whether it still can be
    if broadcast.created_by != staff_id or broadcast.state != "draft":
        return False
    return choice == "drop" or CHOICES.get(choice) == broadcast.compose_step


def save_text(session: Session, draft_id: int, step: str, text: str, photo: str | None = None) -> str:
    """The French (with its photo) or English text of a draft, checked; returns the next step."""
    draft = session.get(Broadcast, draft_id)
    checked = check_text(text)
    if step == "text_fr":
        draft.text_fr, draft.photo, draft.compose_step = checked, photo, "text_en"
    else:
        draft.text_en, draft.compose_step = checked, "segment"
    return draft.compose_step


def set_step(session: Session, draft_id: int, step: str) -> None:
    session.get(Broadcast, draft_id).compose_step = step


def drop(session: Session, draft_id: int) -> None:
    session.get(Broadcast, draft_id).state = "cancelled"


@dataclass(frozen=True)
class Preview:
    """The draft as its author's first client would see it, and how many clients it would reach."""

    text: str
    photo: str | None
    count: int


def choose_segment(session: Session, draft_id: int, spec: str, language: str) -> Preview:
    """The segment of a draft (BroadcastError when it does not parse); then it asks when to send."""
    parse_segment(spec)
    draft = session.get(Broadcast, draft_id)
    draft.segment, draft.compose_step = spec.strip(), "when_choice"
    first_name = session.get(Staff, draft.created_by).name.split()[0]
    return Preview(render(draft, language, first_name), draft.photo, len(segment_client_ids(session, spec)))


def choose_time(session: Session, draft_id: int, when: datetime | None) -> int:
    """When to send (None: at once), kept until confirmed; returns how many clients it reaches."""
    draft = session.get(Broadcast, draft_id)
    draft.scheduled_at = when.astimezone(timezone.utc) if when else None
    draft.compose_step = "confirm"
    return len(segment_client_ids(session, draft.segment))


def confirm(session: Session, draft_id: int) -> Broadcast:
    draft = session.get(Broadcast, draft_id)
    return schedule(session, draft, draft.scheduled_at)


def listing(session: Session, limit: int = 10) -> list[Broadcast]:
    return list(session.scalars(select(Broadcast).where(Broadcast.state != "draft")
                                .order_by(Broadcast.id.desc()).limit(limit)))


# --- sending ----------------------------------------------------------------------------------------


def start_due(session: Session, now: datetime | None = None) -> list[int]:
    """Scheduled broadcasts whose time has come: running, with one delivery row per recipient
    (the segment is evaluated now, so an opt-out before the start is respected)."""
    now = now or clock.now()
    started = []
    for broadcast in session.scalars(select(Broadcast).where(Broadcast.state == "scheduled",
                                                             Broadcast.scheduled_at <= now)):
        taken = session.execute(update(Broadcast).where(Broadcast.id == broadcast.id, Broadcast.state == "scheduled")
                                .values(state="running", started_at=now, last_progress_at=now)).rowcount
        if taken != 1:
            continue  # another sender started it
        ids = segment_client_ids(session, broadcast.segment, now)
        if ids:
            session.execute(insert(BroadcastDelivery), [
                {"broadcast_id": broadcast.id, "client_id": i, "status": "pending", "attempts": 0} for i in ids])
        _tell_creator(session, broadcast, "started", total=len(ids))
        started.append(broadcast.id)
    return started


@dataclass(frozen=True)
class Job:
    delivery_id: int
    broadcast_id: int
    chat_id: int
    language: str
    text: str
    photo: str | None


def claim_next(session: Session, now: datetime | None = None) -> Job | None:
    """The next row to send, claimed (`sending`). A recipient who opted out since the start is
    marked `opted_out` and skipped."""
    now = now or clock.now()
    while True:
        row = session.execute(
            select(BroadcastDelivery, Client, Broadcast)
            .join(Client, Client.id == BroadcastDelivery.client_id)
            .join(Broadcast, Broadcast.id == BroadcastDelivery.broadcast_id)
            .where(Broadcast.state == "running", BroadcastDelivery.status == "pending",
                   or_(BroadcastDelivery.next_attempt_at.is_(None), BroadcastDelivery.next_attempt_at <= now))
            .order_by(BroadcastDelivery.id).limit(1)).first()
        if row is None:
            return None
        delivery, client, broadcast = row
        if not _consents(session, client.id) or client.unreachable:
            _set(session, delivery.id, "pending", status="opted_out" if not client.unreachable else "blocked")
            continue
        if _set(session, delivery.id, "pending", status="sending", claimed_at=now) != 1:
            continue  # another sender claimed it
        return Job(delivery.id, broadcast.id, client.telegram_id, client.language,
                   render(broadcast, client.language, client.first_name), broadcast.photo)


def _consents(session: Session, client_id: int) -> bool:
    granted = session.scalar(select(Consent.granted).where(Consent.client_id == client_id)
                             .order_by(Consent.id.desc()).limit(1))
    return bool(granted)


def _set(session: Session, delivery_id: int, expected: str, **values) -> int:
    return session.execute(update(BroadcastDelivery).where(BroadcastDelivery.id == delivery_id,
                                                           BroadcastDelivery.status == expected)
                           .values(**values).execution_options(synchronize_session=False)).rowcount


def mark_sent(session: Session, delivery_id: int) -> None:
    _set(session, delivery_id, "sending", status="sent", sent_at=clock.now())


def mark_blocked(session: Session, delivery_id: int, error: str) -> None:
    """Forbidden: the client blocked the bot. Never retried, for this or any later broadcast."""
    _set(session, delivery_id, "sending", status="blocked", last_error=error[:500])
    client_id = session.scalar(select(BroadcastDelivery.client_id).where(BroadcastDelivery.id == delivery_id))
    session.execute(update(Client).where(Client.id == client_id).values(unreachable=True))


def mark_failed(session: Session, delivery_id: int, error: str) -> None:
    _set(session, delivery_id, "sending", status="failed", last_error=error[:500])


def mark_unconfirmed(session: Session, delivery_id: int, error: str) -> None:
    """Telegram may have delivered it (a timeout after the request left): not sent again."""
    _set(session, delivery_id, "sending", status="unconfirmed", last_error=error[:500])


def retry_later(session: Session, delivery_id: int, error: str, now: datetime | None = None) -> None:
    """A network error or a 5xx: again after 2, 4, 8... seconds, MAX_ATTEMPTS times at most."""
    now = now or clock.now()
    attempts = session.scalar(select(BroadcastDelivery.attempts).where(BroadcastDelivery.id == delivery_id)) + 1
    if attempts >= MAX_ATTEMPTS:
        _set(session, delivery_id, "sending", status="failed", attempts=attempts, last_error=error[:500])
        return
    _set(session, delivery_id, "sending", status="pending", attempts=attempts, last_error=error[:500],
         next_attempt_at=now + timedelta(seconds=min(2 ** attempts, 60)))


def release(session: Session, delivery_id: int) -> None:
    """Telegram asked us to slow down (RetryAfter): the row goes back, unsent and uncounted."""
    _set(session, delivery_id, "sending", status="pending")


def stale_claim() -> timedelta:
    """A send never takes this long (BROADCAST_CLAIM_TIMEOUT, 60 s): an older claim died with its
    sender. Time-based, so that two senders running at once never recover each other's rows."""
    return settings().claim_timeout("broadcast")


def recover(session: Session, now: datetime | None = None) -> int:
    """Rows claimed by a sender that died: `unconfirmed` (it may have reached Telegram)."""
    limit = (now or clock.now()) - stale_claim()
    return session.execute(update(BroadcastDelivery).where(BroadcastDelivery.status == "sending",
                                                           BroadcastDelivery.claimed_at < limit)
                           .values(status="unconfirmed", last_error="the sender stopped while sending")
                           .execution_options(synchronize_session=False)).rowcount


def counts(session: Session, broadcast_id: int) -> dict[str, int]:
    rows = session.execute(select(BroadcastDelivery.status, func.count()).where(
        BroadcastDelivery.broadcast_id == broadcast_id).group_by(BroadcastDelivery.status)).all()
    out = {state: 0 for state in ("pending", "sending", "sent", "unconfirmed", "failed", "blocked", "opted_out",
                                  "cancelled")}
    out.update({state: n for state, n in rows})
    out["total"] = sum(n for _, n in rows)
    return out


def follow_up(session: Session, now: datetime | None = None) -> list[int]:
    """Progress to the marketer every PROGRESS_EVERY, and the final report when nothing is left
    to send. Returns the broadcasts finished now."""
    now = now or clock.now()
    finished = []
    for broadcast in session.scalars(select(Broadcast).where(Broadcast.state == "running")):
        numbers = counts(session, broadcast.id)
        # Claimed by a conditional UPDATE: with two senders, one of them reports (once).
        claim = update(Broadcast).where(Broadcast.id == broadcast.id, Broadcast.state == "running")
        if numbers["pending"] == 0 and numbers["sending"] == 0:
            if session.execute(claim.values(state="done", finished_at=now)
                               .execution_options(synchronize_session=False)).rowcount != 1:
                continue
            _tell_creator(session, broadcast, "report", **{k: v for k, v in numbers.items()})
            finished.append(broadcast.id)
        elif broadcast.last_progress_at is None or clock.aware(broadcast.last_progress_at) <= now - PROGRESS_EVERY:
            last = Broadcast.last_progress_at
            won = claim.where(last.is_(None) if broadcast.last_progress_at is None else last == broadcast.last_progress_at)
            if session.execute(won.values(last_progress_at=now).execution_options(synchronize_session=False)).rowcount != 1:
                continue
            done = numbers["total"] - numbers["pending"] - numbers["sending"]
            _tell_creator(session, broadcast, "progress", done=done, total=numbers["total"], sent=numbers["sent"])
    return finished


def _tell_creator(session: Session, broadcast: Broadcast, key: str, **values) -> None:
    creator = session.get(Staff, broadcast.created_by) if broadcast.created_by else None
    if creator is not None and creator.active:
        enqueue(session, creator.telegram_id, TEXTS.t(key, creator.language, id=broadcast.id, **values))


def pending_work(session: Session, now: datetime | None = None) -> bool:
    """Anything for the sender to do now (cheap to ask every second)."""
    now = now or clock.now()
    due = session.scalar(select(func.count(Broadcast.id)).where(or_(
        Broadcast.state == "running", and_(Broadcast.state == "scheduled", Broadcast.scheduled_at <= now))))
    return bool(due)
