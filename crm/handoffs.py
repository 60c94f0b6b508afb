"""The managers' desk: handoffs opened, queued, taken (first manager wins), closed and rated.
All state lives here, so restarting the bot loses nothing and the relay continues."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.clients import REPLAY_WINDOW, rate_as_client, record_message, recorded
from crm.db import insert_unless_exists
from crm.desk_hours import desk_settings, next_opening, open_minutes, when_text
from crm.i18n import Refusal, Texts
from crm.models import (
    HANDOFF_REASONS,
    Client,
    ClientNote,
    ConversationMessage,
    Handoff,
    HandoffNotice,
    RelayedMessage,
    Staff,
    StaffTopic,
)
from crm.outbox import button, enqueue
from crm.settings import current as current_settings
from crm.staff import DESK_ROLES, account_manager_of, add_staff, managers_on_duty, remove_staff

OPEN = ("queued", "active")
# What a queued client writes to leave the queue ("annuler", "cancel my request").
LEAVE_WORDS = re.compile(r"\s*(annuler|annule|annulez|cancel)(\s+(ma|la|my|the)\s+(demande|request))?\s*[.!]*\s*",
                         re.IGNORECASE)
# A request nobody took can still get a call-back this long after it was closed.
CALLBACK_DAYS = 7

REASON_LABELS = Texts("handoffs.reason")
TEXTS = Texts("handoffs.desk")


CLIENT_TEXTS = Texts("handoffs.client")


def client_text(key: str, language: str, **values) -> str:
    return CLIENT_TEXTS.t(key, language, **values)


def hand_over(session: Session, client: Client, reason: str, language: str, detail: str = "") -> str:
    """Open the client's handoff and say what happens next, in their language."""
    _, created = open_handoff(session, client, reason, detail)
    if not created:
        return client_text("already", language)
    when = next_opening()
    if when is not None:
        # Outside opening hours the client may leave a number to be called back (a button that
        # shares their Telegram phone number: nothing to type, nothing to mistype).
        enqueue(session, client.telegram_id, client_text("callback_offer", language),
                [{"title": client_text("callback_button", language), "request_contact": True}], client_id=client.id)
        return client_text("opened_closed_desk", language, when=when_text(when, language))
    return client_text("opened", language)


class HandoffError(Refusal):
    """A desk rule refusing something; `key` says which: unknown, taken, closed, yours,
    already_closed, empty_note, reason."""

    texts = Texts("handoffs.error")


def open_handoff(session: Session, client: Client, reason: str, detail: str = "") -> tuple[Handoff, bool]:
    """Open (or return the already open) handoff of a client; managers get a "take" notice.
    Returns (handoff, created)."""
    if reason not in HANDOFF_REASONS:
        raise HandoffError("reason", reason=reason)
    current = open_handoff_of(session, client)
    if current is not None:
        return current, False
    # Another process may open one this very instant: the unique index lets one of us in.
    created = insert_unless_exists(session, Handoff, {
        "client_id": client.id, "reason": reason, "detail": detail[:2000], "status": "queued",
        "opened_at": clock.now(), "queued_at": clock.now(), "client_told_waiting": False, "notified_all": True, "manager_reminded": False,
    }, ["client_id"], index_where=Handoff.status.in_(OPEN))
    handoff = open_handoff_of(session, client)
    if not created:
        return handoff, False
    owner = account_manager_of(session, client)
    first_minutes = int(desk_settings().get("account_manager_first_minutes", 5))
    if owner is not None and first_minutes > 0:
        # The client's own manager first; everybody else after `first_minutes` (remind_overdue).
        handoff.notified_all = False
        _notice(session, handoff, client, (owner.telegram_id, owner.language, None),
                extra=TEXTS.t("account_manager", owner.language, minutes=first_minutes))
    else:
        notify_desk(session, handoff, client)
    return handoff, True


def notify_desk(session: Session, handoff: Handoff, client: Client, exclude: tuple[int, ...] = (),
                extra: str = "", extra_values: dict | None = None) -> None:
    """A "take" notice with the client card: in the client's topic of the staff group, or to
    every manager on duty (but those in `exclude`, staff ids) in their private chat. `extra`, a
    key of TEXTS, adds a line in each recipient's language."""
    for recipient in desk_recipients(session, client, exclude):
        line = TEXTS.t(extra, recipient[1], **(extra_values or {})) if extra else ""
        _notice(session, handoff, client, recipient, extra=line)
    handoff.notified_all = True


def _notice(session: Session, handoff: Handoff, client: Client, recipient: tuple[int, str, int | None],
            extra: str = "") -> None:
    from crm.client_file import client_card

    chat_id, lang, topic_client_id = recipient
    text = TEXTS.t("notice", lang, id=handoff.id, client=client.display_name,
                     reason=REASON_LABELS.t(handoff.reason, lang),
                     card=client_card(session, client, lang))
    if extra:
        text += "\n\n" + extra
    buttons = [button(TEXTS.t("take", lang), "take", handoff.id)]
    if handoff.reason == "lead":  # a hot lead: a manager may also just propose a meeting
        buttons.append(button(TEXTS.t("propose_meeting", lang), "meet", client.id))
    enqueue(session, chat_id, text, buttons, handoff_id=handoff.id, topic_client_id=topic_client_id,
            client_id=client.id)


def desk_recipients(session: Session, client: Client, exclude: tuple[int, ...] = ()) -> list[tuple[int, str, int | None]]:
    """(chat id, language, topic client id) of where the desk hears about a client: their topic in
    the staff forum group when STAFF_CHAT_ID is set, else each manager's private chat."""
    group = current_settings().staff_chat
    if group is not None:
        return [(group[0], group[1], client.id)]
    return [(m.telegram_id, m.language, None) for m in managers_on_duty(session) if m.id not in exclude]


def holder_recipient(session: Session, handoff: Handoff) -> tuple[int, str, int | None] | None:
    """Where to reach the manager holding a conversation: the client's topic, or their chat."""
    manager = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
    if manager is None:
        return None
    group = current_settings().staff_chat
    return (group[0], group[1], handoff.client_id) if group else (manager.telegram_id, manager.language, None)


def open_handoff_of(session: Session, client: Client) -> Handoff | None:
    return session.scalar(select(Handoff).where(Handoff.client_id == client.id, Handoff.status.in_(OPEN))
                          .order_by(Handoff.id.desc()).limit(1))


def queue(session: Session) -> list[Handoff]:
    return list(session.scalars(select(Handoff).where(Handoff.status == "queued").order_by(Handoff.opened_at, Handoff.id)))


def take_handoff(session: Session, handoff_id: int, manager: Staff) -> Handoff:
    """The first manager to take it gets it: one conditional UPDATE decides between racers."""
    taken = session.execute(
        update(Handoff).where(Handoff.id == handoff_id, Handoff.status == "queued")
        .values(status="active", manager_id=manager.id, taken_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    handoff = session.get(Handoff, handoff_id)
    session.refresh(handoff) if handoff is not None else None
    if handoff is None:
        raise HandoffError("unknown", id=handoff_id)
    if taken != 1:
        raise HandoffError("taken" if handoff.status == "active" else "closed")
    return handoff


def reassign_handoff(session: Session, handoff_id: int, admin: Staff) -> tuple[Handoff, Staff | None]:
    """An admin takes a conversation whoever holds it (or takes it from the queue). The previous
    holder is told through the outbox. Returns (handoff, previous holder or None)."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffError("unknown", id=handoff_id)
    if admin.role != "admin":
        raise HandoffError("taken" if handoff.status == "active" else "closed")
    if handoff.status == "queued":
        return take_handoff(session, handoff_id, admin), None
    previous = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
    if handoff.status != "active" or previous is None or previous.id == admin.id:
        raise HandoffError("closed" if handoff.status != "active" else "yours")
    moved = session.execute(
        update(Handoff).where(Handoff.id == handoff_id, Handoff.status == "active", Handoff.manager_id == previous.id)
        .values(manager_id=admin.id, taken_at=clock.now(), manager_reminded=False)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(handoff)
    if moved != 1:  # it changed hands or ended this very instant
        raise HandoffError("closed" if handoff.status != "active" else "taken")
    _tell_holder(session, handoff, previous, "reassigned", admin=admin.name)
    return handoff, previous


def _tell_holder(session: Session, handoff: Handoff, holder: Staff, key: str, **values) -> None:
    """Tell the manager who held a conversation what became of it, in their private chat."""
    if not holder.active:
        return
    client = session.get(Client, handoff.client_id)
    enqueue(session, holder.telegram_id, TEXTS.t(key, holder.language, id=handoff.id,
                                                   client=client.display_name, **values), client_id=client.id)


def update_staff(session: Session, telegram_id: int, role: str, name: str) -> tuple[Staff, list[int]]:
    """Add a staff member, or change their role and name (crm.staff.add_staff); a manager given a
    role off the desk (marketer) hands their conversations back to the queue. Returns (member,
    the ids of the conversations handed back)."""
    before = session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))
    on_desk = before is not None and before.active and before.role in DESK_ROLES
    member = add_staff(session, telegram_id, role, name)
    return member, release_held(session, member) if on_desk and member.role not in DESK_ROLES else []


def dismiss_staff(session: Session, telegram_id: int) -> tuple[Staff, list[int]]:
    """Deactivate a staff member (crm.staff.remove_staff); the conversations they held go back to
    the queue, the other managers and the clients are told. Returns (member, those ids)."""
    member = remove_staff(session, telegram_id)
    return member, release_held(session, member)


def release_held(session: Session, member: Staff) -> list[int]:
    """A manager leaves the desk (removed, or given another role): each conversation they hold
    goes back to the queue, the other managers get a "take" notice, the client is told. Their
    clients' requests that only they had heard of go to everybody now. Returns the handoff ids."""
    released = []
    for handoff in active_handoffs_of(session, member):
        moved = session.execute(
            update(Handoff).where(Handoff.id == handoff.id, Handoff.status == "active", Handoff.manager_id == member.id)
            .values(status="queued", manager_id=None, taken_at=None, queued_at=clock.now(), awaiting_reply_since=None,
                    manager_reminded=False, client_told_waiting=False, notified_all=True)
            .execution_options(synchronize_session=False)).rowcount
        session.refresh(handoff)
        if moved != 1:
            continue
        client = session.get(Client, handoff.client_id)
        notify_desk(session, handoff, client, exclude=(member.id,), extra="requeued",
                    extra_values={"manager": member.name})
        enqueue(session, client.telegram_id, client_text("released", client.language), client_id=client.id)
        released.append(handoff.id)
    for handoff in session.scalars(select(Handoff).join(Client, Client.id == Handoff.client_id).where(
            Handoff.status == "queued", Handoff.notified_all.is_(False), Client.account_manager_id == member.id)).all():
        notify_desk(session, handoff, session.get(Client, handoff.client_id), exclude=(member.id,))
    if released and member.active:
        enqueue(session, member.telegram_id, TEXTS.t("released_you", member.language,
                                                       ids=", ".join(f"{i}" for i in released)))
    return released


def leave_queue(session: Session, client: Client) -> Handoff | None:
    """The client withdraws a request nobody has taken yet: closed, the desk is told. None when
    they have no queued request (a manager holding it means they talk to that manager)."""
    handoff = open_handoff_of(session, client)
    if handoff is None or handoff.status != "queued":
        return None
    left = session.execute(update(Handoff).where(Handoff.id == handoff.id, Handoff.status == "queued")
                           .values(status="closed", closed_at=clock.now(), closed_by="client")
                           .execution_options(synchronize_session=False)).rowcount
    session.refresh(handoff)
    if left != 1:
        return None
    owner = account_manager_of(session, client)
    # Told are those who got the "take" notice: everybody, or the account manager alone at first.
    told = desk_recipients(session, client) if handoff.notified_all else (
        [(owner.telegram_id, owner.language, None)] if owner else [])
    for chat_id, lang, topic in told:
        enqueue(session, chat_id, TEXTS.t("withdrawn", lang, client=client.display_name, id=handoff.id),
                topic_client_id=topic, client_id=client.id)
    return handoff


def end_by_admin(session: Session, handoff_id: int, admin: Staff) -> Handoff:
    """An admin ends any open conversation (queued or held by someone else); its holder is told."""
    handoff = session.get(Handoff, handoff_id)
    if handoff is None:
        raise HandoffError("unknown", id=handoff_id)
    holder = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
    close_handoff(session, handoff, by="admin")
    if holder is not None and holder.id != admin.id:
        _tell_holder(session, handoff, holder, "closed_by_admin", admin=admin.name)
    return handoff


def leave_button(handoff: Handoff, language: str) -> dict:
    return button(client_text("leave_button", language), "leave", handoff.id)


def active_handoffs_of(session: Session, manager: Staff) -> list[Handoff]:
    return list(session.scalars(select(Handoff).where(Handoff.manager_id == manager.id, Handoff.status == "active")
                                .order_by(Handoff.taken_at)))


def close_handoff(session: Session, handoff: Handoff, by: str = "manager") -> None:
    """Closed once: a second /done (or two managers at once) is refused with HandoffError."""
    closed = session.execute(update(Handoff).where(Handoff.id == handoff.id, Handoff.status.in_(OPEN))
                             .values(status="closed", closed_at=clock.now(), closed_by=by)
                             .execution_options(synchronize_session=False)).rowcount
    session.refresh(handoff)
    if closed != 1:
        raise HandoffError("already_closed")


def rate_handoff(session: Session, telegram_id: int, handoff_id: int, score: int) -> Handoff | None:
    """The client's score (1-5) of a closed conversation; None when it is not theirs, or open."""
    return rate_as_client(session, Handoff, handoff_id, "closed", telegram_id, score)


def record_notice(session: Session, handoff_id: int, chat_id: int, message_id: int) -> None:
    session.add(HandoffNotice(handoff_id=handoff_id, chat_id=chat_id, message_id=message_id))


def notices(session: Session, handoff_id: int) -> list[HandoffNotice]:
    return list(session.scalars(select(HandoffNotice).where(HandoffNotice.handoff_id == handoff_id)))


@dataclass(frozen=True)
class Notice:
    """A "take" notice sent to the desk, to be edited into what became of the conversation."""

    chat_id: int
    message_id: int
    language: str  # of its reader: the staff group's, or the manager's


def notices_to_edit(session: Session, handoff_id: int) -> tuple[Notice, ...]:
    group = current_settings().staff_chat

    def language(chat_id: int) -> str:
        if group is not None and group[0] == chat_id:
            return group[1]
        return session.scalar(select(Staff.language).where(Staff.telegram_id == chat_id)) or "fr"

    return tuple(Notice(n.chat_id, n.message_id, language(n.chat_id)) for n in notices(session, handoff_id))


@dataclass(frozen=True)
class Taking:
    """What came of a manager's attempt to take a conversation. `outcome`: "ok", or why not:
    "unknown", "yours" (they hold it already), "taken" (by `holder`), "closed"."""

    outcome: str
    holder: str = ""
    client_chat: int = 0
    client_language: str = "fr"
    client_name: str = ""
    since: tuple[str, ...] = ()           # what the client wrote since the conversation opened
    notices: tuple[Notice, ...] = ()      # the desk's "take" notices, to be marked taken
    previous: str | None = None           # the manager it was taken from (an admin's reassignment)


def take_conversation(session: Session, handoff_id: int, staff_id: int, reassign: bool = False) -> Taking:
    """A manager takes a queued conversation; with `reassign` (an admin), an active one too."""
    manager = session.get(Staff, staff_id)
    previous = None
    try:
        if reassign and manager.role == "admin":
            handoff, previous = reassign_handoff(session, handoff_id, manager)
        else:
            handoff = take_handoff(session, handoff_id, manager)
    except HandoffError as exc:
        handoff = session.get(Handoff, handoff_id)
        if handoff is None:
            return Taking("unknown")
        holder = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
        if holder is not None and holder.id == staff_id and handoff.status == "active":
            return Taking("yours")
        return Taking(exc.key if exc.key == "taken" else "closed", holder=holder.name if holder else "")
    client = session.get(Client, handoff.client_id)
    since = tuple(m.text or f"[{m.kind}]" for m in session.scalars(
        select(ConversationMessage).where(ConversationMessage.client_id == client.id,
                                          ConversationMessage.direction == "in",
                                          ConversationMessage.created_at >= handoff.opened_at)
        .order_by(ConversationMessage.id)))
    return Taking("ok", client_chat=client.telegram_id, client_language=client.language,
                  client_name=client.display_name, since=since,
                  notices=() if previous is not None else notices_to_edit(session, handoff_id),
                  previous=previous.name if previous else None)


def record_relay(session: Session, handoff_id: int, staff_chat_id: int, staff_message_id: int,
                 update_id: int | None = None) -> None:
    session.add(RelayedMessage(handoff_id=handoff_id, staff_chat_id=staff_chat_id, staff_message_id=staff_message_id,
                               update_id=update_id))


def relayed(session: Session, update_id: int | None) -> bool:
    return update_id is not None and session.scalar(
        select(RelayedMessage.id).where(RelayedMessage.update_id == update_id,
                                        RelayedMessage.created_at >= clock.now() - REPLAY_WINDOW).limit(1)) is not None


def handoff_for_reply(session: Session, staff_chat_id: int, replied_message_id: int) -> Handoff | None:
    relayed = session.scalar(select(RelayedMessage).where(
        RelayedMessage.staff_chat_id == staff_chat_id, RelayedMessage.staff_message_id == replied_message_id))
    return session.get(Handoff, relayed.handoff_id) if relayed else None


def add_note(session: Session, client: Client, manager: Staff, text: str) -> ClientNote:
    text = text.strip()
    if not text:
        raise HandoffError("empty_note")
    note = ClientNote(client_id=client.id, staff_id=manager.id, text=text[:4000])
    session.add(note)
    session.flush()
    return note


def remind_overdue(session: Session, now: datetime | None = None) -> int:
    """What the desk must not forget, run every few seconds by the bot; every message goes
    through the outbox. Returns how many handoffs needed something.
    - the account manager did not take their client's conversation in time: tell everybody;
    - nobody took a conversation in time: the client is told (once), managers are reminded;
    - the client has waited too long for the manager holding the conversation: remind them."""
    now = now or clock.now()
    settings = desk_settings()
    count = expire_queued(session, now)  # first: a conversation closed now needs no reminder

    def claimed(flag, status: str, *due):
        """The handoffs in `status` matching `due` whose reminder `flag` this process claims (a
        conditional UPDATE each: with two bot processes running this at once, one sends it),
        with their client."""
        for handoff in session.scalars(select(Handoff).where(Handoff.status == status, flag.is_(False), *due)).all():
            won = session.execute(update(Handoff).where(Handoff.id == handoff.id, flag.is_(False),
                                                        Handoff.status == status)
                                  .values({flag.key: True}).execution_options(synchronize_session=False)).rowcount
            session.refresh(handoff)
            if won == 1:
                yield handoff, session.get(Client, handoff.client_id)

    first = now - timedelta(minutes=int(settings.get("account_manager_first_minutes", 5)))
    for handoff, client in claimed(Handoff.notified_all, "queued", Handoff.queued_at <= first):
        notify_desk(session, handoff, client, exclude=(client.account_manager_id or 0,))
        count += 1
    minutes = int(settings.get("unanswered_after_minutes", 10))
    for handoff, client in claimed(Handoff.client_told_waiting, "queued",
                                   Handoff.queued_at <= now - timedelta(minutes=minutes)):
        enqueue(session, client.telegram_id, client_text("waiting", client.language),
                [leave_button(handoff, client.language)], client_id=client.id)
        for chat_id, lang, topic in desk_recipients(session, client):
            enqueue(session, chat_id, TEXTS.t("reminder", lang, id=handoff.id, client=client.display_name,
                                                minutes=minutes), topic_client_id=topic, client_id=client.id)
        count += 1
    reply_minutes = int(settings.get("manager_reply_minutes", 5))
    for handoff, client in claimed(Handoff.manager_reminded, "active",
                                   Handoff.awaiting_reply_since <= now - timedelta(minutes=reply_minutes)):
        recipient = holder_recipient(session, handoff)
        if recipient is None:
            continue
        chat_id, lang, topic = recipient
        manager = session.get(Staff, handoff.manager_id)
        enqueue(session, chat_id, TEXTS.t("reply_reminder", lang, manager=manager.name.split()[0],
                                            client=client.display_name, id=handoff.id, minutes=reply_minutes),
                topic_client_id=topic, client_id=client.id)
        count += 1
    return count


def expire_queued(session: Session, now: datetime | None = None) -> int:
    """Queued conversations nobody took within `desk.queue_timeout_minutes` minutes of desk time
    (0: never) are closed politely: the client is told, with a button to be called back; the desk
    is told; the request stays in the client file. Returns how many were closed."""
    now = now or clock.now()
    timeout = int(desk_settings().get("queue_timeout_minutes", 120))
    if timeout <= 0:
        return 0
    count = 0
    # Desk time is never more than wall time: only those queued `timeout` minutes ago qualify.
    for handoff in session.scalars(select(Handoff).where(
            Handoff.status == "queued", Handoff.queued_at <= now - timedelta(minutes=timeout))).all():
        if open_minutes(handoff.queued_at, now) < timeout:
            continue
        closed = session.execute(update(Handoff).where(Handoff.id == handoff.id, Handoff.status == "queued")
                                 .values(status="closed", closed_at=now, closed_by="expired")
                                 .execution_options(synchronize_session=False)).rowcount
        session.refresh(handoff)
        if closed != 1:
            continue
        client = session.get(Client, handoff.client_id)
        enqueue(session, client.telegram_id, client_text("expired", client.language),
                [{"title": client_text("callback_button", client.language), "request_contact": True}],
                client_id=client.id)
        for chat_id, lang, topic in desk_recipients(session, client):
            enqueue(session, chat_id, TEXTS.t("expired", lang, id=handoff.id, client=client.display_name,
                                                minutes=timeout), topic_client_id=topic, client_id=client.id)
        count += 1
    return count


def callback_handoff(session: Session, client: Client) -> Handoff | None:
    """The request a shared phone number is for: the open one, or one that expired unanswered
    in the last CALLBACK_DAYS days (the client was offered a call-back)."""
    handoff = open_handoff_of(session, client)
    if handoff is not None:
        return handoff if handoff.status == "queued" else None
    return session.scalar(select(Handoff).where(
        Handoff.client_id == client.id, Handoff.closed_by == "expired",
        Handoff.closed_at >= clock.now() - timedelta(days=CALLBACK_DAYS)).order_by(Handoff.id.desc()).limit(1))


def client_wrote(session: Session, handoff: Handoff) -> None:
    """A client message reached the manager: the wait for their answer starts (if not started)."""
    if handoff.status == "active" and handoff.awaiting_reply_since is None:
        handoff.awaiting_reply_since = clock.now()
        handoff.manager_reminded = False


def manager_answered(session: Session, handoff: Handoff) -> None:
    handoff.awaiting_reply_since = None
    handoff.manager_reminded = False
    if handoff.first_reply_at is None:
        handoff.first_reply_at = clock.now()


def request_callback(session: Session, client: Client, phone: str) -> tuple[Handoff, str] | None:
    """The client shared their number to be called back: kept on the open handoff (and on the
    client when they had none), the desk is told. Returns (handoff, what to tell the client)."""
    phone = re.sub(r"[^\d+]", "", phone or "")[:32]
    handoff = callback_handoff(session, client)
    if handoff is None or len(re.sub(r"\D", "", phone)) < 6:
        return None
    handoff.callback_phone = phone
    if not client.phone:
        client.phone = phone
    for chat_id, lang, topic in desk_recipients(session, client):
        enqueue(session, chat_id, TEXTS.t("callback", lang, client=client.display_name, id=handoff.id,
                                            phone=phone), topic_client_id=topic, client_id=client.id)
    when = next_opening()
    if when is None:
        return handoff, client_text("callback_noted_open", client.language, phone=phone)
    return handoff, client_text("callback_noted", client.language, phone=phone,
                                when=when_text(when, client.language))


def vip_handoff_due(session: Session, client: Client, now: datetime | None = None) -> bool:
    """A VIP client writes: straight to a manager while the desk is open (configurable), unless a
    manager just handed the conversation back (then the assistant answers for a while)."""
    settings = desk_settings()
    if not client.vip or not settings.get("vip_to_manager", True) or next_opening(now) is not None:
        return False
    pause = timedelta(minutes=int(settings.get("vip_again_after_minutes", 30)))
    recent = session.scalar(select(Handoff.id).where(
        Handoff.client_id == client.id, Handoff.closed_at >= (now or clock.now()) - pause).limit(1))
    return recent is None


def topic_of(session: Session, chat_id: int, client_id: int) -> int | None:
    return session.scalar(select(StaffTopic.thread_id).where(StaffTopic.chat_id == chat_id,
                                                              StaffTopic.client_id == client_id))


def client_of_topic(session: Session, chat_id: int, thread_id: int) -> Client | None:
    client_id = session.scalar(select(StaffTopic.client_id).where(StaffTopic.chat_id == chat_id,
                                                                   StaffTopic.thread_id == thread_id))
    return session.get(Client, client_id) if client_id else None


def save_topic(session: Session, chat_id: int, client_id: int, thread_id: int) -> int:
    """Keep the topic created for a client; if another one was saved meanwhile, that one wins."""
    existing = topic_of(session, chat_id, client_id)
    if existing is not None:
        return existing
    session.add(StaffTopic(chat_id=chat_id, client_id=client_id, thread_id=thread_id))
    session.flush()
    return thread_id


def forget_topic(session: Session, chat_id: int, client_id: int) -> None:
    """The topic was deleted in Telegram: the next message creates a new one."""
    topic = session.scalar(select(StaffTopic).where(StaffTopic.chat_id == chat_id, StaffTopic.client_id == client_id))
    if topic is not None:
        session.delete(topic)


def topic_name(client: Client) -> str:
    vip = "⭐ " if client.vip else ""
    return f"{vip}{client.display_name} · {client.telegram_id}"[:128]


@dataclass(frozen=True)
class AtDesk:
    """What became of a client's message while their conversation is with the desk. `outcome`:
    "relay" (pass it on to the desk), "replayed" (handled before a crash: nothing to do), "left"
    (they left the queue: `notices` to mark withdrawn)."""

    outcome: str
    handoff_id: int = 0
    status: str = ""                     # of the conversation: queued or active
    client_id: int = 0
    client_name: str = ""
    client_language: str = "fr"
    manager_chat: int | None = None      # the manager holding it
    manager_language: str = "fr"
    first: bool = False                  # the client's first message since it was handed over
    opened: str | None = None            # a VIP's message opened the conversation: what to tell them
    callback: str | None = None          # they shared their phone number: what to tell them
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class Route:
    """Who is concerned by what a person writes, in one query (bot.app reads it before the
    handlers): `assistant_only` when no active staff member writes and the client, not VIP, has
    no conversation open with the desk (the desk and the broadcast composer then have nothing to
    do with it); `reachable`: not marked as having blocked the bot."""

    assistant_only: bool
    reachable: bool


def _route():
    clients, handoffs, staff_members = Client.__table__.c, Handoff.__table__.c, Staff.__table__.c
    staff = exists().where(staff_members.telegram_id == bindparam("telegram_id"), staff_members.active.is_(True))
    held = exists().where(handoffs.client_id == clients.id, handoffs.status.in_(OPEN))
    return (select(clients.vip, clients.unreachable, held.label("held"), staff.label("staff"))
            .where(clients.telegram_id == bindparam("telegram_id")))


_ROUTE = _route()  # read for every message: built once, on the tables' own columns
_STAFF = select(exists().where(Staff.__table__.c.telegram_id == bindparam("telegram_id"),
                               Staff.__table__.c.active.is_(True)))


def route_of(session: Session | Connection, telegram_id: int) -> Route:
    """Someone the CRM does not know yet is no VIP and has no conversation with the desk: theirs
    is the assistant's unless they are staff (bot.app's look-up registers them with their first
    message, in the same unit of work)."""
    row = session.execute(_ROUTE, {"telegram_id": telegram_id}).first()
    if row is None:
        return Route(assistant_only=not session.scalar(_STAFF, {"telegram_id": telegram_id}), reachable=True)
    return Route(assistant_only=not (row.vip or row.held or row.staff), reachable=not row.unreachable)


def client_message_at_desk(session: Session, telegram_id: int, update_id: int | None, text: str, kind: str,
                           own_phone: str | None = None, opening_text: str = "") -> AtDesk | None:
    """A client writes (`text`, of `kind`; `own_phone`: the contact they shared is their own).
    None when the desk does not have their conversation (Rasa answers); a VIP's message opens one
    first while the desk is open. The message is recorded; nothing is done twice for an update
    replayed after a crash, except passing on a message recorded and not yet relayed."""
    client = session.scalar(select(Client).where(Client.telegram_id == telegram_id))
    if client is None:
        return None

    def relay(handoff: Handoff, **more) -> AtDesk:
        manager = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
        return AtDesk("relay", handoff.id, handoff.status, client.id, client.display_name, client.language,
                      manager.telegram_id if manager else None, manager.language if manager else "fr", **more)

    if recorded(session, update_id):
        handoff = open_handoff_of(session, client)
        if handoff is None:  # the assistant's: answered already, or owed (bot.app converse decides)
            return None
        if relayed(session, update_id):
            return AtDesk("replayed")
        return relay(handoff)
    handoff = open_handoff_of(session, client)
    opened = None
    if handoff is None and vip_handoff_due(session, client):
        opened = hand_over(session, client, "vip", client.language, opening_text)
        handoff = open_handoff_of(session, client)
    if handoff is None:
        return None
    if handoff.status == "queued" and kind == "text" and LEAVE_WORDS.fullmatch(text):
        left = leave_queue(session, client)
        if left is not None:
            record_message(session, client, "in", text, update_id=update_id)
            return AtDesk("left", left.id, client_name=client.display_name, client_language=client.language,
                          notices=notices_to_edit(session, left.id))
    callback = request_callback(session, client, own_phone) if own_phone and handoff.status == "queued" else None
    record_message(session, client, "in", text, kind=kind, update_id=update_id)
    client_wrote(session, handoff)
    since_opened = session.scalar(select(func.count(ConversationMessage.id)).where(
        ConversationMessage.client_id == client.id, ConversationMessage.direction == "in",
        ConversationMessage.created_at >= handoff.opened_at))
    return relay(handoff, first=since_opened <= 1, opened=opened, callback=callback[1] if callback else None)
