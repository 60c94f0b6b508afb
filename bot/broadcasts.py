"""Broadcasts in Telegram, for marketers and admins: /broadcast composes one step by step (French
text or photo, English text, segment, preview with the exact number of recipients, now or at a
date, confirm), /broadcasts lists them and cancels one. Clients' "unsubscribe" button too.
The draft lives in the CRM (broadcasts.compose_step), so a restart does not lose it."""

from __future__ import annotations

import logging
from dataclasses import astuple
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.callbacks import callback_data, parse
from bot.shared import Context
from bot.staff import Member, staff_only
from crm import broadcasts as crm_broadcasts
from crm import clock, desk_hours
from crm.clients import TelegramProfile, register_client
from crm.consent import set_consent
from crm.consent import TEXTS as CONSENT_TEXTS
from crm.i18n import Texts
from crm.staff import active_staff

log = logging.getLogger(__name__)
ROLES = ("marketer", "admin")

TEXTS = Texts("bot.broadcasts")
STATES = Texts("bot.broadcasts.state")



def buttons(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(title, callback_data=data) for title, data in row]
                                 for row in rows])


@staff_only(ROLES)
async def broadcast_command(update: Update, context: Context, member: Member) -> None:
    await context.assistant.db(lambda s: crm_broadcasts.start_draft(s, member.id))  # /broadcast starts afresh
    await update.effective_message.reply_text(TEXTS.t("ask_fr", member.language))


async def compose_input(update: Update, context: Context) -> bool:
    """A marketer's message while one of their drafts waits for text, a segment or a date.
    True when it was taken as such (then nothing else handles it)."""
    message, user = update.effective_message, update.effective_user

    def find(session):
        member = active_staff(session, user.id)
        if member is None or member.role not in ROLES:
            return None
        draft = crm_broadcasts.waiting_draft(session, member.id)
        return (draft, member.language) if draft else None

    found = await context.assistant.db(find)
    if found is None:
        return False
    (draft_id, step), language = (found[0].id, found[0].step), found[1]
    if step in ("text_fr", "text_en"):
        text = message.text_html if message.text else (message.caption_html if message.caption else None)
        photo = message.photo[-1].file_id if message.photo else None
        if not text:
            await message.reply_text(TEXTS.t("needs_text", language))
            return True

        try:
            await context.assistant.db(lambda s: crm_broadcasts.save_text(s, draft_id, step, text, photo))
        except crm_broadcasts.BroadcastError as exc:
            await message.reply_text(TEXTS.t("error", language, error=exc.text(language)))
            return True
        if step == "text_fr":
            await message.reply_text(TEXTS.t("ask_en", language), reply_markup=buttons([(TEXTS.t("same", language), callback_data("compose", draft_id, "same"))]))
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
        [(TEXTS.t("everyone", language), callback_data("compose", draft_id, "seg:all")), (TEXTS.t("vip", language), callback_data("compose", draft_id, "seg:vip"))],
        [(TEXTS.t("french", language), callback_data("compose", draft_id, "seg:fr")), (TEXTS.t("english", language), callback_data("compose", draft_id, "seg:en"))]))


async def _set_segment(update: Update, context, draft_id: int, spec: str, language: str) -> None:
    """Keep the segment, then send the preview (as a client would see it) and the exact count."""
    chat_id = update.effective_chat.id

    try:
        text, photo, count = astuple(await context.assistant.db(
            lambda s: crm_broadcasts.choose_segment(s, draft_id, spec, language)))
    except crm_broadcasts.BroadcastError as exc:
        await context.bot.send_message(chat_id, TEXTS.t("error", language, error=exc.text(language)))
        return
    try:
        if photo:
            await context.bot.send_photo(chat_id, photo, caption=text, parse_mode=ParseMode.HTML)
        else:
            await context.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
    except TelegramError as exc:
        await context.assistant.db(lambda s: crm_broadcasts.set_step(s, draft_id, "text_fr"))
        await context.bot.send_message(chat_id, TEXTS.t("preview_failed", language, error=exc))
        return
    await context.bot.send_message(chat_id, TEXTS.t("preview", language, count=count, segment=spec.strip() or "all"),
                                   reply_markup=buttons([(TEXTS.t("now", language), callback_data("compose", draft_id, "now")),
                                                         (TEXTS.t("later", language), callback_data("compose", draft_id, "later"))],
                                                        [(TEXTS.t("drop", language), callback_data("compose", draft_id, "drop"))]))


async def _confirm(update: Update, context, draft_id: int, language: str, when: datetime | None) -> None:
    count = await context.assistant.db(lambda s: crm_broadcasts.choose_time(s, draft_id, when))
    text = TEXTS.t("confirm_now", language, count=count) if when is None else TEXTS.t(
        "confirm_at", language, count=count, when=when.astimezone(desk_hours.zone()))
    await context.bot.send_message(update.effective_chat.id, text, reply_markup=buttons(
        [(TEXTS.t("confirm", language), callback_data("compose", draft_id, "ok")), (TEXTS.t("drop", language), callback_data("compose", draft_id, "drop"))]))


@staff_only(ROLES)
async def compose_button(update: Update, context: Context, member: Member) -> None:
    """A composer's button, honoured only for the marketer who owns the draft, at its step
    (crm.broadcasts.accepts)."""
    query, language = update.callback_query, member.language
    draft_id, choice = parse("compose", query.data) or (None, "")
    if draft_id is None or not await context.assistant.db(
            lambda s: crm_broadcasts.accepts(s, draft_id, member.id, choice)):
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    await query.answer()
    message = query.message
    if choice == "same":
        await context.assistant.db(lambda s: crm_broadcasts.set_step(s, draft_id, "segment"))
        await _ask_segment(message, draft_id, language)
    elif choice in crm_broadcasts.SEGMENT_CHOICES:
        await _set_segment(update, context, draft_id, crm_broadcasts.SEGMENT_CHOICES[choice], language)
    elif choice == "now":
        await _confirm(update, context, draft_id, language, None)
    elif choice == "later":
        await context.assistant.db(lambda s: crm_broadcasts.set_step(s, draft_id, "when"))
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("ask_when", language, zone=desk_hours.zone().key))
    elif choice == "ok":
        await context.assistant.db(lambda s: crm_broadcasts.confirm(s, draft_id))
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("scheduled", language, id=draft_id))
    elif choice == "drop":
        await context.assistant.db(lambda s: crm_broadcasts.drop(s, draft_id))
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("discarded", language))
    elif choice == "cancel":
        try:
            await context.assistant.db(lambda s: crm_broadcasts.cancel(s, draft_id))
        except crm_broadcasts.BroadcastError as exc:
            await context.bot.send_message(update.effective_chat.id, TEXTS.t("error", language, error=exc.text(language)))
            return
        await context.bot.send_message(update.effective_chat.id, TEXTS.t("cancelled", language, id=draft_id))


@staff_only(ROLES)
async def broadcasts_command(update: Update, context: Context, member: Member) -> None:
    language = member.language

    def work(session):
        rows = []
        for b in crm_broadcasts.listing(session):
            numbers = crm_broadcasts.counts(session, b.id)
            when = clock.aware(b.started_at or b.scheduled_at or b.created_at).astimezone(desk_hours.zone())
            rows.append((b.id, b.state, when, numbers["sent"], numbers["total"], b.segment or "all"))
        return rows

    rows = await context.assistant.db(work)
    if not rows:
        await update.effective_message.reply_text(TEXTS.t("list_empty", language))
        return
    lines = [TEXTS.t("list", language)] + [
        TEXTS.t("line", language, id=i, state=STATES.t(state, language), when=f"{when:%d/%m %H:%M}", sent=sent,
          total=total, segment=segment) for i, state, when, sent, total, segment in rows]
    cancellable = [(TEXTS.t("cancel_button", language, id=i), callback_data("compose", i, "cancel"))
                   for i, state, *_ in rows if state in ("scheduled", "running")]
    await update.effective_message.reply_text("\n".join(lines), reply_markup=buttons(
        *[[c] for c in cancellable]) if cancellable else None)


async def unsubscribe_button(update: Update, context: Context) -> None:
    """The button under every promotional message: the client who pressed it opts out at once."""
    query = update.callback_query

    def work(session):
        client, _ = register_client(session, TelegramProfile(
            update.effective_user.id, update.effective_user.first_name or "", update.effective_user.last_name or "",
            update.effective_user.username, update.effective_user.language_code))
        set_consent(session, client, False, "button")
        return client.language

    language = await context.assistant.db(work)
    await query.answer(CONSENT_TEXTS.t("unsubscribed", language), show_alert=True)
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.info("could not remove the unsubscribe button: %s", exc)


__all__ = ["broadcast_command", "broadcasts_command", "compose_button", "compose_input",
           "unsubscribe_button"]
