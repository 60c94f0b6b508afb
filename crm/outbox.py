"""The outbox: messages the CRM wants delivered on Telegram. The bot sends pending rows and
records each outcome (at least once: a crash between sending and recording may repeat one)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import Notification, Staff, utcnow

MAX_ATTEMPTS = 5


def enqueue(session: Session, chat_id: int, text: str, buttons: list[dict] | None = None) -> Notification:
    notification = Notification(chat_id=chat_id, text=text, buttons=buttons or None)
    session.add(notification)
    session.flush()
    return notification


def notify_managers(session: Session, texts: dict[str, str], buttons: list[dict] | None = None) -> int:
    """One message per active manager or admin, in their language. Returns how many."""
    managers = session.scalars(
        select(Staff).where(Staff.active.is_(True), Staff.role.in_(("manager", "admin")))
    ).all()
    for member in managers:
        enqueue(session, member.telegram_id, texts.get(member.language, texts["fr"]), buttons)
    return len(managers)


def pending(session: Session, limit: int = 50) -> list[Notification]:
    return list(session.scalars(
        select(Notification).where(Notification.status == "pending").order_by(Notification.id).limit(limit)
    ))


def mark_sent(session: Session, notification_id: int) -> None:
    row = session.get(Notification, notification_id)
    row.status, row.sent_at, row.attempts = "sent", utcnow(), row.attempts + 1


def mark_failed(session: Session, notification_id: int, error: str, *, permanent: bool = False) -> None:
    """A permanent failure (the client blocked the bot) is not retried; others are, a few times."""
    row = session.get(Notification, notification_id)
    row.attempts += 1
    row.last_error = error[:500]
    if permanent:
        row.status = "blocked"
    elif row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
