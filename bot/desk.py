"""The managers' desk in Telegram: "take" buttons, the relay between a client and the manager
holding their conversation, /queue /take /done /client /note, reminders. Every state change goes
through crm/handoffs.py first, so a restart of the bot loses nothing and the relay goes on."""

from __future__ import annotations

import logging
from datetime import timezone

from sqlalchemy import func, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from crm.client_file import client_card
from crm.clients import record_message
from crm.handoffs import (
    HANDOFF_RATE_PREFIX,
    REASON_LABELS,
    TAKE_PREFIX,
    HandoffError,
    active_handoffs_of,
    add_note,
    client_text,
    close_handoff,
    desk_settings,
    handoff_for_reply,
    notices,
    on_duty,
    open_handoff_of,
    queue,
    rate_handoff,
    record_relay,
    take_handoff,
    waiting_too_long,
)
from crm.i18n import translate
from crm.models import Client, ConversationMessage, Handoff, Staff, utcnow
from crm.staff import active_staff

log = logging.getLogger(__name__)
REMINDER_INTERVAL = 30.0

TEXTS = {
    "taken_by": {"fr": "✅ Conversation n° {id} prise en charge par {name}.",
                 "en": "✅ Conversation no. {id} taken by {name}."},
    "you_took": {
        "fr": "Vous avez la conversation n° {id} avec {client}. Vos messages lui sont transmis ; pour "
        "répondre à un client précis, répondez à l'un de ses messages. /done pour la terminer.",
        "en": "You have conversation no. {id} with {client}. Your messages are passed on; to answer "
        "a given client, reply to one of their messages. /done to end it.",
    },
    "since": {"fr": "Messages du client depuis sa demande :", "en": "The client's messages since the request:"},
    "already_taken": {"fr": "Déjà prise par {name}.", "en": "Already taken by {name}."},
    "closed": {"fr": "Cette conversation est terminée.", "en": "This conversation has ended."},
    "unknown": {"fr": "Conversation inconnue.", "en": "Unknown conversation."},
    "queue_empty": {"fr": "Aucune conversation en attente.", "en": "No conversation waiting."},
    "queue": {"fr": "En attente (la plus ancienne d'abord) :", "en": "Waiting (oldest first):"},
    "queue_line": {"fr": "n° {id} — {client} — {reason} — depuis {minutes} min",
                   "en": "no. {id} — {client} — {reason} — for {minutes} min"},
    "which": {
        "fr": "Vous tenez plusieurs conversations ({ids}). Répondez au message du client concerné "
        "(ou précisez le numéro : /done N, /client N) : je ne devine jamais.",
        "en": "You hold several conversations ({ids}). Reply to the message of the client concerned "
        "(or give the number: /done N, /client N): I never guess.",
    },
    "none_held": {"fr": "Vous ne tenez aucune conversation. /queue pour voir la file.",
                  "en": "You hold no conversation. /queue to see the queue."},
    "done": {"fr": "Conversation n° {id} terminée ; l'assistant reprend la main.",
             "en": "Conversation no. {id} ended; the assistant is back."},
    "note_saved": {"fr": "Note enregistrée dans la fiche de {client}.", "en": "Note saved in {client}'s file."},
    "note_usage": {"fr": "Usage : /note TEXTE", "en": "Usage: /note TEXT"},
    "from_client": {"fr": "💬 {client} (n° {id}) :", "en": "💬 {client} (no. {id}):"},
    "reminder": {
        "fr": "⏰ La conversation n° {id} ({client}) attend depuis {minutes} min. /take {id}",
        "en": "⏰ Conversation no. {id} ({client}) has been waiting for {minutes} min. /take {id}",
    },
    "rated": {"fr": "Merci pour votre note : {score}/5.", "en": "Thank you for your rating: {score}/5."},
    "expired": {"fr": "Ce bouton n'est plus valable.", "en": "This button is no longer valid."},
    "take_usage": {"fr": "Usage : /take N (voir /queue)", "en": "Usage: /take N (see /queue)"},
}


def t(key: str, language: str, **values) -> str:
    return translate(TEXTS, key, language, **values)


def assistant(context):
    return context.application.bot_data["assistant"]


def message_kind(message: Message) -> str:
    for kind in ("photo", "voice", "audio", "video", "video_note", "document", "sticker",
                 "location", "contact", "animation", "poll", "venue"):
        if getattr(message, kind, None):
            return kind
    return "text" if message.text else "other"


async def _staff(context, telegram_id: int) -> tuple[int, str, str, str] | None:
    """(staff id, language, name, role) of an active staff member, or None."""
    def work(session):
        member = active_staff(session, telegram_id)
        return (member.id, member.language, member.name, member.role) if member else None

    return await assistant(context).db(work)


# --- the client side ------------------------------------------------------------------------------


async def relay_from_client(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A client message while their conversation is with the desk: to the manager holding it, or
    kept for the one who takes it. True when handled (Rasa is not asked, the bot says nothing)."""
    message, user = update.effective_message, update.effective_user

    def work(session):
        client = session.scalar(select(Client).where(Client.telegram_id == user.id))
        handoff = open_handoff_of(session, client) if client else None
        if handoff is None:
            return None
        record_message(session, client, "in", message.text or message.caption or "", kind=message_kind(message))
        since_opened = session.scalar(select(func.count(ConversationMessage.id)).where(
            ConversationMessage.client_id == client.id, ConversationMessage.direction == "in",
            ConversationMessage.created_at >= handoff.opened_at))
        manager = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
        return (handoff.id, handoff.status, client.display_name, client.language,
                manager.telegram_id if manager else None, manager.language if manager else "fr",
                since_opened <= 1)

    found = await assistant(context).db(work)
    if found is None:
        return False
    handoff_id, status, name, language, manager_chat, manager_language, first = found
    if status == "queued":
        if first:
            await _send(context.bot, message.chat_id, client_text("queued_ack", language))
        return True
    header = t("from_client", manager_language, client=name, id=handoff_id)
    sent = await _copy_with_header(context.bot, manager_chat, message, header)
    if sent is not None:
        await assistant(context).db(lambda s: record_relay(s, handoff_id, manager_chat, sent))
    return True


async def _copy_with_header(bot, chat_id: int, message: Message, header: str) -> int | None:
    try:
        if message.text:
            sent = await bot.send_message(chat_id, f"{header}\n{message.text}")
            return sent.message_id
        caption = f"{header}\n{message.caption}" if message.caption else header
        if message.sticker or message.location or message.contact or message.video_note or message.poll or message.venue:
            await bot.send_message(chat_id, header)
            copied = await bot.copy_message(chat_id, message.chat_id, message.message_id)
        else:
            copied = await bot.copy_message(chat_id, message.chat_id, message.message_id, caption=caption[:1024])
        return copied.message_id
    except TelegramError as exc:
        log.warning("relay to %s failed: %s", chat_id, exc)
        return None


async def _send(bot, chat_id: int, text: str, markup=None) -> Message | None:
    try:
        return await bot.send_message(chat_id, text, reply_markup=markup)
    except TelegramError as exc:
        log.warning("could not send to %s: %s", chat_id, exc)
        return None


# --- the manager side ----------------------------------------------------------------------------


async def take(context, manager_telegram_id: int, handoff_id: int) -> tuple[bool, str]:
    """Take a queued conversation; returns (taken, what to tell the manager)."""
    member = await _staff(context, manager_telegram_id)
    staff_id, language, staff_name = member[0], member[1], member[2]

    def work(session):
        manager = session.get(Staff, staff_id)
        try:
            handoff = take_handoff(session, handoff_id, manager)
        except HandoffError as exc:
            handoff = session.get(Handoff, handoff_id)
            if handoff is None:
                return "unknown", None
            holder = session.get(Staff, handoff.manager_id) if handoff.manager_id else None
            return str(exc), holder.name if holder else ""
        client = session.get(Client, handoff.client_id)
        since = [m.text or f"[{m.kind}]" for m in session.scalars(
            select(ConversationMessage).where(ConversationMessage.client_id == client.id,
                                              ConversationMessage.direction == "in",
                                              ConversationMessage.created_at >= handoff.opened_at)
            .order_by(ConversationMessage.id))]
        notes = [(n.chat_id, n.message_id, _language_of_chat(session, n.chat_id)) for n in notices(session, handoff_id)]
        return "ok", (client.telegram_id, client.language, client.display_name, since, notes)

    outcome, data = await assistant(context).db(work)
    if outcome == "unknown":
        return False, t("unknown", language)
    if outcome == "taken":
        return False, t("already_taken", language, name=data)
    if outcome != "ok":
        return False, t("closed", language)
    client_chat, client_language, client_name, since, notes = data
    for chat_id, message_id, notice_language in notes:
        try:
            await context.bot.edit_message_text(t("taken_by", notice_language, id=handoff_id, name=staff_name),
                                                chat_id=chat_id, message_id=message_id)
        except TelegramError as exc:
            log.info("could not edit notice %s/%s: %s", chat_id, message_id, exc)
    if desk_settings().get("show_manager_name", True):
        await _send(context.bot, client_chat, client_text("taken", client_language, manager=staff_name.split()[0]))
    else:
        await _send(context.bot, client_chat, client_text("taken_anonymous", client_language))
    text = t("you_took", language, id=handoff_id, client=client_name)
    if since:
        text += "\n\n" + t("since", language) + "\n" + "\n".join(f"→ {m}" for m in since)
    return True, text


def _language_of_chat(session, chat_id: int) -> str:
    return session.scalar(select(Staff.language).where(Staff.telegram_id == chat_id)) or "fr"


async def take_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    member = await _staff(context, update.effective_user.id)
    handoff_id = (query.data or "")[len(TAKE_PREFIX):]
    if member is None or member[3] not in ("manager", "admin") or not handoff_id.isdigit():
        await query.answer(t("expired", member[1] if member else "fr"), show_alert=True)
        return
    taken, text = await take(context, update.effective_user.id, int(handoff_id))
    if not taken:
        await query.answer(text, show_alert=True)
        return
    await query.answer()
    await _send(context.bot, update.effective_user.id, text)


async def _manager(update: Update, context) -> tuple[int, str] | None:
    from bot.staff import staff_member

    member_id, language = await staff_member(update, context)
    return (member_id, language) if member_id else None


async def _target(update: Update, context, staff_id: int, language: str) -> Handoff | None:
    """Which conversation a manager's message or command is about: the one they reply to, the
    number given, or their only one. Otherwise explain, never guess."""
    message = update.effective_message
    args = context.args or []

    def work(session):
        manager = session.get(Staff, staff_id)
        held = active_handoffs_of(session, manager)
        if message.reply_to_message is not None:
            handoff = handoff_for_reply(session, message.chat_id, message.reply_to_message.message_id)
            if handoff is not None and handoff.status == "active" and handoff.manager_id == staff_id:
                return handoff, held
        if args and args[0].isdigit():
            chosen = [h for h in held if h.id == int(args[0])]
            if chosen:
                return chosen[0], held
        return (held[0] if len(held) == 1 else None), held

    handoff, held = await assistant(context).db(work)
    if handoff is None:
        text = t("none_held", language) if not held else t("which", language, ids=", ".join(f"n° {h.id}" for h in held))
        await _send(context.bot, message.chat_id, text)
    return handoff


async def relay_from_manager(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A manager's message in their chat with the bot goes to the client of the conversation it
    is about. True when handled; False when the sender holds no conversation (then they talk to
    the assistant like anyone)."""
    member = await _staff(context, update.effective_user.id)
    if member is None or member[3] not in ("manager", "admin"):
        return False
    staff_id, language = member[0], member[1]
    held = await assistant(context).db(lambda s: len(active_handoffs_of(s, s.get(Staff, staff_id))))
    if not held:
        return False
    handoff = await _target(update, context, staff_id, language)
    if handoff is None:
        return True
    message = update.effective_message

    def work(session):
        client = session.get(Client, handoff.client_id)
        record_message(session, client, "out", message.text or message.caption or "", kind=message_kind(message))
        return client.telegram_id

    client_chat = await assistant(context).db(work)
    try:
        await context.bot.copy_message(client_chat, message.chat_id, message.message_id)
    except TelegramError as exc:
        await _send(context.bot, message.chat_id, f"⚠️ {exc}")
    return True


async def queue_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    member = await _manager(update, context)
    if member is None:
        return
    _, language = member

    def work(session):
        rows = []
        for h in queue(session):
            client = session.get(Client, h.client_id)
            opened = h.opened_at if h.opened_at.tzinfo else h.opened_at.replace(tzinfo=timezone.utc)
            minutes = int((utcnow() - opened).total_seconds() // 60)
            rows.append((h.id, client.display_name, h.reason, minutes))
        return rows

    rows = await assistant(context).db(work)
    if not rows:
        await _send(context.bot, update.effective_chat.id, t("queue_empty", language))
        return
    lines = [t("queue", language)] + [
        t("queue_line", language, id=i, client=name, reason=translate(REASON_LABELS, reason, language), minutes=m)
        for i, name, reason, m in rows]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(f"#{i}", callback_data=f"{TAKE_PREFIX}{i}")]
                                   for i, *_ in rows[:10]])
    await _send(context.bot, update.effective_chat.id, "\n".join(lines), markup)


async def take_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    member = await _manager(update, context)
    if member is None:
        return
    args = context.args or []
    if not args or not args[0].isdigit():
        await _send(context.bot, update.effective_chat.id, t("take_usage", member[1]))
        return
    _, text = await take(context, update.effective_user.id, int(args[0]))
    await _send(context.bot, update.effective_chat.id, text)


async def _held(update: Update, context) -> tuple[int, str, Handoff] | None:
    """(staff id, language, handoff) for a manager's command about one of their conversations;
    None after a refusal or an explanation was sent."""
    member = await _manager(update, context)
    if member is None:
        return None
    handoff = await _target(update, context, *member)
    return (*member, handoff) if handoff is not None else None


async def done_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    held = await _held(update, context)
    if held is None:
        return
    _, language, handoff = held

    def work(session):
        current = session.get(Handoff, handoff.id)
        close_handoff(session, current)
        client = session.get(Client, current.client_id)
        return client.telegram_id, client.language

    client_chat, client_language = await assistant(context).db(work)
    buttons = InlineKeyboardMarkup([[InlineKeyboardButton(str(n), callback_data=f"{HANDOFF_RATE_PREFIX}{handoff.id}:{n}")
                                     for n in range(1, 6)]])
    await _send(context.bot, client_chat, client_text("closed", client_language), buttons)
    await _send(context.bot, update.effective_chat.id, t("done", language, id=handoff.id))


async def client_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    held = await _held(update, context)
    if held is None:
        return
    _, language, handoff = held
    card = await assistant(context).db(lambda s: client_card(s, s.get(Client, handoff.client_id), language))
    await _send(context.bot, update.effective_chat.id, card)


async def note_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    text = " ".join(context.args or []).strip()
    if not text:
        member = await _manager(update, context)
        if member is not None:
            await _send(context.bot, update.effective_chat.id, t("note_usage", member[1]))
        return
    held = await _held(update, context)
    if held is None:
        return
    staff_id, language, handoff = held

    def work(session):
        client = session.get(Client, handoff.client_id)
        add_note(session, client, session.get(Staff, staff_id), text)
        return client.display_name

    name = await assistant(context).db(work)
    await _send(context.bot, update.effective_chat.id, t("note_saved", language, client=name))


async def handoff_rating(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    handoff = await assistant(context).db(lambda s: rate_handoff(s, update.effective_user.id, query.data))
    _, language = await assistant(context).client(update.effective_user)
    if handoff is None:
        await query.answer(t("expired", language), show_alert=True)
        return
    await query.answer()
    try:
        await query.edit_message_text(t("rated", language, score=handoff.satisfaction))
    except TelegramError as exc:
        log.info("could not edit the rating message: %s", exc)


async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Conversations nobody took in time: the client is told once, managers are reminded."""
    def work(session):
        out = []
        for handoff in waiting_too_long(session):
            handoff.client_told_waiting = True
            client = session.get(Client, handoff.client_id)
            minutes = int(desk_settings().get("unanswered_after_minutes", 10))
            managers = [(m.telegram_id, m.language) for m in on_duty(session, client)]
            out.append((handoff.id, client.telegram_id, client.language, client.display_name, minutes, managers))
        return out

    for handoff_id, client_chat, language, name, minutes, managers in await assistant(context).db(work):
        await _send(context.bot, client_chat, client_text("waiting", language))
        for chat_id, manager_language in managers:
            await _send(context.bot, chat_id, t("reminder", manager_language, id=handoff_id, client=name, minutes=minutes))
