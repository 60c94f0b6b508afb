"""The managers' desk in Telegram: "take" buttons, the relay between a client and the manager
holding their conversation, /queue /take /done /client /note, reminders. Every state change goes
through crm/handoffs.py first, so a restart of the bot loses nothing and the relay goes on."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timezone

from sqlalchemy import func, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyKeyboardRemove, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.shared import assistant
from bot.staff import Member, staff_member, staff_only
from crm import clock
from crm.client_file import client_card
from crm.clients import record_message, recorded, unanswered_count
from crm.desk_hours import desk_settings
from crm.handoffs import (
    topic_name,
    HANDOFF_RATE_PREFIX,
    REASON_LABELS,
    TAKE_PREFIX,
    HandoffError,
    active_handoffs_of,
    add_note,
    client_text,
    client_of_topic,
    client_wrote,
    close_handoff,
    forget_topic,
    hand_over,
    handoff_for_reply,
    manager_answered,
    notices,
    open_handoff_of,
    queue,
    LEAVE_PREFIX,
    LEAVE_WORDS,
    end_by_admin,
    leave_queue,
    reassign_handoff,
    rate_handoff,
    record_relay,
    relayed,
    remind_overdue,
    request_callback,
    save_topic,
    take_handoff,
    topic_of,
    vip_handoff_due,
)
from crm.i18n import DEFAULT_LANGUAGE, Texts, translate
from crm.models import Client, ConversationMessage, Handoff, Staff
from crm.outbox import failures
from crm.settings import staff_chat
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

    return await assistant(context).db(work)


# --- the client side ------------------------------------------------------------------------------


async def relay_from_client(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A client message while their conversation is with the desk: to the manager holding it, or
    kept for the one who takes it (and shown in the client's topic of the staff group, if any).
    A VIP client's message opens a handoff first (configurable). True when handled: Rasa is not
    asked, the bot says nothing of its own."""
    message, user = update.effective_message, update.effective_user
    contact = message.contact

    def work(session):
        client = session.scalar(select(Client).where(Client.telegram_id == user.id))
        if client is None:
            return None
        if recorded(session, update.update_id):  # handled before a crash: nothing is done twice...
            handoff = open_handoff_of(session, client)
            if handoff is None or relayed(session, update.update_id):
                return "replayed", None
            manager = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
            # ...but a message recorded and not yet passed on to the manager is passed on now.
            return "relay", (handoff.id, handoff.status, client.id, client.display_name,
                             manager.telegram_id if manager else None, manager.language if manager else "fr")
        handoff = open_handoff_of(session, client)
        opened = None
        if handoff is None and vip_handoff_due(session, client):
            opened = hand_over(session, client, "vip", client.language, message.text or message.caption or "")
            handoff = open_handoff_of(session, client)
        if handoff is None:
            return None
        text = message.text or message.caption or (contact.phone_number if contact else "")
        if handoff.status == "queued" and message.text and LEAVE_WORDS.fullmatch(message.text):
            left = leave_queue(session, client)
            if left is not None:
                record_message(session, client, "in", text, update_id=update.update_id)
                return "left", client.language, [(n.chat_id, n.message_id, _language_of_chat(session, n.chat_id))
                                                 for n in notices(session, left.id)], left.id, client.display_name
        callback = None
        if contact is not None and contact.user_id == user.id and handoff.status == "queued":
            callback = request_callback(session, client, contact.phone_number)
        record_message(session, client, "in", text, kind=message_kind(message), update_id=update.update_id)
        client_wrote(session, handoff)
        since_opened = session.scalar(select(func.count(ConversationMessage.id)).where(
            ConversationMessage.client_id == client.id, ConversationMessage.direction == "in",
            ConversationMessage.created_at >= handoff.opened_at))
        manager = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
        return (handoff.id, handoff.status, client.id, client.display_name, client.language,
                manager.telegram_id if manager else None, manager.language if manager else "fr",
                since_opened <= 1, opened, callback[1] if callback else None)

    found = await assistant(context).db(work)
    if found is None:
        return False
    if found[0] == "replayed":
        return True
    if found[0] == "relay":
        await _relay(context, message, *found[1], update_id=update.update_id)
        return True
    if found[0] == "left":
        _, language, notes, handoff_id, name = found
        await _edit_notices(context, notes, "withdrawn_notice", id=handoff_id, client=name)
        await _send(context.bot, message.chat_id, client_text("left", language))
        return True
    (handoff_id, status, client_id, name, language, manager_chat, manager_language, first, opened,
     callback) = found
    if opened:
        await _send(context.bot, message.chat_id, opened)
    elif callback:
        await _send(context.bot, message.chat_id, callback, ReplyKeyboardRemove())
    elif status == "queued" and first:
        await _send(context.bot, message.chat_id, client_text("queued_ack", language), _leave_markup(handoff_id, language))
    await _relay(context, message, handoff_id, status, client_id, name, manager_chat, manager_language,
                 update_id=update.update_id)
    return True


async def _relay(context, message: Message, handoff_id: int, status: str, client_id: int, name: str,
                 manager_chat: int | None, manager_language: str, update_id: int | None) -> None:
    """Copy the client's message to the desk: their topic, or the manager holding it."""
    group = staff_chat()
    if group is not None:  # the client's topic shows everything they write, taken or not
        target, header_language = group
    elif status == "active":
        target, header_language = manager_chat, manager_language
    else:
        return  # kept in the CRM: the manager who takes it reads it then
    header = TEXTS.t("from_client", header_language, client=name, id=handoff_id)
    sent = await _copy_with_header(context, target, client_id if group else None, message, header)
    if sent is not None:
        await assistant(context).db(lambda s: record_relay(s, handoff_id, target, sent, update_id))


def _leave_markup(handoff_id: int, language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(client_text("leave_button", language),
                                                       callback_data=f"{LEAVE_PREFIX}{handoff_id}")]])


async def _edit_notices(context, notes: list[tuple[int, int, str]], key: str, **values) -> None:
    """Turn the "take" notices of a conversation into a line saying what became of it (no more
    button to press)."""
    for chat_id, message_id, notice_language in notes:
        try:
            await context.bot.edit_message_text(TEXTS.t(key, notice_language, **values), chat_id=chat_id,
                                                message_id=message_id)
        except TelegramError as exc:
            log.info("could not edit notice %s/%s: %s", chat_id, message_id, exc)


async def leave_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"Cancel my request": a queued client leaves the queue (only their own request, only while
    nobody has taken it)."""
    query, user = update.callback_query, update.effective_user
    handoff_id = (query.data or "")[len(LEAVE_PREFIX):]

    def work(session):
        client = session.scalar(select(Client).where(Client.telegram_id == user.id))
        if client is None:
            return None, "fr", [], ""
        current = open_handoff_of(session, client)
        if current is None or str(current.id) != handoff_id or current.status != "queued":
            return None, client.language, [], ""
        left = leave_queue(session, client)
        notes = [(n.chat_id, n.message_id, _language_of_chat(session, n.chat_id)) for n in notices(session, left.id)] \
            if left else []
        return left.id if left else None, client.language, notes, client.display_name

    helper = assistant(context)
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
    helper = assistant(context)
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
        await assistant(context).db(lambda s: forget_topic(s, chat_id, topic_client_id))
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
    staff_id, language, staff_name = member.id, member.language, member.name

    def work(session):
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
                return "unknown", None
            holder = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
            if holder is not None and holder.id == staff_id and handoff.status == "active":
                return "yours", None
            return exc.key, holder.name if holder else ""
        client = session.get(Client, handoff.client_id)
        since = [m.text or f"[{m.kind}]" for m in session.scalars(
            select(ConversationMessage).where(ConversationMessage.client_id == client.id,
                                              ConversationMessage.direction == "in",
                                              ConversationMessage.created_at >= handoff.opened_at)
            .order_by(ConversationMessage.id))]
        notes = [] if previous is not None else [
            (n.chat_id, n.message_id, _language_of_chat(session, n.chat_id)) for n in notices(session, handoff_id)]
        return "ok", (client.telegram_id, client.language, client.display_name, since, notes,
                      previous.name if previous else None)

    outcome, data = await assistant(context).db(work)
    if outcome == "unknown":
        return False, TEXTS.t("unknown", language)
    if outcome == "yours":
        return False, TEXTS.t("already_yours", language, id=handoff_id)
    if outcome == "taken":
        return False, TEXTS.t("already_taken", language, name=data)
    if outcome != "ok":
        return False, TEXTS.t("closed", language)
    client_chat, client_language, client_name, since, notes, previous = data
    await _edit_notices(context, notes, "taken_by", id=handoff_id, name=staff_name)
    if desk_settings().get("show_manager_name", True):
        await _send(context.bot, client_chat, client_text("taken", client_language, manager=staff_name.split()[0]))
    else:
        await _send(context.bot, client_chat, client_text("taken_anonymous", client_language))
    told = "\n\n" + TEXTS.t("previous_told", language, name=previous) if previous else ""
    if staff_chat() is not None:
        return True, TEXTS.t("you_took_topic", language, name=staff_name, id=handoff_id, client=client_name) + told
    text = TEXTS.t("you_took", language, id=handoff_id, client=client_name) + told
    if since:
        text += "\n\n" + TEXTS.t("since", language) + "\n" + "\n".join(f"→ {m}" for m in since)
    return True, text


def _language_of_chat(session, chat_id: int) -> str:
    group = staff_chat()
    if group is not None and group[0] == chat_id:
        return group[1]
    return session.scalar(select(Staff.language).where(Staff.telegram_id == chat_id)) or "fr"


async def take_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    member = await _staff(context, update.effective_user.id)
    handoff_id = (query.data or "")[len(TAKE_PREFIX):]
    if member is None or not member.on_desk or not handoff_id.isdigit():
        await query.answer(TEXTS.t("expired", member.language if member else DEFAULT_LANGUAGE), show_alert=True)
        return
    taken, text = await take(context, update.effective_user.id, int(handoff_id))
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
    group = staff_chat()
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

    handoff, held = await assistant(context).db(work)
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


async def relay_from_manager(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A manager's message in their chat with the bot goes to the client of the conversation it
    is about. True when handled; False when the sender holds no conversation (then they talk to
    the assistant like anyone)."""
    member = await _staff(context, update.effective_user.id)
    if member is None or not member.on_desk:
        return False
    staff_id, language = member.id, member.language
    held = await assistant(context).db(lambda s: len(active_handoffs_of(s, s.get(Staff, staff_id))))
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

    client_chat = await assistant(context).db(find)
    if client_chat is None:
        return
    try:  # passed on first, recorded then: a crash in between passes it on again, never loses it
        await context.bot.copy_message(client_chat, message.chat_id, message.message_id)
    except TelegramError as exc:
        await _reply(update, TEXTS.t("not_passed_on", await _language_of(context, update.effective_user.id), error=exc))
        return
    await assistant(context).db(work)


async def group_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A message in the staff forum group: written in a client's topic by the manager holding
    that client's conversation, it goes to the client. Anything else is explained (staff) or
    ignored (a message outside the topics, or from someone who is not staff)."""
    message = update.effective_message
    if not message.is_topic_message or update.effective_user is None:
        return
    member = await _staff(context, update.effective_user.id)
    if member is None or not member.on_desk:
        return
    known = await assistant(context).db(lambda s: client_of_topic(s, message.chat_id, message.message_thread_id) is not None)
    if not known:
        return  # a topic the team made for itself
    handoff = await _target(update, context, member.id, member.language)
    if handoff is not None:
        await _to_client(update, context, handoff)


@staff_only()
async def queue_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
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

    rows, failed, owed = await assistant(context).db(work)
    lines = [TEXTS.t("queue", language)] + [
        TEXTS.t("queue_line", language, id=i, client=name, reason=translate(REASON_LABELS, reason, language), minutes=m)
        for i, name, reason, m in rows] if rows else [TEXTS.t("queue_empty", language)]
    if owed:  # clients who wrote while the assistant was down: answered as soon as it is back
        lines += ["", TEXTS.t("owed", language, count=owed)]
    if failed:  # staff see what could not be delivered, with Telegram's reason
        lines += ["", TEXTS.t("undelivered", language)] + [
            TEXTS.t("undelivered_line", language, chat=chat, text=shorten(text, 60), status=status, error=shorten(error, 80))
            for chat, text, status, error in failed]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(f"#{i}", callback_data=f"{TAKE_PREFIX}{i}")]
                                   for i, *_ in rows[:10]]) if rows else None
    await _reply(update, "\n".join(lines), markup)


@staff_only()
async def take_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
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
    group = staff_chat()
    if group is None or message.chat_id != group[0] or not message.is_topic_message:
        return None

    def work(session):
        client = client_of_topic(session, message.chat_id, message.message_thread_id)
        handoff = open_handoff_of(session, client) if client else None
        return handoff.id if handoff else None

    return await assistant(context).db(work)


async def _held(update: Update, context, by_number: bool = True) -> tuple[int, str, Handoff] | None:
    """(staff id, language, handoff) for a manager's command about one of their conversations;
    None after a refusal or an explanation was sent."""
    member = await _manager(update, context)
    if member is None:
        return None
    handoff = await _target(update, context, member.id, member.language, by_number=by_number)
    return (member.id, member.language, handoff) if handoff is not None else None


async def done_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await _admin_close(update, context):
        return
    held = await _held(update, context)
    if held is None:
        return
    _, language, handoff = held

    def work(session):
        current = session.get(Handoff, handoff.id)
        close_handoff(session, current)
        client = session.get(Client, current.client_id)
        return client.telegram_id, client.language

    try:
        client_chat, client_language = await assistant(context).db(work)
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
        notes = [(n.chat_id, n.message_id, _language_of_chat(session, n.chat_id)) for n in notices(session, handoff_id)]
        return "ok", (client.telegram_id, client.language, client.display_name, was_active, notes)

    try:
        found = await assistant(context).db(work)
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
    return InlineKeyboardMarkup([[InlineKeyboardButton(str(n), callback_data=f"{HANDOFF_RATE_PREFIX}{handoff_id}:{n}")
                                  for n in range(1, 6)]])


async def client_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    held = await _held(update, context)
    if held is None:
        return
    _, language, handoff = held
    card = await assistant(context).db(lambda s: client_card(s, s.get(Client, handoff.client_id), language))
    await _reply(update, card)


async def note_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = " ".join(context.args or []).strip()
    if not text:
        member = await _manager(update, context)
        if member is not None:
            await _reply(update, TEXTS.t("note_usage", member.language))
        return
    held = await _held(update, context, by_number=False)  # "/note 3 cartons missing" is a note
    if held is None:
        return
    staff_id, language, handoff = held

    def work(session):
        client = session.get(Client, handoff.client_id)
        add_note(session, client, session.get(Staff, staff_id), text)
        return client.display_name

    name = await assistant(context).db(work)
    await _reply(update, TEXTS.t("note_saved", language, client=name))


async def handoff_rating(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    handoff = await assistant(context).db(lambda s: rate_handoff(s, update.effective_user.id, query.data))
    _, language = await assistant(context).client(update.effective_user)
    if handoff is None:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    await query.answer()
    try:
        await query.edit_message_text(TEXTS.t("rated", language, score=handoff.satisfaction))
    except TelegramError as exc:
        log.info("could not edit the rating message: %s", exc)


async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
    """What the desk must not forget (crm.handoffs.remind_overdue); the outbox delivers it."""
    await assistant(context).db(remind_overdue)
