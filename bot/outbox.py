"""Delivers the CRM's outbox (order status changes, resolved complaints, desk notices and
reminders) every few seconds. The rows live in the CRM, so a restart resumes where it stopped."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, KeyboardButton, ReplyKeyboardMarkup
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import ContextTypes

from bot.render import CAPTION_LIMIT, keyboard
from bot.shared import assistant
from crm.handoffs import record_notice
from crm.meetings import ics
from crm.models import Meeting
from crm.outbox import mark_failed, mark_sent, pending

log = logging.getLogger(__name__)
INTERVAL = 2.0


def markup(buttons: list[dict] | None) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
    if not buttons:
        return None
    if any(b.get("request_contact") for b in buttons):
        return ReplyKeyboardMarkup([[KeyboardButton(b["title"], request_contact=True) for b in buttons]],
                                   resize_keyboard=True, one_time_keyboard=True)
    pairs = [(b["title"], b["data"]) for b in buttons]
    if len(pairs) <= 5 and sum(len(title) for title, _ in pairs) <= 30:  # a score 1-5, Take / Propose...
        return InlineKeyboardMarkup([[InlineKeyboardButton(title, callback_data=data) for title, data in pairs]])
    return keyboard(pairs)  # a longer choice (meeting slots): readable rows


async def _send(context, chat_id: int, text: str, buttons, meeting_id: int | None, attachment: str | None,
                thread: int | None):
    if attachment == "ics" and meeting_id is not None:
        invitation = await assistant(context).db(lambda s: ics(s, s.get(Meeting, meeting_id)))
        return await context.bot.send_document(
            chat_id, InputFile(invitation.encode(), filename="rendez-vous.ics"), caption=text[:CAPTION_LIMIT],
            reply_markup=markup(buttons), message_thread_id=thread)
    return await context.bot.send_message(chat_id, text, reply_markup=markup(buttons), message_thread_id=thread)


async def deliver_outbox(context: ContextTypes.DEFAULT_TYPE) -> int:
    """Send what is pending; returns how many were sent."""
    from bot.desk import to_desk

    helper = assistant(context)
    rows = await helper.db(lambda s: [(n.id, n.chat_id, n.text, n.buttons, n.handoff_id, n.topic_client_id,
                                       n.meeting_id, n.attachment) for n in pending(s)])
    sent = 0
    for notification_id, chat_id, text, buttons, handoff_id, topic_client_id, meeting_id, attachment in rows:
        try:
            message = await to_desk(context, chat_id, topic_client_id, lambda thread: _send(
                context, chat_id, text, buttons, meeting_id, attachment, thread))
        except RetryAfter:
            return sent  # Telegram asks us to slow down: the rest waits for the next round
        except (Forbidden, BadRequest) as exc:  # blocked the bot, or the chat does not exist
            error = str(exc)
            await helper.db(lambda s: mark_failed(s, notification_id, error, permanent=True))
            continue
        except TelegramError as exc:
            log.warning("outbox %s: %s", notification_id, exc)
            error = str(exc)
            await helper.db(lambda s: mark_failed(s, notification_id, error))
            continue

        def done(session):
            mark_sent(session, notification_id)
            if handoff_id is not None:  # a "take" notice: kept, to show later who took it
                record_notice(session, handoff_id, chat_id, message.message_id)

        await helper.db(done)
        sent += 1
    return sent
