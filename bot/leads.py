"""Leads for managers in Telegram: /leads (by score), /lead N (the card, status buttons), and the
"propose a meeting" button of hot-lead notices. Managers and admins only; anyone else gets the
polite refusal and sees nothing."""

from __future__ import annotations

import logging
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.shared import assistant
from bot.staff import Member, staff_only
from crm.i18n import Texts, translate
from crm.leads import LeadError, label, lead_card, lead_line, leads_by_score, set_lead_status
from crm.meetings import offer_slots
from crm.models import LEAD_STATUSES, Client, Lead
from crm.staff import active_staff

log = logging.getLogger(__name__)
MEET_PREFIX = "meet:"
STATUS_PREFIX = "lstat:"
MANAGER_STATUSES = ("contacted", "won", "lost")

TEXTS = Texts("bot.leads")



def lead_buttons(lead: Lead, language: str) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(label(status, language).capitalize(), callback_data=f"{STATUS_PREFIX}{lead.id}:{status}")
           for status in MANAGER_STATUSES]
    return InlineKeyboardMarkup([row, [InlineKeyboardButton(TEXTS.t("propose", language),
                                                            callback_data=f"{MEET_PREFIX}{lead.client_id}")]])


@staff_only()
async def leads_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
    language = member.language
    lines = await assistant(context).db(lambda s: [lead_line(s, lead, language) for lead in leads_by_score(s)])
    text = TEXTS.t("title", language) + "\n" + "\n".join(lines) if lines else TEXTS.t("none", language)
    await update.effective_message.reply_text(text)


@staff_only()
async def lead_command(update: Update, context: ContextTypes.DEFAULT_TYPE, member: Member) -> None:
    language = member.language
    args = context.args or []
    status = args[1].lower() if len(args) == 2 else None
    if not args or not args[0].isdigit() or len(args) > 2 or (status is not None and status not in LEAD_STATUSES):
        await update.effective_message.reply_text(TEXTS.t("usage", language, statuses=", ".join(LEAD_STATUSES)))
        return
    lead_id = int(args[0])

    def work(session):
        lead = set_lead_status(session, lead_id, status) if status else session.get(Lead, lead_id)
        if lead is None:
            raise LeadError("unknown", id=lead_id)
        return lead_card(session, lead, language), lead_buttons(lead, language)

    try:
        card, markup = await assistant(context).db(work)
    except LeadError:
        await update.effective_message.reply_text(TEXTS.t("unknown", language, id=lead_id))
        return
    await update.effective_message.reply_text(card, reply_markup=markup)


async def _manager_language(update: Update, context) -> str | None:
    """The language of the manager or admin who pressed; None for anyone else."""
    def work(session):
        member = active_staff(session, update.effective_user.id)
        return member.language if member and member.role in ("manager", "admin") else None

    return await assistant(context).db(work)


async def status_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    language = await _manager_language(update, context)
    match = re.fullmatch(rf"{STATUS_PREFIX}(\d{{1,9}}):({'|'.join(MANAGER_STATUSES)})", query.data or "")
    if language is None or match is None:
        await query.answer(TEXTS.t("expired", language or "fr"), show_alert=True)
        return
    lead_id, status = int(match.group(1)), match.group(2)

    def work(session):
        lead = set_lead_status(session, lead_id, status)
        return lead_card(session, lead, language), lead_buttons(lead, language)

    try:
        card, markup = await assistant(context).db(work)
    except LeadError:
        await query.answer(TEXTS.t("unknown", language, id=lead_id), show_alert=True)
        return
    await query.answer(TEXTS.t("status_set", language, id=lead_id, status=label(status, language)))
    try:
        await query.edit_message_text(card, reply_markup=markup)
    except TelegramError as exc:
        log.info("could not edit the lead card: %s", exc)


async def meet_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A manager proposes a meeting: the client receives the free slots as buttons."""
    query = update.callback_query
    language = await _manager_language(update, context)
    match = re.fullmatch(rf"{MEET_PREFIX}(\d{{1,9}})", query.data or "")
    if language is None or match is None:
        await query.answer(TEXTS.t("expired", language or "fr"), show_alert=True)
        return

    def work(session):
        client = session.get(Client, int(match.group(1)))
        return (client.display_name, offer_slots(session, client)) if client else (None, 0)

    name, count = await assistant(context).db(work)
    if name is None:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    await query.answer(TEXTS.t("proposed", language, count=count, client=name) if count else TEXTS.t("no_slot", language, client=name),
                       show_alert=True)
