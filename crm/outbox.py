"""The outbox: messages the CRM wants delivered on Telegram. A sender claims each row before it
sends it (pending -> sending, a conditional UPDATE that only one process wins), then records the
outcome. So two bot processes (replicas, or an old and a new one overlapping during a restart)
never send a row twice; a sender that dies mid-send leaves its row `unconfirmed`, not resent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from crm import clock
from crm.models import Notification
from crm.settings import current as settings
from crm.staff import managers_on_duty

MAX_ATTEMPTS = 5


def button(title: str, action: str, *args) -> dict:
    """An inline button of an outbox message, by what pressing it does (`action`, with `args`):
    the bot writes it as Telegram's callback data (bot/callbacks.py)."""
    return {"title": title, "action": action, "args": list(args)}


def enqueue(session: Session, chat_id: int, text: str, buttons: list[dict] | None = None, *,
            handoff_id: int | None = None, topic_client_id: int | None = None, meeting_id: int | None = None,
            attachment: str | None = None, not_before: datetime | None = None,
            client_id: int | None = None) -> Notification:
    """Buttons: inline buttons made by `button`, or [{"title", "request_contact": True}] a
    keyboard button sharing the client's phone number. `topic_client_id`: the message goes into
    that client's topic of the staff forum group `chat_id`. `handoff_id`: a "take" notice.
    `meeting_id` + `attachment="ics"`: the meeting's invitation is attached (the text is its
    caption). `not_before`: kept until then (reminders). `client_id`: the client the message is to
    or about (their data export lists it, their erasure deletes it); the topic's client by default."""
    notification = Notification(chat_id=chat_id, text=text, buttons=buttons or None, handoff_id=handoff_id,
                                topic_client_id=topic_client_id, meeting_id=meeting_id, attachment=attachment,
                                not_before=not_before, client_id=client_id or topic_client_id)
    session.add(notification)
    session.flush()
    return notification


def notify_managers(session: Session, texts: dict[str, str], client_id: int | None = None) -> int:
    """An alert to the desk, in each reader's language: into the client's topic of the staff group
    (STAFF_CHAT_ID) when there is one, else to every manager on duty. Returns how many messages."""
    group = settings().staff_chat
    if group is not None:
        enqueue(session, group[0], texts.get(group[1], texts["fr"]), topic_client_id=client_id)
        return 1
    managers = managers_on_duty(session)
    for member in managers:
        enqueue(session, member.telegram_id, texts.get(member.language, texts["fr"]), client_id=client_id)
    return len(managers)


def pending(session: Session, limit: int = 50, now: datetime | None = None) -> list[Notification]:
    """What is due: pending, and without a `not_before` in the future."""
    return list(session.scalars(
        select(Notification).where(Notification.status == "pending", or_(
            Notification.not_before.is_(None), Notification.not_before <= (now or clock.now())))
        .order_by(Notification.id).limit(limit)
    ))


def claim_due(session: Session, limit: int = 50, now: datetime | None = None) -> list[Notification]:
    """Claim what is due for this sender: each row moves pending -> sending only if it is still
    pending, so of two senders exactly one gets it. The caller commits before sending."""
    now = now or clock.now()
    claimed = []
    for row in pending(session, limit, now):
        won = session.execute(update(Notification).where(Notification.id == row.id, Notification.status == "pending")
                              .values(status="sending", claimed_at=now)
                              .execution_options(synchronize_session=False)).rowcount
        if won == 1:
            session.refresh(row)
            claimed.append(row)
    return claimed


@dataclass(frozen=True)
class Outgoing:
    """One claimed outbox row, as its sender needs it (read in the claim's unit of work)."""

    id: int
    chat_id: int
    text: str
    buttons: list[dict] | None
    handoff_id: int | None
    topic_client_id: int | None
    meeting_id: int | None
    attachment: str | None
    parts_sent: int


def claim_next(session: Session, now: datetime | None = None) -> Outgoing | None:
    """The next due row, claimed for this sender (one at a time: a crash loses no row it never
    sent), or None when nothing is due."""
    for n in claim_due(session, limit=1, now=now):
        return Outgoing(n.id, n.chat_id, n.text, n.buttons, n.handoff_id, n.topic_client_id, n.meeting_id,
                        n.attachment, n.parts_sent or 0)
    return None


def _finish(session: Session, notification_id: int, **values) -> bool:
    """Record an outcome of a row this sender claimed (still `sending`)."""
    return session.execute(update(Notification).where(Notification.id == notification_id,
                                                      Notification.status == "sending")
                           .values(attempts=Notification.attempts + 1, **values)
                           .execution_options(synchronize_session=False)).rowcount == 1


def mark_part_sent(session: Session, notification_id: int, parts: int) -> None:
    session.execute(update(Notification).where(Notification.id == notification_id).values(parts_sent=parts)
                    .execution_options(synchronize_session=False))


def mark_sent(session: Session, notification_id: int) -> None:
    _finish(session, notification_id, status="sent", sent_at=clock.now())


def mark_blocked(session: Session, notification_id: int, error: str) -> None:
    """Forbidden: the client blocked the bot (or left the chat). Not retried."""
    _finish(session, notification_id, status="blocked", last_error=error[:500])


def mark_failed(session: Session, notification_id: int, error: str, *, retry: bool = False,
                now: datetime | None = None) -> None:
    """Telegram refused the message (BadRequest: too long, a chat that does not exist...): failed
    for good, with the reason, shown to staff. With `retry` (a network error or a 5xx, nothing
    reached Telegram), back to pending after 2, 4, 8... seconds, MAX_ATTEMPTS times at most."""
    attempts = (session.scalar(select(Notification.attempts).where(Notification.id == notification_id)) or 0) + 1
    if retry and attempts < MAX_ATTEMPTS:
        _finish(session, notification_id, status="pending", last_error=error[:500], claimed_at=None,
                not_before=(now or clock.now()) + timedelta(seconds=min(2 ** attempts, 60)))
        return
    _finish(session, notification_id, status="failed", last_error=error[:500])


def mark_unconfirmed(session: Session, notification_id: int, error: str) -> None:
    """A timeout after the request left: Telegram may have delivered it. Not sent again."""
    _finish(session, notification_id, status="unconfirmed", last_error=error[:500])


def release(session: Session, notification_id: int) -> None:
    """Telegram asked us to slow down (RetryAfter): the row goes back, unsent and uncounted."""
    session.execute(update(Notification).where(Notification.id == notification_id, Notification.status == "sending")
                    .values(status="pending", claimed_at=None).execution_options(synchronize_session=False))


def stale_claim() -> timedelta:
    """A send never takes this long (OUTBOX_CLAIM_TIMEOUT, 60 s): an older claim died with its sender."""
    return settings().claim_timeout("outbox")


def recover(session: Session, now: datetime | None = None) -> int:
    """Rows claimed by a sender that died: `unconfirmed` (the message may have reached Telegram;
    sending it again could double it). Time-based, so that live senders never recover each other's."""
    limit = (now or clock.now()) - stale_claim()
    return session.execute(update(Notification).where(Notification.status == "sending",
                                                      Notification.claimed_at < limit)
                           .values(status="unconfirmed", last_error="the sender stopped while sending")
                           .execution_options(synchronize_session=False)).rowcount


def failures(session: Session, limit: int = 10) -> list[Notification]:
    """The latest messages that could not be delivered, for staff (/queue)."""
    return list(session.scalars(select(Notification).where(Notification.status.in_(("failed", "unconfirmed")))
                                .order_by(Notification.id.desc()).limit(limit)))
