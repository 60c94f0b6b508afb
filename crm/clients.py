"""Clients: registration from Telegram, language, and the conversation record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from crm import clock
from crm.settings import current as settings
from crm.db import insert_unless_exists
from crm.i18n import Refusal, Texts, languages, normalise_language
from crm.models import Client, ConversationMessage


def language_from_code(code: str | None) -> str:
    """French by default; English when the Telegram client is set to English."""
    return normalise_language(code)


@dataclass(frozen=True)
class TelegramProfile:
    telegram_id: int
    first_name: str = ""
    last_name: str = ""
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class Known:
    """A known client as a message's path to the assistant needs them."""
    id: int
    telegram_id: int
    language: str
    choices_batch: str | None


def _names(profile: TelegramProfile) -> dict:
    return {"first_name": (profile.first_name or "")[:255], "last_name": (profile.last_name or "")[:255],
            "username": (profile.username or None) and profile.username[:255]}


# The statements of every message to the assistant, built once: building one costs more than
# running it (measured: about 0.25 ms of CPU each, on the one core of a bot process). On the
# tables' own columns: an ORM attribute anywhere in a statement sends it through the ORM's
# execution layer.
_clients, _messages = Client.__table__.c, ConversationMessage.__table__.c
_TOUCH = (update(Client.__table__).where(_clients.telegram_id == bindparam("telegram"))
          .values(first_name=bindparam("first"), last_name=bindparam("last"), username=bindparam("user"),
                  last_seen=bindparam("seen"))
          .returning(_clients.id, _clients.telegram_id, _clients.language, _clients.choices_batch))
_RECORDED = (select(_messages.id).where(_messages.update_id == bindparam("update"),
                                        _messages.created_at >= bindparam("since"))
             .order_by(_messages.id).limit(1))
_INCOMING = insert(ConversationMessage.__table__).returning(_messages.id)
_CHOICES = update(Client.__table__).where(_clients.id == bindparam("client")).values(choices_batch=bindparam("batch"))
_ANSWERS = insert(ConversationMessage.__table__)
_SETTLED = update(ConversationMessage.__table__).where(_messages.id == bindparam("message"))
_ANSWERED, _OWED = _SETTLED.values(answered=True), _SETTLED.values(answered=False, claimed_at=None)


def touch_client(session: Session, profile: TelegramProfile) -> Known | None:
    """A known client's names and last visit refreshed in one statement, nothing loaded first (the
    path of every message); None for someone who is no client yet (register_client)."""
    names = _names(profile)
    row = session.execute(_TOUCH, {"telegram": profile.telegram_id, "first": names["first_name"],
                                   "last": names["last_name"], "user": names["username"],
                                   "seen": clock.now()}).first()
    return Known(*row) if row else None


def touch_or_register(session: Session | Connection, profile: TelegramProfile) -> Known:
    """touch_client, and for someone who is no client yet register_client's work in Core
    statements (a newcomer's first message on the path of every message, on a Connection)."""
    known = touch_client(session, profile)
    if known is not None:
        return known
    insert_unless_exists(session, Client, _new_client(profile), ["telegram_id"])
    return touch_client(session, profile)


def _new_client(profile: TelegramProfile) -> dict:
    """A new client's row. Two first updates of a new user at once (two replicas, or a message
    and a button): one creates it, the other finds it (insert_unless_exists)."""
    now = clock.now()
    return {"telegram_id": profile.telegram_id, "language": language_from_code(profile.language_code),
            "first_seen": now, "last_seen": now, **_names(profile), "vip": False, "unreachable": False}


def register_client(session: Session, profile: TelegramProfile) -> tuple[Client, bool]:
    """Find or create the client; keep names fresh. Returns (client, created)."""
    client = session.scalar(select(Client).where(Client.telegram_id == profile.telegram_id))
    created = client is None
    if created:
        created = insert_unless_exists(session, Client, _new_client(profile), ["telegram_id"])
        client = session.scalar(select(Client).where(Client.telegram_id == profile.telegram_id))
    for name, value in _names(profile).items():
        setattr(client, name, value)
    client.last_seen = clock.now()
    session.flush()
    return client, created


def set_reachable(session: Session, telegram_id: int, reachable: bool) -> bool:
    """A client wrote, pressed a button or unblocked the bot (reachable), or blocked it (not).
    Returns True when that changed something. Read first: most updates change nothing, and a
    plain read takes no write lock."""
    current = session.scalar(select(Client.unreachable).where(Client.telegram_id == telegram_id))
    if current is None or current is (not reachable):
        return False
    session.execute(update(Client).where(Client.telegram_id == telegram_id).values(unreachable=not reachable))
    return True


def set_language(session: Session, client: Client, language: str) -> None:
    if language not in languages():
        raise ValueError(f"unsupported language {language!r}")
    client.language = language


def record_message(
    session: Session,
    client: Client,
    direction: str,
    text: str,
    *,
    kind: str = "text",
    answered: bool = True,
    update_id: int | None = None,
    understood: bool | None = None,
) -> ConversationMessage:
    """Record a message. A message to the assistant is recorded `answered=False`, claimed by this
    process until its answer is delivered (`answered(...)`)."""
    message = ConversationMessage(
        client_id=client.id, direction=direction, text=text, kind=kind, answered=answered, update_id=update_id,
        claimed_at=None if answered else clock.now(), understood=understood,
    )
    session.add(message)
    session.flush()
    return message


def record_incoming(session: Session, client_id: int, text: str, kind: str, update_id: int | None,
                    understood: bool | None) -> int:
    """A client's message to the assistant, recorded owed its answer and claimed by this process
    (as record_message(..., answered=False) records it, in one statement): its id."""
    return session.execute(_INCOMING, {"client_id": client_id, "direction": "in", "text": text, "kind": kind,
                                       "answered": False, "update_id": update_id, "claimed_at": clock.now(),
                                       "understood": understood}).scalar_one()


REPLAY_WINDOW = timedelta(days=1)  # how long an update may be replayed (crm.inbox keeps it that long)


def recorded_message(session: Session, update_id: int | None) -> ConversationMessage | None:
    """The message of this Telegram update if it is already recorded (the update is replayed
    after a crash: what was done for it is not done twice). Only recent messages count: update
    ids are not unique over time."""
    found = recorded_id(session, update_id)
    return session.get(ConversationMessage, found) if found is not None else None


def recorded_id(session: Session | Connection, update_id: int | None) -> int | None:
    """The id of the message of this update if it is already recorded (recorded_message)."""
    if update_id is None:
        return None
    return session.scalar(_RECORDED, {"update": update_id, "since": clock.now() - REPLAY_WINDOW})


def recorded(session: Session, update_id: int | None) -> bool:
    return recorded_message(session, update_id) is not None


def mark_answered(session: Session, message_id: int) -> None:
    """Its answer was delivered."""
    settle(session, message_id)


def answer_claim_timeout() -> timedelta:
    """An answer never takes this long (ANSWER_CLAIM_TIMEOUT, 60 s): an older claim died with
    the bot process that held it, and the message is owed an answer again."""
    return settings().claim_timeout("answer")


def _owed(now: datetime):
    """Unanswered and nobody working on it (never claimed, released, or claimed by a dead process)."""
    return (ConversationMessage.direction == "in") & ConversationMessage.answered.is_(False) & (
        ConversationMessage.claimed_at.is_(None) | (ConversationMessage.claimed_at < now - answer_claim_timeout()))


@dataclass(frozen=True)
class Unanswered:
    """A client's last message that the assistant could not answer (Rasa was down)."""

    message_id: int
    telegram_id: int
    text: str
    kind: str
    language: str
    first_name: str
    last_name: str
    username: str | None


def backlog(session: Session, limit: int = 50) -> list[Unanswered]:
    """Each client's last unanswered message, oldest first. A message the client followed up
    (they wrote again and got an answer) is settled here without being answered twice."""
    last = (select(ConversationMessage.client_id, func.max(ConversationMessage.id).label("last"))
            .where(ConversationMessage.direction == "in").group_by(ConversationMessage.client_id).subquery())
    pending = list(session.execute(
        select(ConversationMessage, Client, last.c.last)
        .join(Client, Client.id == ConversationMessage.client_id).join(last, last.c.client_id == Client.id)
        .where(_owed(clock.now()))
        .order_by(ConversationMessage.id)).tuples())
    found: dict[int, Unanswered] = {}
    for message, client, newest in pending:
        if message.id != newest:  # superseded by a later message of theirs
            settle(session, message.id)
            continue
        found.setdefault(client.id, Unanswered(message.id, client.telegram_id, message.text, message.kind,
                                               client.language, client.first_name, client.last_name,
                                               client.username))
    return list(found.values())[:limit]


def unanswered_count(session: Session) -> int:
    """How many clients wait for an answer the assistant could not give (what /queue shows)."""
    return session.scalar(select(func.count(func.distinct(ConversationMessage.client_id))).where(
        _owed(clock.now()))) or 0


def claim_unanswered(session: Session, message_id: int) -> bool:
    """Taken by one process before it asks Rasa again: two bot processes answer it once. Not when
    the client wrote again since (their later message is answered first: an answer to the older
    one after it would come out of order; backlog() settles it)."""
    now = clock.now()
    later = aliased(ConversationMessage)
    wrote_again = exists().where(later.client_id == ConversationMessage.client_id, later.direction == "in",
                                 later.id > ConversationMessage.id)
    return session.execute(update(ConversationMessage).where(ConversationMessage.id == message_id, _owed(now),
                                                             ~wrote_again)
                           .values(claimed_at=now).execution_options(synchronize_session=False)).rowcount == 1


def record_answers(session: Session | Connection, client_id: int, texts: list[str], choices_batch: str | None,
                   answering: int | None = None) -> None:
    """The assistant's answers sent to a client, the buttons now on their screen
    (crm/choices.py) and the message they answer (`answering`) settled: one round trip each,
    nothing read first."""
    session.execute(_CHOICES, {"client": client_id, "batch": choices_batch})
    if texts:
        session.execute(_ANSWERS, [{"client_id": client_id, "direction": "out", "text": text} for text in texts])
    if answering is not None:
        settle(session, answering)


def settle(session: Session | Connection, message_id: int, answered: bool = True) -> None:
    """Mark a client's message answered, or (`answered=False`: Rasa failed) owed an answer again."""
    session.execute(_ANSWERED if answered else _OWED, {"message": message_id})


def unanswered_messages(session: Session, client: Client | None = None) -> list[ConversationMessage]:
    query = select(ConversationMessage).where(
        ConversationMessage.direction == "in", ConversationMessage.answered.is_(False)
    )
    if client is not None:
        query = query.where(ConversationMessage.client_id == client.id)
    return list(session.scalars(query.order_by(ConversationMessage.id)))


class ClientError(Refusal):
    texts = Texts("clients.error")


def rate_as_client(session: Session, model, row_id: int, status: str, telegram_id: int, score: int):
    """A client's satisfaction score (1-5) of one of their rows (a handoff, a complaint) in
    `status`: the row, or None when the score is out of range, the row another client's, or not
    in that status (a tampered or stale button)."""
    row = session.get(model, row_id)
    if row is None or row.status != status or not 1 <= score <= 5:
        return None
    if session.get(Client, row.client_id).telegram_id != telegram_id:
        return None
    row.satisfaction = score
    return row


def client_by_telegram_id(session: Session, telegram_id: int) -> Client:
    client = session.scalar(select(Client).where(Client.telegram_id == telegram_id))
    if client is None:
        raise ClientError("no_client", telegram_id=telegram_id)
    return client


def set_vip(session: Session, client: Client, vip: bool) -> None:
    client.vip = vip


def assign_account_manager(session: Session, client: Client, manager_telegram_id: int | None) -> None:
    """The manager who looks after the client (their handoffs go to them first); None removes it."""
    from crm.models import Staff

    if manager_telegram_id is None:
        client.account_manager_id = None
        return
    member = session.scalar(select(Staff).where(Staff.telegram_id == manager_telegram_id, Staff.active.is_(True)))
    if member is None or member.role not in ("manager", "admin"):
        raise ClientError("no_manager", telegram_id=manager_telegram_id)
    client.account_manager_id = member.id


TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def tag_client(session: Session, client: Client, tag: str, present: bool = True) -> str:
    """Put (or take off) a tag used by broadcast segments; tags are lower case, a-z 0-9 - _."""
    from crm.models import ClientTag

    tag = (tag or "").strip().lower()
    if not TAG_RE.match(tag):
        raise ClientError("tag", tag=tag)
    existing = session.scalar(select(ClientTag).where(ClientTag.client_id == client.id, ClientTag.tag == tag))
    if present and existing is None:
        session.add(ClientTag(client_id=client.id, tag=tag))
    elif not present and existing is not None:
        session.delete(existing)
    session.flush()
    return tag


def client_tags(session: Session, client: Client) -> list[str]:
    from crm.models import ClientTag

    return list(session.scalars(select(ClientTag.tag).where(ClientTag.client_id == client.id).order_by(ClientTag.tag)))
