"""Delivers the CRM's outbox (order status changes, resolved complaints, desk notices and
reminders) every few seconds. The rows live in the CRM, so a restart resumes where it stopped;
each row is claimed before it is sent (crm/outbox.py), so two bot processes never both send it.

Outcomes: sent; `blocked` (Forbidden: the chat blocked the bot); `failed` with Telegram's reason
(BadRequest), logged and shown to staff in /queue; retried later (a network error or a 5xx, the
request never got an answer of Telegram's); `unconfirmed` (a timeout: it may have arrived, so it
is not sent twice); back to pending (RetryAfter). Texts are split under Telegram's limits."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, KeyboardButton, ReplyKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ContextTypes

from bot.render import CAPTION_LIMIT, keyboard, split_text
from bot.shared import assistant
from crm.handoffs import record_notice
from crm.meetings import ics
from crm.models import Meeting
from crm.outbox import (
    claim_due,
    mark_blocked,
    mark_failed,
    mark_part_sent,
    mark_sent,
    mark_unconfirmed,
    recover,
    release,
)

log = logging.getLogger(__name__)
INTERVAL = 2.0
BATCH = 50  # rows a round at most


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


async def _send(context, notification_id: int, chat_id: int, text: str, buttons, meeting_id: int | None,
                attachment: str | None, thread: int | None, parts_sent: int):
    """Send one outbox row; returns the message that carries its buttons (the last one). Parts of
    a long text are recorded as they go: a retry starts at the part that failed."""
    helper = assistant(context)
    parts = split_text(text) or ["…"]

    async def send_parts(upto: int) -> None:
        for i in range(parts_sent, upto):
            await context.bot.send_message(chat_id, parts[i], message_thread_id=thread)
            await helper.db(lambda s: mark_part_sent(s, notification_id, i + 1), persist=True)

    if attachment == "ics" and meeting_id is not None:
        invitation = await helper.db(lambda s: ics(s, s.get(Meeting, meeting_id)))
        caption = text.strip() if len(text.strip()) <= CAPTION_LIMIT else None
        if caption is None:  # too long for a caption: the text first, then the invitation
            await send_parts(len(parts))
        return await context.bot.send_document(
            chat_id, InputFile(invitation.encode(), filename="rendez-vous.ics"), caption=caption,
            reply_markup=markup(buttons), message_thread_id=thread)
    await send_parts(len(parts) - 1)
    return await context.bot.send_message(chat_id, parts[-1], reply_markup=markup(buttons), message_thread_id=thread)


async def deliver_outbox(context: ContextTypes.DEFAULT_TYPE) -> int:
    """Claim what is due, send it, record each outcome; returns how many were sent."""
    from bot.desk import to_desk

    helper = assistant(context)
    await helper.db(recover)

    def claim_one(session):
        # One row at a time, claimed just before its send: a crash loses no row it never sent.
        return [(n.id, n.chat_id, n.text, n.buttons, n.handoff_id, n.topic_client_id, n.meeting_id, n.attachment,
                 n.parts_sent or 0) for n in claim_due(session, limit=1)]

    sent = 0
    for _ in range(BATCH):
        claimed = await helper.db(claim_one)
        if not claimed:
            break
        notification_id, chat_id, text, buttons, handoff_id, topic_client_id, meeting_id, attachment, done_parts = \
            claimed[0]
        try:
            # A notice made while the client's message is being answered (a meeting's invitation)
            # waits for that answer: "C'est réservé… je vous envoie l'invitation", then the file.
            async with helper.chat_lock(chat_id):
                message = await to_desk(context, chat_id, topic_client_id, lambda thread: _send(
                    context, notification_id, chat_id, text, buttons, meeting_id, attachment, thread, done_parts))
        except RetryAfter:  # Telegram asks us to slow down: the row goes back for the next round
            await helper.db(lambda s: release(s, notification_id))
            return sent
        except Forbidden as exc:  # the chat blocked the bot, or the bot left it
            error = str(exc)
            log.warning("outbox %s to %s: blocked (%s)", notification_id, chat_id, error)
            await helper.db(lambda s: mark_blocked(s, notification_id, error))
            continue
        except BadRequest as exc:  # Telegram will never take this one as it is
            error = str(exc)
            log.error("outbox %s to %s: refused by Telegram: %s", notification_id, chat_id, error)
            await helper.db(lambda s: mark_failed(s, notification_id, error))
            continue
        except TimedOut as exc:  # the request left: it may have arrived, so it is never sent twice
            error = f"timed out: {exc}"
            log.warning("outbox %s to %s: %s (unconfirmed)", notification_id, chat_id, error)
            await helper.db(lambda s: mark_unconfirmed(s, notification_id, error))
            continue
        except (NetworkError, TelegramError) as exc:  # nothing reached Telegram, or a 5xx: again later
            error = str(exc)
            log.warning("outbox %s to %s: %s (will retry)", notification_id, chat_id, error)
            await helper.db(lambda s: mark_failed(s, notification_id, error, retry=True))
            continue

        def done(session):
            mark_sent(session, notification_id)
            if handoff_id is not None:  # a "take" notice: kept, to show later who took it
                record_notice(session, handoff_id, chat_id, message.message_id)

        await helper.db(done)
        sent += 1
    return sent
