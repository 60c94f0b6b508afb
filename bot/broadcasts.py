"""Broadcasts in Telegram, for marketers and admins: /broadcast composes one step by step (French
text or photo, English text, segment, preview with the exact number of recipients, now or at a
date, confirm), /broadcasts lists them and cancels one. Clients' "unsubscribe" button too.
The draft lives in the CRM (broadcasts.compose_step), so a restart does not lose it."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.broadcaster import UNSUBSCRIBE_PREFIX
from bot.shared import assistant
from bot.staff import Member, staff_only
from crm import broadcasts as crm_broadcasts
from crm import clock, desk_hours
from crm.clients import TelegramProfile, register_client
from crm.consent import set_consent
from crm.consent import TEXTS as CONSENT_TEXTS
from crm.i18n import Texts, translate
from crm.models import Broadcast, Staff
from crm.staff import active_staff

log = logging.getLogger(__name__)
PREFIX = "bc:"
ROLES = ("marketer", "admin")

TEXTS = Texts("bot.broadcasts")
STATES = Texts("bot.broadcasts.state")



def buttons(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(title, callback_data=data) for title, data in row]
                                 for row in rows])


def _draft_of(session, staff_id: int) -> Broadcast | None:
    return session.scalar(select(Broadcast).where(Broadcast.created_by == staff_id, Broadcast.state == "draft")
                          .order_by(Broadcast.id.desc()).limit(1))


@staff_only(ROLES)
async def broadcast_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
    member_id, language = member.id, member.language

    def work(session):
        for old in session.scalars(select(Broadcast).where(Broadcast.created_by == member_id,
                                                           Broadcast.state == "draft")):
            old.state = "cancelled"  # one draft at a time: /broadcast starts afresh
        session.add(Broadcast(created_by=member_id, state="draft", compose_step="text_fr"))

    await assistant(context).db(work)
    await update.effective_message.reply_text(TEXTS.t("ask_fr", language))


async def compose_input(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A marketer's message while one of their drafts waits for text, a segment or a date.
    True when it was taken as such (then nothing else handles it)."""
    message, user = update.effective_message, update.effective_user

    def find(session):
        member = active_staff(session, user.id)
        if member is None or member.role not in ROLES:
            return None
        draft = _draft_of(session, member.id)
        return (draft.id, draft.compose_step, member.language) if draft and draft.compose_step else None

    found = await assistant(context).db(find)
    if found is None:
        return False
    draft_id, step, language = found
    if step in ("text_fr", "text_en"):
        text = message.text_html if message.text else (message.caption_html if message.caption else None)
        photo = message.photo[-1].file_id if message.photo else None
        if not text:
            await message.reply_text(TEXTS.t("needs_text", language))
            return True

        def save(session):
            draft = session.get(Broadcast, draft_id)
            checked = crm_broadcasts.check_text(text)
            if step == "text_fr":
                draft.text_fr, draft.photo, draft.compose_step = checked, photo, "text_en"
            else:
                draft.text_en, draft.compose_step = checked, "segment"

        try:
            await assistant(context).db(save)
        except crm_broadcasts.BroadcastError as exc:
            await message.reply_text(TEXTS.t("error", language, error=exc.text(language)))
            return True
        if step == "text_fr":
            await message.reply_text(TEXTS.t("ask_en", language), reply_markup=buttons([(TEXTS.t("same", language), f"{PREFIX}{draft_id}:same")]))
        else:
            await _ask_segment(message, draft_id, language)
        return True
    if step == "segment" and message.text:
        await _set_segment(update, context, draft_id, message.text, language)
        return True
    if step == "when" and message.text:
        try:
            when = crm_broadcasts.send_time(message.text)
        except crm_broadcasts.BroadcastError as exc:
            refusal = exc.text(language)
            await message.reply_text(refusal[:1].upper() + refusal[1:])
            return True
        await _confirm(update, context, draft_id, language, when)
        return True
    return False


async def _ask_segment(message, draft_id: int, language: str) -> None:
    await message.reply_text(TEXTS.t("ask_segment", language, help=crm_broadcasts.SEGMENT_HELP), reply_markup=buttons(
        [(TEXTS.t("everyone", language), f"{PREFIX}{draft_id}:seg:all"), (TEXTS.t("vip", language), f"{PREFIX}{draft_id}:seg:vip")],
        [(TEXTS.t("french", language), f"{PREFIX}{draft_id}:seg:fr"), (TEXTS.t("english", language), f"{PREFIX}{draft_id}:seg:en")]))


SEGMENT_BUTTONS = {"all": "all", "vip": "vip", "fr": "lang:fr", "en": "lang:en"}


async def _set_segment(update: Update, context, draft_id: int, spec: str, language: str) -> None:
    """Keep the segment, then send the preview (as a client would see it) and the exact count."""
    chat_id = update.effective_chat.id

    def work(session):
        crm_broadcasts.parse_segment(spec)
        draft = session.get(Broadcast, draft_id)
        draft.segment, draft.compose_step = spec.strip(), "when_choice"
        member = session.get(Staff, draft.created_by)
        first_name = member.name.split()[0]
        return (crm_broadcasts.render(draft, language, first_name), draft.photo,
                len(crm_broadcasts.segment_client_ids(session, spec)))

    try:
        text, photo, count = await assistant(context).db(work)
    except crm_broadcasts.BroadcastError as exc:
        await context.bot.send_message(chat_id, TEXTS.t("error", language, error=exc.text(language)))
        return
    try:
        if photo:
            await context.bot.send_photo(chat_id, photo, caption=text, parse_mode=ParseMode.HTML)
        else:
            await context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        await assistant(context).db(lambda s: setattr(s.get(Broadcast, draft_id), "compose_step", "text_fr"))
        await context.bot.send_message(chat_id, TEXTS.t("preview_failed", language, error=exc))
        return
    await context.bot.send_message(chat_id, TEXTS.t("preview", language, count=count, segment=spec.strip() or "all"),
                                   reply_markup=buttons([(TEXTS.t("now", language), f"{PREFIX}{draft_id}:now"),
                                                         (TEXTS.t("later", language), f"{PREFIX}{draft_id}:later")],
                                                        [(TEXTS.t("drop", language), f"{PREFIX}{draft_id}:drop")]))


async def _confirm(update: Update, context, draft_id: int, language: str, when: datetime | None) -> None:
    def work(session):
        draft = session.get(Broadcast, draft_id)
        draft.scheduled_at = when.astimezone(timezone.utc) if when else None  # until confirmed; None: now
        draft.compose_step = "confirm"
        return len(crm_broadcasts.segment_client_ids(session, draft.segment))

    count = await assistant(context).db(work)
    text = TEXTS.t("confirm_now", language, count=count) if when is None else TEXTS.t(
        "confirm_at", language, count=count, when=when.astimezone(desk_hours.zone()))
    await context.bot.send_message(update.effective_chat.id, text, reply_markup=buttons(
        [(TEXTS.t("confirm", language), f"{PREFIX}{draft_id}:ok"), (TEXTS.t("drop", language), f"{PREFIX}{draft_id}:drop")]))


async def compose_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """bc:<draft id>:<choice>, honoured only for the marketer who owns the draft, at its step."""
    query = update.callback_query
    match = re.fullmatch(rf"{PREFIX}(\d{{1,9}}):(same|seg:all|seg:vip|seg:fr|seg:en|now|later|ok|drop|cancel)",
                         query.data or "")

    def find(session):
        member = active_staff(session, update.effective_user.id)
        if member is None or member.role not in ROLES or match is None:
            return None, member.language if member else "fr"
        broadcast = session.get(Broadcast, int(match.group(1)))
        if broadcast is None or (broadcast.created_by != member.id and match.group(2) != "cancel"):
            return None, member.language
        return (broadcast.id, broadcast.state, broadcast.compose_step), member.language

    found, language = await assistant(context).db(find)
    expected = {"same": "text_en", "now": "when_choice", "later": "when_choice", "ok": "confirm"}
    choice = match.group(2) if match else ""
    if found is None or (choice in expected and found[2] != expected[choice]) or (
            choice.startswith("seg:") and found[2] != "segment") or (choice == "drop" and found[1] != "draft"):
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    draft_id = found[0]
    await query.answer()
    message = query.message
    if choice == "same":
        await assistant(context).db(lambda s: setattr(s.get(Broadcast, draft_id), "compose_step", "segment"))
        await _ask_segment(message, draft_id, language)
    elif choice.startswith("seg:"):
        await _set_segment(update, context, draft_id, SEGMENT_BUTTONS[choice[4:]], language)
    elif choice == "now":
        await _confirm(update, context, draft_id, language, None)
    elif choice == "later":
        await assistant(context).db(lambda s: setattr(s.get(Broadcast, draft_id), "compose_step", "when"))
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("ask_when", language, zone=desk_hours.zone().key))
    elif choice == "ok":
        def work(session):
            draft = session.get(Broadcast, draft_id)
            crm_broadcasts.schedule(session, draft, draft.scheduled_at)

        await assistant(context).db(work)
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("scheduled", language, id=draft_id))
    elif choice == "drop":
        await assistant(context).db(lambda s: setattr(s.get(Broadcast, draft_id), "state", "cancelled"))
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("discarded", language))
    elif choice == "cancel":
        try:
            await assistant(context).db(lambda s: crm_broadcasts.cancel(s, draft_id))
        except crm_broadcasts.BroadcastError as exc:
            await context.bot.send_message(update.effective_chat.id, TEXTS.t("error", language, error=exc.text(language)))
            return
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("cancelled", language, id=draft_id))


@staff_only(ROLES)
async def broadcasts_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
    language = member.language

    def work(session):
        rows = []
        for b in crm_broadcasts.listing(session):
            numbers = crm_broadcasts.counts(session, b.id)
            when = clock.aware(b.started_at or b.scheduled_at or b.created_at).astimezone(desk_hours.zone())
            rows.append((b.id, b.state, when, numbers["sent"], numbers["total"], b.segment or "all"))
        return rows

    rows = await assistant(context).db(work)
    if not rows:
        await update.effective_message.reply_text(TEXTS.t("list_empty", language))
        return
    lines = [TEXTS.t("list", language)] + [
        TEXTS.t("line", language, id=i, state=translate(STATES, state, language), when=f"{when:%d/%m %H:%M}", sent=sent,
          total=total, segment=segment) for i, state, when, sent, total, segment in rows]
    cancellable = [(TEXTS.t("cancel_button", language, id=i), f"{PREFIX}{i}:cancel")
                   for i, state, *_ in rows if state in ("scheduled", "running")]
    await update.effective_message.reply_text("\n".join(lines), reply_markup=buttons(
        *[[c] for c in cancellable]) if cancellable else None)


async def unsubscribe_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The button under every promotional message: the client who pressed it opts out at once."""
    query = update.callback_query

    def work(session):
        client, _ = register_client(session, TelegramProfile(
            update.effective_user.id, update.effective_user.first_name or "", update.effective_user.last_name or "",
            update.effective_user.username, update.effective_user.language_code))
        set_consent(session, client, False, "button")
        return client.language

    language = await assistant(context).db(work)
    await query.answer(translate(CONSENT_TEXTS, "unsubscribed", language), show_alert=True)
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.info("could not remove the unsubscribe button: %s", exc)


__all__ = ["UNSUBSCRIBE_PREFIX", "broadcast_command", "broadcasts_command", "compose_button", "compose_input",
           "unsubscribe_button"]
