"""The managers' desk in Telegram: "take" buttons, the relay between a client and the manager
holding their conversation, /queue /take /done /client /note, reminders. Every state change goes
through crm/handoffs.py first, so a restart of the bot loses nothing and the relay goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timezone

from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyKeyboardRemove, Update
from telegram.error import BadRequest, TelegramError

from bot.callbacks import callback_data, parse
from bot.shared import Context, score_button
from bot.staff import Member, staff_member, staff_only
from crm import clock
from crm.client_file import client_card
from crm.clients import record_message, recorded, unanswered_count
from crm.desk_hours import desk_settings
from crm.handoffs import (
    topic_name,
    REASON_LABELS,
    HandoffError,
    active_handoffs_of,
    add_note,
    client_text,
    client_of_topic,
    close_handoff,
    forget_topic,
    handoff_for_reply,
    manager_answered,
    open_handoff_of,
    queue,
    end_by_admin,
    leave_queue,
    AtDesk,
    client_message_at_desk,
    Notice,
    notices_to_edit,
    take_conversation,
    rate_handoff,
    record_relay,
    remind_overdue,
    save_topic,
    topic_of,
)
from crm.i18n import DEFAULT_LANGUAGE, Texts
from crm.models import Client, Handoff, Staff
from crm.outbox import failures
from crm.staff import DESK_ROLES, active_staff
from crm.text import shorten

log = logging.getLogger(__name__)
REMINDER_INTERVAL = 15.0

TEXTS = Texts("bot.desk")



def message_kind(message: Message) -> str:
    for kind in ("photo", "voice", "audio", "video", "video_note", "document", "sticker",
                 "location", "contact", "animation", "poll", "venue"):
        if getattr(message, kind, None):
            return kind
    return "text" if message.text else "other"


@dataclass(frozen=True)
class DeskMember:
    """An active staff member, as the desk's handlers need them."""

    id: int
    language: str
    name: str
    role: str

    @property
    def on_desk(self) -> bool:
        return self.role in DESK_ROLES


async def _language_of(context, telegram_id: int) -> str:
    member = await _staff(context, telegram_id)
    return member.language if member else DEFAULT_LANGUAGE


async def _staff(context, telegram_id: int) -> DeskMember | None:
    """The active staff member with this Telegram id, or None."""
    def work(session):
        member = active_staff(session, telegram_id)
        return DeskMember(member.id, member.language, member.name, member.role) if member else None

    return await context.assistant.db(work)


# --- the client side ------------------------------------------------------------------------------


async def relay_from_client(update: Update, context: Context) -> bool:
    """A client message while their conversation is with the desk: to the manager holding it, or
    kept for the one who takes it (and shown in the client's topic of the staff group, if any).
    A VIP client's message opens a handoff first (configurable). True when handled: Rasa is not
    asked, the bot says nothing of its own."""
    message, user = update.effective_message, update.effective_user
    contact = message.contact
    text = message.text or message.caption or (contact.phone_number if contact else "")
    kind = message_kind(message)
    own_phone = contact.phone_number if contact is not None and contact.user_id == user.id else None
    at_desk = await context.assistant.db(lambda s: client_message_at_desk(
        s, user.id, update.update_id, text, kind, own_phone, opening_text=message.text or message.caption or ""))
    if at_desk is None:
        return False
    if at_desk.outcome == "replayed":
        return True
    if at_desk.outcome == "left":
        await _edit_notices(context, at_desk.notices, "withdrawn_notice", id=at_desk.handoff_id,
                            client=at_desk.client_name)
        await _send(context.bot, message.chat_id, client_text("left", at_desk.client_language))
        return True
    if at_desk.opened:
        await _send(context.bot, message.chat_id, at_desk.opened)
    elif at_desk.callback:
        await _send(context.bot, message.chat_id, at_desk.callback, ReplyKeyboardRemove())
    elif at_desk.status == "queued" and at_desk.first:
        await _send(context.bot, message.chat_id, client_text("queued_ack", at_desk.client_language),
                    _leave_markup(at_desk.handoff_id, at_desk.client_language))
    await _relay(context, message, at_desk, update_id=update.update_id)
    return True


async def _relay(context, message: Message, at_desk: AtDesk, update_id: int | None) -> None:
    """Copy the client's message to the desk: their topic, or the manager holding it."""
    group = context.settings.staff_chat
    if group is not None:  # the client's topic shows everything they write, taken or not
        target, header_language = group
    elif at_desk.status == "active":
        target, header_language = at_desk.manager_chat, at_desk.manager_language
    else:
        return  # kept in the CRM: the manager who takes it reads it then
    header = TEXTS.t("from_client", header_language, client=at_desk.client_name, id=at_desk.handoff_id)
    sent = await _copy_with_header(context, target, at_desk.client_id if group else None, message, header)
    if sent is not None:
        await context.assistant.db(lambda s: record_relay(s, at_desk.handoff_id, target, sent, update_id))


def _leave_markup(handoff_id: int, language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(client_text("leave_button", language),
                                                       callback_data=callback_data("leave", handoff_id))]])


async def _edit_notices(context, notes: tuple[Notice, ...], key: str, **values) -> None:
    """Turn the "take" notices of a conversation into a line saying what became of it (no more
    button to press)."""
    for note in notes:
        try:
            await context.bot.edit_message_text(TEXTS.t(key, note.language, **values), chat_id=note.chat_id,
                                                message_id=note.message_id)
        except TelegramError as exc:
            log.info("could not edit notice %s/%s: %s", note.chat_id, note.message_id, exc)


async def leave_button(update: Update, context: Context) -> None:
    """"Cancel my request": a queued client leaves the queue (only their own request, only while
    nobody has taken it)."""
    query, user = update.callback_query, update.effective_user
    [handoff_id] = parse("leave", query.data) or [None]

    def work(session):
        client = session.scalar(select(Client).where(Client.telegram_id == user.id))
        if client is None:
            return None, "fr", [], ""
        current = open_handoff_of(session, client)
        if current is None or current.id != handoff_id or current.status != "queued":
            return None, client.language, [], ""
        left = leave_queue(session, client)
        notes = notices_to_edit(session, left.id) if left else ()
        return left.id if left else None, client.language, notes, client.display_name

    helper = context.assistant
    async with helper.chat_lock(user.id):
        left, language, notes, name = await helper.db(work)
    if left is None:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    await query.answer()
    await _edit_notices(context, notes, "withdrawn_notice", id=left, client=name)
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.info("could not remove the cancel button: %s", exc)
    await _send(context.bot, user.id, client_text("left", language))


async def topic_thread(context, chat_id: int, client_id: int) -> int:
    """The thread of a client's topic in the staff forum group, created the first time."""
    helper = context.assistant
    async with helper.chat_lock(("topic", chat_id, client_id)):
        thread = await helper.db(lambda s: topic_of(s, chat_id, client_id))
        if thread is not None:
            return thread
        name = await helper.db(lambda s: topic_name(s.get(Client, client_id)))
        topic = await context.bot.create_forum_topic(chat_id, name)
        return await helper.db(lambda s: save_topic(s, chat_id, client_id, topic.message_thread_id))


async def to_desk(context, chat_id: int, topic_client_id: int | None, send) -> Message:
    """Call `send(thread id or None)` for a message to the desk: into the client's topic when
    `topic_client_id` is set. A topic deleted in Telegram is created again, once."""
    if topic_client_id is None:
        return await send(None)
    thread = await topic_thread(context, chat_id, topic_client_id)
    try:
        return await send(thread)
    except BadRequest as exc:
        if "thread" not in str(exc).lower() and "topic" not in str(exc).lower():
            raise
        log.info("topic %s of client %s is gone (%s): creating it again", thread, topic_client_id, exc)
        await context.assistant.db(lambda s: forget_topic(s, chat_id, topic_client_id))
        return await send(await topic_thread(context, chat_id, topic_client_id))


async def _copy_with_header(context, chat_id: int, topic_client_id: int | None, message: Message,
                            header: str) -> int | None:
    bot = context.bot
    caption = f"{header}\n{message.caption}" if message.caption else header

    async def send(thread):
        if message.text:
            return await bot.send_message(chat_id, f"{header}\n{message.text}", message_thread_id=thread)
        if message.sticker or message.location or message.contact or message.video_note or message.poll or message.venue:
            await bot.send_message(chat_id, header, message_thread_id=thread)
            return await bot.copy_message(chat_id, message.chat_id, message.message_id, message_thread_id=thread)
        return await bot.copy_message(chat_id, message.chat_id, message.message_id, caption=caption[:1024],
                                      message_thread_id=thread)

    try:
        return (await to_desk(context, chat_id, topic_client_id, send)).message_id
    except TelegramError as exc:
        log.warning("relay to %s failed: %s", chat_id, exc)
        return None


async def _send(bot, chat_id: int, text: str, markup=None) -> Message | None:
    try:
        return await bot.send_message(chat_id, text, reply_markup=markup)
    except TelegramError as exc:
        log.warning("could not send to %s: %s", chat_id, exc)
        return None


async def _reply(update: Update, text: str, markup=None) -> Message | None:
    """Answer a staff member where they wrote: their private chat, or the topic of the group."""
    try:
        return await update.effective_message.reply_text(text, reply_markup=markup)
    except TelegramError as exc:
        log.warning("could not answer in %s: %s", update.effective_chat.id, exc)
        return None


# --- the manager side ----------------------------------------------------------------------------


async def take(context, manager_telegram_id: int, handoff_id: int, reassign: bool = False) -> tuple[bool, str]:
    """Take a queued conversation; returns (taken, what to tell the manager). With `reassign`
    (an admin's /take N), an active conversation too: its holder is told."""
    member = await _staff(context, manager_telegram_id)
    language, staff_name = member.language, member.name
    taking = await context.assistant.db(lambda s: take_conversation(s, handoff_id, member.id, reassign))
    if taking.outcome != "ok":
        why = {"unknown": "unknown", "yours": "already_yours", "taken": "already_taken"}.get(taking.outcome, "closed")
        return False, TEXTS.t(why, language, id=handoff_id, name=taking.holder)
    await _edit_notices(context, taking.notices, "taken_by", id=handoff_id, name=staff_name)
    if desk_settings().get("show_manager_name", True):
        await _send(context.bot, taking.client_chat,
                    client_text("taken", taking.client_language, manager=staff_name.split()[0]))
    else:
        await _send(context.bot, taking.client_chat, client_text("taken_anonymous", taking.client_language))
    told = "\n\n" + TEXTS.t("previous_told", language, name=taking.previous) if taking.previous else ""
    if context.settings.staff_chat is not None:
        return True, TEXTS.t("you_took_topic", language, name=staff_name, id=handoff_id,
                             client=taking.client_name) + told
    text = TEXTS.t("you_took", language, id=handoff_id, client=taking.client_name) + told
    if taking.since:
        text += "\n\n" + TEXTS.t("since", language) + "\n" + "\n".join(f"→ {m}" for m in taking.since)
    return True, text


async def take_button(update: Update, context: Context) -> None:
    query = update.callback_query
    member = await _staff(context, update.effective_user.id)
    [handoff_id] = parse("take", query.data) or [None]
    if member is None or not member.on_desk or handoff_id is None:
        await query.answer(TEXTS.t("expired", member.language if member else DEFAULT_LANGUAGE), show_alert=True)
        return
    taken, text = await take(context, update.effective_user.id, handoff_id)
    if not taken:
        await query.answer(text, show_alert=True)
        return
    await query.answer()
    # In the staff group the answer goes to the topic the button was pressed in.
    chat = query.message.chat_id if query.message else update.effective_user.id
    thread = query.message.message_thread_id if query.message and query.message.is_topic_message else None
    try:
        await context.bot.send_message(chat, text, message_thread_id=thread)
    except TelegramError as exc:
        log.warning("could not answer the take button in %s: %s", chat, exc)


async def _manager(update: Update, context) -> Member | None:
    """The manager or admin who sent a command; anyone else is refused politely (None)."""
    member_id, language = await staff_member(update, context)
    return Member(member_id, language) if member_id else None


async def _target(update: Update, context, staff_id: int, language: str, by_number: bool = True) -> Handoff | None:
    """Which conversation a manager's message or command is about: the client's topic it is
    written in, the number given (`by_number`: /done N, /client N), the relayed client message it
    replies to, or their only one. A number they do not hold, or a reply to anything but a
    relayed message of one of their live conversations, is explained: never a guess, never a
    send to another client."""
    message = update.effective_message
    args = (context.args or []) if by_number else []
    group = context.settings.staff_chat
    in_topic = group is not None and message.chat_id == group[0] and message.is_topic_message

    def work(session):
        manager = session.get(Staff, staff_id)
        held = active_handoffs_of(session, manager)
        if in_topic:
            client = client_of_topic(session, message.chat_id, message.message_thread_id)
            handoff = open_handoff_of(session, client) if client else None
            if handoff is None or handoff.status != "active":
                return None, "topic_not_active"
            if handoff.manager_id != staff_id:
                return None, ("topic_held_by", session.get(Staff, handoff.manager_id).name)
            return handoff, held
        if args and args[0].isdigit():
            chosen = [h for h in held if h.id == int(args[0])]
            return (chosen[0], held) if chosen else (None, ("not_held", int(args[0])))
        if message.reply_to_message is not None:
            handoff = handoff_for_reply(session, message.chat_id, message.reply_to_message.message_id)
            if handoff is not None and handoff.status == "active" and handoff.manager_id == staff_id:
                return handoff, held
            return None, ("stale_reply", handoff.id) if handoff is not None else ("reply_unknown", 0)
        return (held[0] if len(held) == 1 else None), held

    handoff, held = await context.assistant.db(work)
    if handoff is None:
        if held == "topic_not_active":
            text = TEXTS.t("topic_not_active", language)
        elif isinstance(held, tuple):
            text = TEXTS.t(held[0], language, name=held[1], id=held[1])
        elif not held:
            text = TEXTS.t("none_held", language)
        else:
            text = TEXTS.t("which", language, ids=", ".join(f"n° {h.id}" for h in held))
        await _reply(update, text)
    return handoff


async def relay_from_manager(update: Update, context: Context) -> bool:
    """A manager's message in their chat with the bot goes to the client of the conversation it
    is about. True when handled; False when the sender holds no conversation (then they talk to
    the assistant like anyone)."""
    member = await _staff(context, update.effective_user.id)
    if member is None or not member.on_desk:
        return False
    staff_id, language = member.id, member.language
    held = await context.assistant.db(lambda s: len(active_handoffs_of(s, s.get(Staff, staff_id))))
    if not held:
        return False
    handoff = await _target(update, context, staff_id, language)
    if handoff is None:
        return True
    await _to_client(update, context, handoff)
    return True


async def _to_client(update: Update, context, handoff: Handoff) -> None:
    """The manager's message, copied to the client (recorded in the CRM; the wait is over)."""
    message = update.effective_message

    def find(session):
        if recorded(session, update.update_id):
            return None  # passed on before a crash
        return session.get(Client, handoff.client_id).telegram_id

    def work(session):
        client = session.get(Client, handoff.client_id)
        record_message(session, client, "out", message.text or message.caption or "", kind=message_kind(message),
                       update_id=update.update_id)
        manager_answered(session, session.get(Handoff, handoff.id))

    client_chat = await context.assistant.db(find)
    if client_chat is None:
        return
    try:  # passed on first, recorded then: a crash in between passes it on again, never loses it
        await context.bot.copy_message(client_chat, message.chat_id, message.message_id)
    except TelegramError as exc:
        await _reply(update, TEXTS.t("not_passed_on", await _language_of(context, update.effective_user.id), error=exc))
        return
    await context.assistant.db(work)


async def group_message(update: Update, context: Context) -> None:
    """A message in the staff forum group: written in a client's topic by the manager holding
    that client's conversation, it goes to the client. Anything else is explained (staff) or
    ignored (a message outside the topics, or from someone who is not staff)."""
    message = update.effective_message
    if not message.is_topic_message or update.effective_user is None:
        return
    member = await _staff(context, update.effective_user.id)
    if member is None or not member.on_desk:
        return
    known = await context.assistant.db(lambda s: client_of_topic(s, message.chat_id, message.message_thread_id) is not None)
    if not known:
        return  # a topic the team made for itself
    handoff = await _target(update, context, member.id, member.language)
    if handoff is not None:
        await _to_client(update, context, handoff)


@staff_only()
async def queue_command(update: Update, context: Context, member: Member) -> None:
    language = member.language

    def work(session):
        rows = []
        for h in queue(session):
            client = session.get(Client, h.client_id)
            opened = h.opened_at if h.opened_at.tzinfo else h.opened_at.replace(tzinfo=timezone.utc)
            minutes = int((clock.now() - opened).total_seconds() // 60)
            name = ("⭐ " if client.vip else "") + client.display_name
            if h.callback_phone:
                name += f" 📞 {h.callback_phone}"
            rows.append((h.id, name, h.reason, minutes))
        failed = [(n.chat_id, n.text, n.status, n.last_error or "") for n in failures(session, limit=5)]
        return rows, failed, unanswered_count(session)

    rows, failed, owed = await context.assistant.db(work)
    lines = [TEXTS.t("queue", language)] + [
        TEXTS.t("queue_line", language, id=i, client=name, reason=REASON_LABELS.t(reason, language), minutes=m)
        for i, name, reason, m in rows] if rows else [TEXTS.t("queue_empty", language)]
    if owed:  # clients who wrote while the assistant was down: answered as soon as it is back
        lines += ["", TEXTS.t("owed", language, count=owed)]
    if failed:  # staff see what could not be delivered, with Telegram's reason
        lines += ["", TEXTS.t("undelivered", language)] + [
            TEXTS.t("undelivered_line", language, chat=chat, text=shorten(text, 60), status=status, error=shorten(error, 80))
            for chat, text, status, error in failed]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(f"#{i}", callback_data=callback_data("take", i))]
                                   for i, *_ in rows[:10]]) if rows else None
    await _reply(update, "\n".join(lines), markup)


@staff_only()
async def take_command(update: Update, context: Context, member: Member) -> None:
    args = context.args or []
    handoff_id = int(args[0]) if args and args[0].isdigit() else await _topic_handoff(update, context)
    if handoff_id is None:
        await _reply(update, TEXTS.t("take_usage", member.language))
        return
    desk_member = await _staff(context, update.effective_user.id)
    _, text = await take(context, update.effective_user.id, handoff_id, reassign=desk_member.role == "admin")
    await _reply(update, text)


async def _topic_handoff(update: Update, context) -> int | None:
    """The open handoff of the client whose topic of the staff group the command was sent in."""
    message = update.effective_message
    group = context.settings.staff_chat
    if group is None or message.chat_id != group[0] or not message.is_topic_message:
        return None

    def work(session):
        client = client_of_topic(session, message.chat_id, message.message_thread_id)
        handoff = open_handoff_of(session, client) if client else None
        return handoff.id if handoff else None

    return await context.assistant.db(work)


@dataclass(frozen=True)
class Held:
    """A manager's command about one of their conversations: who, in which language, which one."""

    staff_id: int
    language: str
    handoff: Handoff


async def _held(update: Update, context, by_number: bool = True) -> Held | None:
    """The conversation a manager's command is about; None after a refusal or an explanation
    was sent."""
    member = await _manager(update, context)
    if member is None:
        return None
    handoff = await _target(update, context, member.id, member.language, by_number=by_number)
    return Held(member.id, member.language, handoff) if handoff is not None else None


async def done_command(update: Update, context: Context) -> None:
    if await _admin_close(update, context):
        return
    held = await _held(update, context)
    if held is None:
        return
    language, handoff = held.language, held.handoff

    def work(session):
        current = session.get(Handoff, handoff.id)
        close_handoff(session, current)
        client = session.get(Client, current.client_id)
        return client.telegram_id, client.language

    try:
        client_chat, client_language = await context.assistant.db(work)
    except HandoffError:  # a second /done, or another manager closed it meanwhile
        await _reply(update, TEXTS.t("already_closed", language, id=handoff.id))
        return
    await _send(context.bot, client_chat, client_text("closed", client_language), _rating_markup(handoff.id))
    await _reply(update, TEXTS.t("done", language, id=handoff.id))


async def _admin_close(update: Update, context) -> bool:
    """An admin's /done N on a conversation they do not hold (queued, or held by someone else):
    it ends, its holder and the client are told. False when it is not that case."""
    args = context.args or []
    if not args or not args[0].isdigit():
        return False
    member = await _staff(context, update.effective_user.id)
    if member is None or member.role != "admin":
        return False
    staff_id, language = member.id, member.language
    handoff_id = int(args[0])

    def work(session):
        handoff = session.get(Handoff, handoff_id)
        if handoff is None or handoff.manager_id == staff_id:
            return None  # unknown, or theirs: the ordinary /done answers
        if handoff.status not in ("queued", "active"):
            return "closed", None
        was_active = handoff.status == "active"
        end_by_admin(session, handoff_id, session.get(Staff, staff_id))
        client = session.get(Client, handoff.client_id)
        notes = notices_to_edit(session, handoff_id)
        return "ok", (client.telegram_id, client.language, client.display_name, was_active, notes)

    try:
        found = await context.assistant.db(work)
    except HandoffError:
        found = "closed", None
    if found is None:
        return False
    if found[0] == "closed":
        await _reply(update, TEXTS.t("already_closed", language, id=handoff_id))
        return True
    client_chat, client_language, name, was_active, notes = found[1]
    if was_active:  # they talked with a manager: they may rate it
        await _send(context.bot, client_chat, client_text("closed", client_language), _rating_markup(handoff_id))
    else:
        await _edit_notices(context, notes, "closed_notice", id=handoff_id, client=name)
        await _send(context.bot, client_chat, client_text("closed_by_staff", client_language))
    await _reply(update, TEXTS.t("admin_closed", language, id=handoff_id, client=name))
    return True


def _rating_markup(handoff_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(str(n), callback_data=callback_data("rate_handoff", handoff_id, n))
                                  for n in range(1, 6)]])


async def client_command(update: Update, context: Context) -> None:
    held = await _held(update, context)
    if held is None:
        return
    language, handoff = held.language, held.handoff
    card = await context.assistant.db(lambda s: client_card(s, s.get(Client, handoff.client_id), language))
    await _reply(update, card)


async def note_command(update: Update, context: Context) -> None:
    text = " ".join(context.args or []).strip()
    if not text:
        member = await _manager(update, context)
        if member is not None:
            await _reply(update, TEXTS.t("note_usage", member.language))
        return
    held = await _held(update, context, by_number=False)  # "/note 3 cartons missing" is a note
    if held is None:
        return
    staff_id, language, handoff = held.staff_id, held.language, held.handoff

    def work(session):
        client = session.get(Client, handoff.client_id)
        add_note(session, client, session.get(Staff, staff_id), text)
        return client.display_name

    name = await context.assistant.db(work)
    await _reply(update, TEXTS.t("note_saved", language, client=name))


# The client's score of a closed conversation with a manager.
handoff_rating = score_button("rate_handoff", rate_handoff, TEXTS, "expired", "rated")


async def remind(context: Context) -> None:
    """What the desk must not forget (crm.handoffs.remind_overdue); the outbox delivers it."""
    await context.assistant.db(remind_overdue)
