"""The outbox: messages the CRM wants delivered on Telegram. The bot sends pending rows and
records each outcome (at least once: a crash between sending and recording may repeat one)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm import clock
from crm.models import Notification
from crm.settings import staff_chat
from crm.staff import managers_on_duty

MAX_ATTEMPTS = 5


def enqueue(session: Session, chat_id: int, text: str, buttons: list[dict] | None = None, *,
            handoff_id: int | None = None, topic_client_id: int | None = None, meeting_id: int | None = None,
            attachment: str | None = None, not_before: datetime | None = None) -> Notification:
    """Buttons: [{"title", "data"}] inline buttons, or [{"title", "request_contact": True}] a
    keyboard button sharing the client's phone number. `topic_client_id`: the message goes into
    that client's topic of the staff forum group `chat_id`. `handoff_id`: a "take" notice.
    `meeting_id` + `attachment="ics"`: the meeting's invitation is attached (the text is its
    caption). `not_before`: kept until then (reminders)."""
    notification = Notification(chat_id=chat_id, text=text, buttons=buttons or None, handoff_id=handoff_id,
                                topic_client_id=topic_client_id, meeting_id=meeting_id, attachment=attachment,
                                not_before=not_before)
    session.add(notification)
    session.flush()
    return notification


def notify_managers(session: Session, texts: dict[str, str], client_id: int | None = None) -> int:
    """An alert to the desk, in each reader's language: into the client's topic of the staff group
    (STAFF_CHAT_ID) when there is one, else to every manager on duty. Returns how many messages."""
    group = staff_chat()
    if group is not None:
        enqueue(session, group[0], texts.get(group[1], texts["fr"]), topic_client_id=client_id)
        return 1
    managers = managers_on_duty(session)
    for member in managers:
        enqueue(session, member.telegram_id, texts.get(member.language, texts["fr"]))
    return len(managers)


def pending(session: Session, limit: int = 50, now: datetime | None = None) -> list[Notification]:
    """What is due: pending, and without a `not_before` in the future."""
    return list(session.scalars(
        select(Notification).where(Notification.status == "pending", or_(
            Notification.not_before.is_(None), Notification.not_before <= (now or clock.now())))
        .order_by(Notification.id).limit(limit)
    ))


def mark_sent(session: Session, notification_id: int) -> None:
    row = session.get(Notification, notification_id)
    row.status, row.sent_at, row.attempts = "sent", clock.now(), row.attempts + 1


def mark_failed(session: Session, notification_id: int, error: str, *, permanent: bool = False) -> None:
    """A permanent failure (the client blocked the bot) is not retried; others are, a few times."""
    row = session.get(Notification, notification_id)
    row.attempts += 1
    row.last_error = error[:500]
    if permanent:
        row.status = "blocked"
    elif row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
