"""Leads for managers in Telegram: /leads (by score), /lead N (the card, status buttons), and the
"propose a meeting" button of hot-lead notices. Managers and admins only; anyone else gets the
polite refusal and sees nothing."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bot.callbacks import callback_data, parse
from bot.shared import Context
from bot.staff import Member, staff_only
from crm.i18n import Texts
from crm.leads import LeadError, label, lead_card, lead_line, leads_by_score, set_lead_status
from crm.meetings import offer_slots
from crm.models import LEAD_STATUSES, Client, Lead

log = logging.getLogger(__name__)
MANAGER_STATUSES = ("contacted", "won", "lost")

TEXTS = Texts("bot.leads")



def lead_buttons(lead: Lead, language: str) -> InlineKeyboardMarkup:
    row = [InlineKeyboardButton(label(status, language).capitalize(), callback_data=callback_data("lead_status", lead.id, status))
           for status in MANAGER_STATUSES]
    return InlineKeyboardMarkup([row, [InlineKeyboardButton(TEXTS.t("propose", language),
                                                            callback_data=callback_data("meet", lead.client_id))]])


@staff_only()
async def leads_command(update: Update, context: Context, member: Member) -> None:
    language = member.language
    lines = await context.assistant.db(lambda s: [lead_line(s, lead, language) for lead in leads_by_score(s)])
    text = TEXTS.t("title", language) + "\n" + "\n".join(lines) if lines else TEXTS.t("none", language)
    await update.effective_message.reply_text(text)


@staff_only()
async def lead_command(update: Update, context: Context, member: Member) -> None:
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
        card, markup = await context.assistant.db(work)
    except LeadError:
        await update.effective_message.reply_text(TEXTS.t("unknown", language, id=lead_id))
        return
    await update.effective_message.reply_text(card, reply_markup=markup)


@staff_only()
async def status_button(update: Update, context: Context, member: Member) -> None:
    query, language = update.callback_query, member.language
    lead_id, status = parse("lead_status", query.data) or (None, None)
    if status not in MANAGER_STATUSES:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return

    def work(session):
        lead = set_lead_status(session, lead_id, status)
        return lead_card(session, lead, language), lead_buttons(lead, language)

    try:
        card, markup = await context.assistant.db(work)
    except LeadError:
        await query.answer(TEXTS.t("unknown", language, id=lead_id), show_alert=True)
        return
    await query.answer(TEXTS.t("status_set", language, id=lead_id, status=label(status, language)))
    try:
        await query.edit_message_text(card, reply_markup=markup)
    except TelegramError as exc:
        log.info("could not edit the lead card: %s", exc)


@staff_only()
async def meet_button(update: Update, context: Context, member: Member) -> None:
    """A manager proposes a meeting: the client receives the free slots as buttons."""
    query, language = update.callback_query, member.language
    [client_id] = parse("meet", query.data) or [None]
    if client_id is None:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return

    def work(session):
        client = session.get(Client, client_id)
        return (client.display_name, offer_slots(session, client)) if client else (None, 0)

    name, count = await context.assistant.db(work)
    if name is None:
        await query.answer(TEXTS.t("expired", language), show_alert=True)
        return
    await query.answer(TEXTS.t("proposed", language, count=count, client=name) if count else TEXTS.t("no_slot", language, client=name),
                       show_alert=True)
