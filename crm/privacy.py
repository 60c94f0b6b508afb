"""Clients' personal data (RGPD / GDPR): the copy of everything held about a client (access,
article 15; portability, article 20) and its erasure (article 17).

Export: one JSON document, every category under its own key, dates in ISO 8601 UTC; the layout
is documented in the README ("Personal data") and versioned (`format`).

Erasure: orders and their lines stay for accounting (French commercial law keeps them 10 years),
attached to the client's row made pseudonymous (no name, username, phone, e-mail, company;
`telegram_id` replaced by minus the row's id, which no Telegram user has; `erased_at` set), their
delivery addresses blanked. Everything else about the client is deleted: messages, notes, leads,
meetings, tags, complaints, handoffs with their notices and relayed messages, staff-group topics,
buttons, received updates, every outbox message to or about them, consents but the proof that
promotions were withdrawn, promotional deliveries not sent yet (those sent stay as counts, attached
to the pseudonymous row). Rasa's tracker store is emptied by the caller (crm/trackers.py), which
knows where it is. Each erasure writes one `erasures` row: when, by whom, and how many rows of
each category, nothing of what was erased. A later message from the same Telegram user finds no
client and starts a new, empty one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crm import clock, trackers
from crm.company import company_profile
from crm.db import unit_of_work
from crm.i18n import Refusal, Texts
from crm.outbox import enqueue
from crm.models import (
    Broadcast,
    BroadcastDelivery,
    ButtonPayload,
    Client,
    ClientNote,
    ClientTag,
    Complaint,
    Consent,
    ConversationMessage,
    Erasure,
    Handoff,
    HandoffNotice,
    InboundUpdate,
    Lead,
    LeadEvent,
    Meeting,
    Notification,
    Order,
    OrderLine,
    Product,
    RelayedMessage,
    Staff,
    StaffTopic,
)

EXPORT_FORMAT = "relations-clients/client-export/1"

# How each table of the CRM is covered by the export, the erasure and retention (crm/retention.py):
# a new table must say it here (tests/test_privacy.py checks that every table does).
COVERAGE = {
    "clients": "exported (profile); erased: the row made pseudonymous, kept for the orders; retention: "
               "silent clients erased",
    "conversation_messages": "exported; erased; retention: messages_months",
    "orders": "exported; kept by an erasure (accounting, 10 years), the delivery address blanked",
    "order_lines": "exported with their orders; nothing personal of their own",
    "complaints": "exported; erased",
    "consents": "exported; erased but the proof of withdrawal",
    "handoffs": "exported; erased; retention: closed ones' request texts after messages_months",
    "handoff_notices": "erased with the handoffs (ids only)",
    "relayed_messages": "erased with the handoffs (ids only)",
    "staff_topics": "erased (ids only)",
    "client_notes": "exported (with their author); erased",
    "leads": "exported; erased; retention: leads never won after leads_years",
    "lead_events": "exported with their leads (status history); erased and purged with them",
    "meetings": "exported; erased",
    "client_tags": "exported; erased",
    "notifications": "exported (to or about the client); erased; retention: sent ones after notifications_months",
    "button_payloads": "erased (by chat); live 30 days",
    "inbound_updates": "erased (by chat); live 1 day once handled",
    "broadcast_deliveries": "exported; pending ones cancelled by an erasure, the others left on the pseudonymous row",
    "review_items": "masked texts with no link to a client; retention: pending ones after messages_months",
    "staff": "the company's staff, no client data",
    "products": "the catalogue, no personal data",
    "promotions": "the catalogue's promotions, no personal data",
    "broadcasts": "the company's promotions, no personal data",
    "announcements": "keys of staff alerts, no personal data",
    "retrainings": "model figures, no personal data",
    "erasures": "the log of erasures: counts, no erased data",
    "purges": "the log of retention runs: counts",
}


class PrivacyError(Refusal):
    """`unknown` (no such client), `erased` (already erased), `store_down` (Rasa's tracker store
    cannot be reached: nothing was erased)."""

    texts = Texts("privacy.error")


def _when(value: datetime | None) -> str | None:
    return clock.aware(value).isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return str(value) if value is not None else None


def _staff_name(session: Session, staff_id: int | None) -> str | None:
    return session.scalar(select(Staff.name).where(Staff.id == staff_id)) if staff_id is not None else None


def find_client(session: Session, client_id: int) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise PrivacyError("unknown", id=client_id)
    if client.erased_at is not None:
        raise PrivacyError("erased", id=client_id)
    return client


def export_client(session: Session, client: Client, now: datetime | None = None) -> dict:
    """Everything held about `client`, as one JSON-ready document (see the README for its layout)."""
    cid = client.id
    rows = lambda model, *order: session.scalars(select(model).where(model.client_id == cid)  # noqa: E731
                                                 .order_by(*(order or (model.id,)))).all()
    orders, order_numbers = [], {}
    for order in rows(Order):
        order_numbers[order.id] = order.number
        lines = session.execute(select(OrderLine, Product.sku, Product.name).join(Product)
                                .where(OrderLine.order_id == order.id).order_by(OrderLine.id)).all()
        orders.append(dict(number=order.number, status=order.status, delivery_address=order.delivery_address,
                           total=_money(order.total), currency=order.currency, created_at=_when(order.created_at),
                           updated_at=_when(order.updated_at),
                           lines=[dict(sku=sku, product=name, quantity=line.quantity,
                                       unit_price=_money(line.unit_price)) for line, sku, name in lines]))
    notifications = session.scalars(select(Notification).where(
        or_(Notification.chat_id == client.telegram_id, Notification.client_id == cid))
        .order_by(Notification.id)).all()
    deliveries = session.execute(select(BroadcastDelivery, Broadcast.created_at).join(Broadcast)
                                 .where(BroadcastDelivery.client_id == cid).order_by(BroadcastDelivery.id)).all()
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _when(now or clock.now()),
        "controller": company_profile().get("name", ""),
        "profile": dict(
            client_number=cid, telegram_id=client.telegram_id, first_name=client.first_name,
            last_name=client.last_name, username=client.username, language=client.language, phone=client.phone,
            email=client.email, company=client.company, vip=client.vip,
            account_manager=_staff_name(session, client.account_manager_id),
            blocked_the_bot=client.unreachable, first_seen=_when(client.first_seen),
            last_seen=_when(client.last_seen)),
        "consents": [dict(granted=c.granted, source=c.source, at=_when(c.created_at))
                     for c in rows(Consent, Consent.created_at, Consent.id)],
        "orders": orders,
        "complaints": [dict(number=c.number, order=order_numbers.get(c.order_id), category=c.category,
                            description=c.description, severity=c.severity, status=c.status,
                            resolution=c.resolution, satisfaction=c.satisfaction, created_at=_when(c.created_at),
                            resolved_at=_when(c.resolved_at)) for c in rows(Complaint)],
        "leads": [dict(company=lead.company, sector=lead.sector, size=lead.size, need=lead.need,
                       budget_eur=lead.budget_eur, budget_text=lead.budget_text, timeline=lead.timeline,
                       role=lead.role, phone=lead.phone, email=lead.email, score=lead.score,
                       score_details=lead.score_details, status=lead.status, created_at=_when(lead.created_at),
                       updated_at=_when(lead.updated_at),
                       history=[dict(status=e.status, at=_when(e.at)) for e in session.scalars(
                           select(LeadEvent).where(LeadEvent.lead_id == lead.id).order_by(LeadEvent.at, LeadEvent.id))])
                  for lead in rows(Lead)],
        "meetings": [dict(starts_at=_when(m.starts_at), ends_at=_when(m.ends_at), status=m.status,
                          manager=_staff_name(session, m.manager_id), booked_at=_when(m.created_at),
                          cancelled_at=_when(m.cancelled_at)) for m in rows(Meeting, Meeting.starts_at)],
        "messages": [dict(direction="from_client" if m.direction == "in" else "to_client", kind=m.kind,
                          text=m.text, at=_when(m.created_at)) for m in rows(ConversationMessage)],
        "handoffs": [dict(reason=h.reason, detail=h.detail, status=h.status,
                          manager=_staff_name(session, h.manager_id), opened_at=_when(h.opened_at),
                          taken_at=_when(h.taken_at), first_reply_at=_when(h.first_reply_at),
                          closed_at=_when(h.closed_at), closed_by=h.closed_by,
                          satisfaction=h.satisfaction, callback_phone=h.callback_phone) for h in rows(Handoff)],
        "tags": [t.tag for t in rows(ClientTag, ClientTag.tag)],
        "notes": [dict(by=_staff_name(session, n.staff_id), text=n.text, at=_when(n.created_at))
                  for n in rows(ClientNote)],
        "notifications": [dict(text=n.text, to_client=n.chat_id == client.telegram_id, status=n.status,
                               created_at=_when(n.created_at), sent_at=_when(n.sent_at)) for n in notifications],
        "promotions": [dict(broadcast=d.broadcast_id, status=d.status, sent_at=_when(d.sent_at))
                       for d, _ in deliveries],
    }


CATEGORIES = ("messages", "notes", "leads", "meetings", "tags", "complaints", "handoffs", "staff_topics",
              "buttons", "updates", "notifications", "consents", "promotions_pending", "orders_kept",
              "conversation_events")


@dataclass(frozen=True)
class Erased:
    """What an erasure did: rows per category (`orders_kept`: orders kept pseudonymised), and the
    managers who held an open conversation with the client (to be told)."""

    client_id: int
    counts: dict[str, int]
    managers: tuple[int, ...]  # Telegram ids
    topics: tuple[tuple[int, int], ...] = ()  # (staff group, thread) of the client's topics, to delete there


def _count(result) -> int:
    return int(result.rowcount or 0)


def erase_client(session: Session, client: Client, by: str, now: datetime | None = None,
                 done: dict[str, int] | None = None) -> Erased:
    """Erase `client` (see the module's docstring). `by`: "client", "staff:<telegram id>", "cli"
    or "retention"; `done`: counts of what the caller erased elsewhere (Rasa's tracker store),
    logged with the rest. Returns what was done; forget() does the whole erasure."""
    if client.erased_at is not None:
        raise PrivacyError("erased", id=client.id)
    now = now or clock.now()
    cid, telegram_id = client.id, client.telegram_id
    handoffs = select(Handoff.id).where(Handoff.client_id == cid)
    managers = tuple(session.scalars(select(Staff.telegram_id).join(Handoff, Handoff.manager_id == Staff.id).where(
        Handoff.client_id == cid, Handoff.status == "active")).all())
    counts = dict.fromkeys(CATEGORIES, 0) | (done or {})
    meetings = select(Meeting.id).where(Meeting.client_id == cid)
    counts["notifications"] = _count(session.execute(delete(Notification).where(or_(
        Notification.chat_id == telegram_id, Notification.client_id == cid, Notification.topic_client_id == cid,
        Notification.handoff_id.in_(handoffs), Notification.meeting_id.in_(meetings)))
        .execution_options(synchronize_session=False)))
    session.execute(delete(HandoffNotice).where(HandoffNotice.handoff_id.in_(handoffs)))
    session.execute(delete(RelayedMessage).where(RelayedMessage.handoff_id.in_(handoffs)))
    counts["handoffs"] = _count(session.execute(delete(Handoff).where(Handoff.client_id == cid)))
    topics = tuple((chat, thread) for chat, thread in session.execute(
        select(StaffTopic.chat_id, StaffTopic.thread_id).where(StaffTopic.client_id == cid)))
    counts["staff_topics"] = _count(session.execute(delete(StaffTopic).where(StaffTopic.client_id == cid)))
    counts["messages"] = _count(session.execute(delete(ConversationMessage).where(ConversationMessage.client_id == cid)))
    counts["notes"] = _count(session.execute(delete(ClientNote).where(ClientNote.client_id == cid)))
    counts["meetings"] = _count(session.execute(delete(Meeting).where(Meeting.client_id == cid)))
    session.execute(delete(LeadEvent).where(LeadEvent.lead_id.in_(select(Lead.id).where(Lead.client_id == cid))))
    counts["leads"] = _count(session.execute(delete(Lead).where(Lead.client_id == cid)))
    counts["tags"] = _count(session.execute(delete(ClientTag).where(ClientTag.client_id == cid)))
    counts["complaints"] = _count(session.execute(delete(Complaint).where(Complaint.client_id == cid)))
    counts["buttons"] = _count(session.execute(delete(ButtonPayload).where(ButtonPayload.chat_id == telegram_id)))
    counts["updates"] = _count(session.execute(delete(InboundUpdate).where(InboundUpdate.chat_id == telegram_id)))
    counts["promotions_pending"] = _count(session.execute(
        update(BroadcastDelivery).where(BroadcastDelivery.client_id == cid,
                                        BroadcastDelivery.status.in_(("pending", "sending")))
        .values(status="cancelled", claimed_at=None, next_attempt_at=None, last_error=None)))
    # The proof that promotions were withdrawn: the withdrawals stay, the grants go, and the erasure
    # itself is a withdrawal when the latest word was a grant.
    latest = session.scalar(select(Consent).where(Consent.client_id == cid)
                            .order_by(Consent.created_at.desc(), Consent.id.desc()).limit(1))
    counts["consents"] = _count(session.execute(delete(Consent).where(Consent.client_id == cid,
                                                                       Consent.granted.is_(True))))
    if latest is not None and latest.granted:
        session.add(Consent(client_id=cid, granted=False, source="erasure", created_at=now))
    counts["orders_kept"] = _count(session.execute(update(Order).where(Order.client_id == cid)
                                                   .values(delivery_address="")))
    session.execute(update(Client).where(Client.id == cid).values(
        telegram_id=-cid, first_name="", last_name="", username=None, phone=None, email=None, company=None,
        vip=False, unreachable=True, account_manager_id=None, choices_batch=None, erased_at=now, last_seen=now)
        .execution_options(synchronize_session=False))
    session.add(Erasure(at=now, by=by, client_ref=cid, categories=counts))
    session.flush()
    session.expire(client)
    return Erased(cid, counts, managers, topics)


DESK = Texts("privacy.desk")


def forget(engine: Engine, telegram_id: int, by: str, tracker_url: str | None,
           now: datetime | None = None) -> Erased:
    """The whole erasure of the client with this Telegram id: their conversation in Rasa's tracker
    store first (if that store cannot be reached, nothing is erased and PrivacyError says so;
    done twice it is harmless), then the CRM (erase_client), and every manager who held their
    conversation is told it is closed. Raises PrivacyError."""
    with unit_of_work(engine) as session:
        client = session.scalar(select(Client).where(Client.telegram_id == telegram_id))
        if client is None:
            raise PrivacyError("unknown", id=telegram_id)
    try:
        events = trackers.erase_conversation(trackers.tracker_engine(tracker_url), str(telegram_id))
    except SQLAlchemyError as exc:
        raise PrivacyError("store_down", error=type(exc).__name__) from None
    with unit_of_work(engine) as session:
        client = find_client(session, client.id)
        handoffs = [h for h, in session.execute(select(Handoff.id).where(Handoff.client_id == client.id,
                                                                         Handoff.status == "active"))]
        erased = erase_client(session, client, by, now, done={"conversation_events": events})
        for member in session.scalars(select(Staff).where(Staff.telegram_id.in_(erased.managers))):
            enqueue(session, member.telegram_id, DESK.t("closed", member.language, ids=", ".join(map(str, handoffs))))
    return erased
