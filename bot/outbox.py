"""Delivers the CRM's outbox (order status changes, resolved complaints, desk notices and
reminders) every few seconds. The rows live in the CRM, so a restart resumes where it stopped;
each row is claimed before it is sent (crm/outbox.py), so two bot processes never both send it.

Outcomes: sent; `blocked` (Forbidden: the chat blocked the bot); `failed` with Telegram's reason
(BadRequest), logged and shown to staff in /queue; retried later (a network error or a 5xx, the
request never got an answer of Telegram's); `unconfirmed` (a timeout: it may have arrived, so it
is not sent twice); back to pending (RetryAfter). Texts are split under Telegram's limits."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, KeyboardButton, ReplyKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.callbacks import render
from bot.render import CAPTION_LIMIT, keyboard, split_text
from bot.reports import monthly_pdf
from bot.shared import Context
from crm.handoffs import record_notice
from crm.meetings import ics
from crm.models import Meeting
from crm.outbox import (
    Outgoing,
    claim_next,
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
    pairs = [render(b) for b in buttons]
    if len(pairs) <= 5 and sum(len(title) for title, _ in pairs) <= 30:  # a score 1-5, Take / Propose...
        return InlineKeyboardMarkup([[InlineKeyboardButton(title, callback_data=data) for title, data in pairs]])
    return keyboard(pairs)  # a longer choice (meeting slots): readable rows


def _meeting_invitation(session: Session, row: Outgoing) -> tuple[str, bytes] | None:
    meeting = session.get(Meeting, row.meeting_id) if row.meeting_id is not None else None
    return ("rendez-vous.ics", ics(session, meeting).encode()) if meeting is not None else None


# What an outbox row may carry besides its text (its `attachment`, "kind" or "kind:argument"): the
# kind, and how its file is made from the CRM at send time, as (file name, content). A new kind is
# one more entry here.
ATTACHMENTS: dict[str, Callable[[Session, Outgoing], tuple[str, bytes] | None]] = {
    "ics": _meeting_invitation,
    "report": monthly_pdf,  # "report:2026-11": the monthly report's PDF (bot/reports.py)
}


async def _send(context, row: Outgoing, thread: int | None):
    """Send one outbox row; returns the message that carries its buttons (the last one). Parts of
    a long text are recorded as they go: a retry starts at the part that failed."""
    helper = context.assistant
    parts = split_text(row.text) or ["…"]

    async def send_parts(upto: int) -> None:
        for i in range(row.parts_sent, upto):
            await context.bot.send_message(row.chat_id, parts[i], message_thread_id=thread)
            await helper.db(lambda s: mark_part_sent(s, row.id, i + 1), persist=True)

    render_file = ATTACHMENTS.get((row.attachment or "").split(":")[0])
    attached = await helper.db(lambda s: render_file(s, row)) if render_file else None
    if attached is not None:
        filename, content = attached
        caption = row.text.strip() if len(row.text.strip()) <= CAPTION_LIMIT else None
        if caption is None:  # too long for a caption: the text first, then the file
            await send_parts(len(parts))
        return await context.bot.send_document(
            row.chat_id, InputFile(content, filename=filename), caption=caption,
            reply_markup=markup(row.buttons), message_thread_id=thread)
    await send_parts(len(parts) - 1)
    return await context.bot.send_message(row.chat_id, parts[-1], reply_markup=markup(row.buttons),
                                          message_thread_id=thread)


async def deliver_outbox(context: Context) -> int:
    """Claim what is due, send it, record each outcome; returns how many were sent."""
    from bot.desk import to_desk

    helper = context.assistant
    await helper.db(recover)

    sent = 0
    for _ in range(BATCH):
        row = await helper.db(claim_next)
        if row is None:
            break
        notification_id, chat_id, handoff_id = row.id, row.chat_id, row.handoff_id
        try:
            # A notice made while the client's message is being answered (a meeting's invitation)
            # waits for that answer: "C'est réservé… je vous envoie l'invitation", then the file.
            async with helper.chat_lock(chat_id):
                message = await to_desk(context, chat_id, row.topic_client_id, lambda thread: _send(context, row, thread))
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
