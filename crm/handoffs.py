"""The managers' desk: handoffs opened, queued, taken (first manager wins), closed and rated.
All state lives here, so restarting the bot loses nothing and the relay continues."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm.company import company_profile
from crm.i18n import translate
from crm.models import (
    HANDOFF_REASONS,
    Client,
    ClientNote,
    Handoff,
    HandoffNotice,
    RelayedMessage,
    Staff,
    utcnow,
)
from crm.outbox import enqueue

OPEN = ("queued", "active")
TAKE_PREFIX = "take:"
HANDOFF_RATE_PREFIX = "hrate:"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

REASON_LABELS = {
    "request": {"fr": "demande un conseiller", "en": "asks for a manager"},
    "fallback": {"fr": "l'assistant n'a pas compris", "en": "the assistant did not understand"},
    "complaint": {"fr": "réclamation grave", "en": "severe complaint"},
    "lead": {"fr": "prospect chaud", "en": "hot lead"},
    "vip": {"fr": "client VIP", "en": "VIP client"},
}
TEXTS = {
    "notice": {
        "fr": "🔔 Conversation à prendre (n° {id}) : {client} — {reason}\n\n{card}",
        "en": "🔔 Conversation to take (no. {id}): {client} — {reason}\n\n{card}",
    },
    "take": {"fr": "Prendre", "en": "Take"},
    "reminder": {
        "fr": "⏰ La conversation n° {id} ({client}) attend un conseiller depuis {minutes} min. /take {id}",
        "en": "⏰ Conversation no. {id} ({client}) has been waiting for a manager for {minutes} min. /take {id}",
    },
}


CLIENT_TEXTS = {
    "opened": {
        "fr": "Je transmets votre demande à un conseiller : il vous répondra ici même. Écrivez-lui "
        "déjà votre question, elle lui sera transmise.",
        "en": "I am passing your request to a manager: they will answer you right here. You can write "
        "your question now, it will be passed on.",
    },
    "opened_closed_desk": {
        "fr": "Nos conseillers sont absents pour le moment. Votre demande est enregistrée : un "
        "conseiller vous répondra ici dès la réouverture, le {when:%d/%m à %H:%M}. Vous pouvez déjà "
        "laisser votre message.",
        "en": "Our managers are away right now. Your request is recorded: a manager will answer you "
        "here when we reopen, on {when:%d/%m at %H:%M}. You can leave your message now.",
    },
    "already": {
        "fr": "Votre demande est déjà transmise à un conseiller. Écrivez-lui ici, il vous répondra.",
        "en": "Your request is already with a manager. Write to them here, they will answer you.",
    },
    "fallback": {
        "fr": "Je n'arrive pas à vous comprendre, je préfère passer la main à un conseiller.",
        "en": "I cannot understand you, so I would rather hand you over to a manager.",
    },
    "queued_ack": {
        "fr": "Message transmis. Un conseiller va prendre votre demande en charge.",
        "en": "Message passed on. A manager will take up your request.",
    },
    "taken": {"fr": "{manager} (conseiller) prend le relais. Vous pouvez lui écrire ici.",
              "en": "{manager} (manager) is taking over. You can write to them here."},
    "taken_anonymous": {"fr": "Un conseiller prend le relais. Vous pouvez lui écrire ici.",
                        "en": "A manager is taking over. You can write to them here."},
    "closed": {
        "fr": "La conversation avec le conseiller est terminée ; je reprends la main. Comment "
        "évaluez-vous son aide, de 1 (pas satisfait) à 5 (très satisfait) ?",
        "en": "The conversation with the manager has ended; I am back. How would you rate their help, "
        "from 1 (not satisfied) to 5 (very satisfied)?",
    },
    "waiting": {
        "fr": "Nos conseillers sont tous occupés ; votre demande reste en tête de file et vous aurez "
        "une réponse ici. Merci de votre patience.",
        "en": "All our managers are busy; your request stays in the queue and you will get an answer "
        "here. Thank you for your patience.",
    },
}


def client_text(key: str, language: str, **values) -> str:
    return translate(CLIENT_TEXTS, key, language, **values)


def hand_over(session: Session, client: Client, reason: str, language: str, detail: str = "") -> str:
    """Open the client's handoff and say what happens next, in their language."""
    _, created = open_handoff(session, client, reason, detail)
    if not created:
        return client_text("already", language)
    when = next_opening()
    if when is not None:
        return client_text("opened_closed_desk", language, when=when)
    return client_text("opened", language)


class HandoffError(ValueError):
    pass


def desk_settings() -> dict:
    return company_profile().get("desk", {})


def open_handoff(session: Session, client: Client, reason: str, detail: str = "") -> tuple[Handoff, bool]:
    """Open (or return the already open) handoff of a client; managers get a "take" notice.
    Returns (handoff, created)."""
    if reason not in HANDOFF_REASONS:
        raise HandoffError(f"unknown reason {reason!r}")
    current = open_handoff_of(session, client)
    if current is not None:
        return current, False
    handoff = Handoff(client_id=client.id, reason=reason, detail=detail[:2000], status="queued")
    session.add(handoff)
    session.flush()
    notify_desk(session, handoff, client)
    return handoff, True


def notify_desk(session: Session, handoff: Handoff, client: Client) -> None:
    from crm.client_file import client_card

    managers = on_duty(session, client)
    for member in managers:
        lang = member.language
        text = translate(TEXTS, "notice", lang, id=handoff.id, client=client.display_name,
                         reason=translate(REASON_LABELS, handoff.reason, lang),
                         card=client_card(session, client, lang))
        note = enqueue(session, member.telegram_id, text,
                       [{"title": translate(TEXTS, "take", lang), "data": f"{TAKE_PREFIX}{handoff.id}"}])
        note.handoff_id = handoff.id


def on_duty(session: Session, client: Client) -> list[Staff]:
    return list(session.scalars(
        select(Staff).where(Staff.active.is_(True), Staff.role.in_(("manager", "admin"))).order_by(Staff.id)))


def open_handoff_of(session: Session, client: Client) -> Handoff | None:
    return session.scalar(select(Handoff).where(Handoff.client_id == client.id, Handoff.status.in_(OPEN))
                          .order_by(Handoff.id.desc()).limit(1))


def queue(session: Session) -> list[Handoff]:
    return list(session.scalars(select(Handoff).where(Handoff.status == "queued").order_by(Handoff.opened_at, Handoff.id)))


def take_handoff(session: Session, handoff_id: int, manager: Staff) -> Handoff:
    """The first manager to take it gets it: one conditional UPDATE decides between racers."""
    taken = session.execute(
        update(Handoff).where(Handoff.id == handoff_id, Handoff.status == "queued")
        .values(status="active", manager_id=manager.id, taken_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    handoff = session.get(Handoff, handoff_id)
    session.refresh(handoff) if handoff is not None else None
    if handoff is None:
        raise HandoffError(f"no conversation {handoff_id}")
    if taken != 1:
        raise HandoffError("taken" if handoff.status == "active" else "closed")
    return handoff


def active_handoffs_of(session: Session, manager: Staff) -> list[Handoff]:
    return list(session.scalars(select(Handoff).where(Handoff.manager_id == manager.id, Handoff.status == "active")
                                .order_by(Handoff.taken_at)))


def close_handoff(session: Session, handoff: Handoff) -> None:
    if handoff.status == "closed":
        raise HandoffError("already closed")
    handoff.status, handoff.closed_at = "closed", utcnow()


def rate_handoff(session: Session, telegram_id: int, data: str) -> Handoff | None:
    match = re.fullmatch(rf"{HANDOFF_RATE_PREFIX}(\d{{1,9}}):([1-5])", data or "")
    if not match:
        return None
    handoff = session.get(Handoff, int(match.group(1)))
    if handoff is None or handoff.status != "closed":
        return None
    if session.get(Client, handoff.client_id).telegram_id != telegram_id:
        return None
    handoff.satisfaction = int(match.group(2))
    return handoff


def record_notice(session: Session, handoff_id: int, chat_id: int, message_id: int) -> None:
    session.add(HandoffNotice(handoff_id=handoff_id, chat_id=chat_id, message_id=message_id))


def notices(session: Session, handoff_id: int) -> list[HandoffNotice]:
    return list(session.scalars(select(HandoffNotice).where(HandoffNotice.handoff_id == handoff_id)))


def record_relay(session: Session, handoff_id: int, staff_chat_id: int, staff_message_id: int) -> None:
    session.add(RelayedMessage(handoff_id=handoff_id, staff_chat_id=staff_chat_id, staff_message_id=staff_message_id))


def handoff_for_reply(session: Session, staff_chat_id: int, replied_message_id: int) -> Handoff | None:
    relayed = session.scalar(select(RelayedMessage).where(
        RelayedMessage.staff_chat_id == staff_chat_id, RelayedMessage.staff_message_id == replied_message_id))
    return session.get(Handoff, relayed.handoff_id) if relayed else None


def add_note(session: Session, client: Client, manager: Staff, text: str) -> ClientNote:
    text = text.strip()
    if not text:
        raise HandoffError("empty note")
    note = ClientNote(client_id=client.id, staff_id=manager.id, text=text[:4000])
    session.add(note)
    session.flush()
    return note


def next_opening(now: datetime | None = None) -> datetime | None:
    """None when the desk is open now; otherwise when it next opens (in the desk's time zone)."""
    settings = desk_settings()
    zone = ZoneInfo(settings.get("timezone", "Europe/Paris"))
    hours = settings.get("hours") or {}
    local = (now or utcnow()).astimezone(zone)
    for offset in range(0, 8):
        day = local + timedelta(days=offset)
        span = hours.get(DAYS[day.weekday()])
        if not span:
            continue
        start_s, end_s = span.split("-")
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight + timedelta(hours=int(start_s[:2]), minutes=int(start_s[3:]))
        end = midnight + timedelta(hours=int(end_s[:2]), minutes=int(end_s[3:]))  # "24:00" allowed
        if offset == 0 and start <= local < end:
            return None
        if start > local:
            return start
    return None  # no opening hours configured: always open


def waiting_too_long(session: Session, now: datetime | None = None) -> list[Handoff]:
    """Queued handoffs nobody took in time, whose client was not told yet."""
    minutes = int(desk_settings().get("unanswered_after_minutes", 10))
    limit = (now or utcnow()) - timedelta(minutes=minutes)
    return list(session.scalars(select(Handoff).where(
        Handoff.status == "queued", Handoff.client_told_waiting.is_(False), Handoff.opened_at <= limit)))
