"""The CRM's tables, as SQLAlchemy 2.0 typed models. Changes here need an Alembic migration."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm import clock

ROLES = ("manager", "marketer", "admin")


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Client(Base):
    """A person who talks to the assistant on Telegram."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    first_name: Mapped[str] = mapped_column(String(255), default="")
    last_name: Mapped[str] = mapped_column(String(255), default="")
    username: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    vip: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Telegram answered Forbidden (the client blocked the bot): no promotional message is tried again.
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The manager who looks after this client: their handoffs go to them first.
    account_manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    # The buttons of the latest message the assistant sent (button_payloads.batch), or None.
    choices_batch: Mapped[str | None] = mapped_column(String(24), nullable=True)
    # Erased (crm/privacy.py): the row stays, pseudonymous, for the orders kept for accounting;
    # telegram_id is then minus the row's id, so the same person writing again is a new client.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or (f"@{self.username}" if self.username else str(self.telegram_id))


class Staff(Base):
    """A member of the company who uses the staff commands (managers, marketers, admins)."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class Product(Base):
    """An item of the assortment."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    category: Mapped[str] = mapped_column(String(128), index=True)
    # The category's English label for English-speaking clients; None: the category as written.
    category_en: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    stock: Mapped[int] = mapped_column(Integer, default=0)
    warranty_months: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=clock.now, onupdate=clock.now
    )
    # Search by meaning (crm/meaning.py): the sentence vector of name, category and description
    # (float16), and the fingerprint of the text and encoder it was computed from.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_key: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ConversationMessage(Base):
    """Every message in or out of a client conversation, so none is ever lost.

    An inbound message to the assistant is `answered=False` until its answer was delivered; it is
    claimed (`claimed_at`) by the process asking Rasa. One left unanswered (Rasa down, or the bot
    killed mid-answer: its claim goes stale) is answered later, once (crm.clients.backlog).
    `update_id` ties it to the Telegram update it came in, so a replayed update records nothing twice.
    """

    __tablename__ = "conversation_messages"
    # By time, with what the reports count (crm/reports.py): a month of messages is read from the
    # index alone, not row by row.
    __table_args__ = (Index("ix_conversation_messages_client_created", "client_id", "created_at"),
                      Index("ix_conversation_messages_created", "created_at", "direction", "client_id", "understood"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # "in" or "out"
    kind: Mapped[str] = mapped_column(String(16), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    answered: Mapped[bool] = mapped_column(Boolean, default=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Not unique: Telegram may start numbering again at random after a week without updates.
    update_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The language model's verdict on a client's text: True understood, False fell back
    # (nlu_fallback, set by the action server); None when the model never read it (a button, a
    # photo, a message to a manager). The understanding rate counts these (crm/review.py).
    understood: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class InboundUpdate(Base):
    """A Telegram update written down before Telegram is told it arrived (the next getUpdates
    offset), and marked done once handled: after a crash, what was not done is handled again."""

    __tablename__ = "inbound_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    owner: Mapped[str | None] = mapped_column(String(80))  # the bot process that received it


class ButtonPayload(Base):
    """What an inline button sends back, kept server-side: Telegram's callback data is only 64
    bytes and can be forged, so a button carries a random token and the payload stays here."""

    __tablename__ = "button_payloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(24), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    title: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    # The buttons of one message share a batch: those of the latest message are "on screen".
    batch: Mapped[str | None] = mapped_column(String(24), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class Promotion(Base):
    """A discount on one product, one category, or (neither set) the whole assortment."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title_fr: Mapped[str] = mapped_column(String(255))
    title_en: Mapped[str] = mapped_column(String(255))
    text_fr: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    category: Mapped[str | None] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


ORDER_STATUSES = ("confirmed", "preparing", "shipped", "delivered", "cancelled")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(16), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    delivery_address: Mapped[str] = mapped_column(Text)
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, onupdate=clock.now)


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))


COMPLAINT_CATEGORIES = ("product", "delivery", "invoice", "service", "other")
SEVERITIES = ("normal", "high", "critical")


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        CheckConstraint("satisfaction IS NULL OR (satisfaction BETWEEN 1 AND 5)", name="satisfaction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(16), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    category: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16), default="normal")
    severity_reasons: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, resolved
    resolution: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class Announcement(Base):
    """A staff alert that must go out once however many bot processes notice the same thing (a
    refused company.yml): the first to insert its key sends it."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class Notification(Base):
    """The outbox: a message the CRM wants delivered on Telegram (order status, complaint
    resolved, alerts to managers). The bot sends pending rows and records the outcome, so a
    restart loses none and sends none twice."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    text: Mapped[str] = mapped_column(Text)
    buttons: Mapped[list | None] = mapped_column(JSON)  # [{"title": ..., "data": ...}]
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id", ondelete="SET NULL"))
    # Set on messages for the staff group (STAFF_CHAT_ID): they go into this client's topic.
    topic_client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    # The client this message is to or about (a staff notice with their card): erasing the
    # client deletes it, and their data export lists it.
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    # Not sent before this time (meeting reminders); a cancelled meeting cancels its reminders.
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    # "ics": the meeting's calendar invitation is attached (the text is its caption).
    attachment: Mapped[str | None] = mapped_column(String(16))
    # pending -> sending (claimed by one sender, claimed_at) -> sent | failed | blocked |
    # unconfirmed (the sender stopped mid-send: it may have reached Telegram, never sent again)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A long text goes in several messages: those already sent are not sent again on a retry.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Consent(Base):
    """Promotional consent, one row per change: the latest row decides."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))  # command, conversation, button, staff
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)


HANDOFF_REASONS = ("request", "fallback", "complaint", "lead", "vip")
HANDOFF_OUTCOMES = ("manager", "admin", "client", "expired")


class Handoff(Base):
    """A conversation handed to a human manager. The single source of truth of the desk: while
    it is queued or active, the bot relays instead of asking Rasa."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued, active, closed
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    # Since when it waits for a manager: its opening, or when its manager left the desk.
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=clock.now)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    client_told_waiting: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    # Only the client's account manager was notified; everybody is after a delay.
    notified_all: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The client wrote and the manager has not answered since; reminded once.
    awaiting_reply_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The manager's first message to the client (the desk's first reply time, in the reports).
    first_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    manager_reminded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Outside opening hours the client may share a phone number to be called back.
    callback_phone: Mapped[str | None] = mapped_column(String(64))
    # Who ended it (HANDOFF_OUTCOMES): the manager's /done, an admin, the client leaving the
    # queue, or nobody taking it in time (then the request stays in the client file).
    closed_by: Mapped[str | None] = mapped_column(String(16))

    # One open handoff per client, whatever two processes do at the same instant.
    __table_args__ = (Index("uq_handoffs_open_client", "client_id", unique=True,
                            sqlite_where=text("status IN ('queued', 'active')"),
                            postgresql_where=text("status IN ('queued', 'active')")),)


class HandoffNotice(Base):
    """A "take" notification a manager received, kept to edit it into "taken by ..."."""

    __tablename__ = "handoff_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)


class StaffTopic(Base):
    """The topic of a client in the staff forum group (STAFF_CHAT_ID): one per client, reused by
    each of their handoffs, so the whole history with a client reads in one place."""

    __tablename__ = "staff_topics"
    __table_args__ = (Index("ix_staff_topics_chat_client", "chat_id", "client_id", unique=True),
                      Index("ix_staff_topics_chat_thread", "chat_id", "thread_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class RelayedMessage(Base):
    """A client message copied into a manager's chat: replying to it addresses that client."""

    __tablename__ = "relayed_messages"
    __table_args__ = (Index("ix_relayed_messages_staff_message", "staff_chat_id", "staff_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id", ondelete="CASCADE"), index=True)
    staff_chat_id: Mapped[int] = mapped_column(BigInteger)
    staff_message_id: Mapped[int] = mapped_column(BigInteger)
    # The client's update it relays: after a crash, a recorded message not relayed yet still is.
    update_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class ClientNote(Base):
    __tablename__ = "client_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


LEAD_STATUSES = ("new", "qualified", "hot", "contacted", "won", "lost")


class Lead(Base):
    """A business enquiry, qualified by the assistant and scored by company.yml's rules."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    company: Mapped[str | None] = mapped_column(String(255))
    sector: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[str | None] = mapped_column(String(16))  # 1-9, 10-49, 50-249, 250+
    need: Mapped[str | None] = mapped_column(Text)
    budget_eur: Mapped[int | None] = mapped_column(Integer)
    budget_text: Mapped[str | None] = mapped_column(String(255))
    timeline: Mapped[str | None] = mapped_column(String(16))  # now, 3m, 6m, later
    role: Mapped[str | None] = mapped_column(String(16))  # decision_maker, influencer, researcher
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[int] = mapped_column(Integer, default=0)
    score_details: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, onupdate=clock.now)


class LeadEvent(Base):
    """Each status a lead took, with when (crm/leads.py): the reports count leads that became
    qualified, hot, won or lost in a period, which the lead's current status alone cannot tell."""

    __tablename__ = "lead_events"
    __table_args__ = (Index("ix_lead_events_status_at", "status", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


class Meeting(Base):
    """A meeting of a client with a manager. `slot_key` (manager and start) is unique while the
    meeting stands, so two clients racing for the same slot cannot both get it."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    manager_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="booked")  # booked, cancelled, moved
    slot_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClientTag(Base):
    """A tag staff put on a client ("salon-2026", "revendeur"), for broadcast segments."""

    __tablename__ = "client_tags"
    __table_args__ = (Index("ix_client_tags_client_tag", "client_id", "tag", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(64), index=True)


BROADCAST_STATES = ("draft", "scheduled", "running", "done", "cancelled")


class Broadcast(Base):
    """A promotional message to a segment of the clients who agreed to receive them."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    text_fr: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")  # empty: the French text for everyone
    photo: Mapped[str | None] = mapped_column(String(512))  # a Telegram file id or an https URL
    segment: Mapped[str] = mapped_column(Text, default="")  # e.g. "lang:fr category:Écrans vip"
    state: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    compose_step: Mapped[str | None] = mapped_column(String(16))  # where a Telegram draft stands
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)


DELIVERY_STATES = ("pending", "sending", "sent", "unconfirmed", "failed", "blocked", "opted_out", "cancelled")


class BroadcastDelivery(Base):
    """One recipient of a broadcast, created when it starts. `sending` is claimed just before the
    request to Telegram: a crash then leaves it `unconfirmed`, never sent a second time."""

    __tablename__ = "broadcast_deliveries"
    __table_args__ = (Index("ix_broadcast_deliveries_broadcast_client", "broadcast_id", "client_id", unique=True),
                      Index("ix_broadcast_deliveries_broadcast_status", "broadcast_id", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


REVIEW_REASONS = ("fallback", "low_confidence", "rephrased", "asked_human")
REVIEW_STATUSES = ("pending", "labelled", "off_topic", "skipped")


class ReviewItem(Base):
    """A client phrasing the assistant did not understand well, kept for managers to label
    (crm/review.py). The text is stored masked (e-mails, phone numbers, order and complaint
    numbers, the client's names), once per normalised text: `count` says how often it came back.
    `claimed_by`/`claimed_at`: the manager it is shown to now (two reviewers never get the same
    one); `label` is an intent of the domain once labelled."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_status_count", "status", "count"),
        CheckConstraint("status IN ('pending', 'labelled', 'off_topic', 'skipped')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # hash of the normalised masked text
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8), default="fr")
    reason: Mapped[str] = mapped_column(String(16))
    predictions: Mapped[list] = mapped_column(JSON, default=list)  # [[intent, confidence], ...] best first
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_message_id: Mapped[str | None] = mapped_column(String(64))  # counted once per message
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    label: Mapped[str | None] = mapped_column(String(64))
    labelled_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Retraining(Base):
    """One retraining with the managers' labels (bot/retrain.py): whether the candidate was
    swapped in, why (or why not), and the accuracies of the model served before and of the
    candidate, on the held-out set and on the labels kept aside. No personal data."""

    __tablename__ = "retrainings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[int] = mapped_column(Integer, default=0)
    trained_on: Mapped[int] = mapped_column(Integer, default=0)
    kept_aside: Mapped[int] = mapped_column(Integer, default=0)
    before_held_out: Mapped[float | None] = mapped_column(Float, nullable=True)
    before_aside: Mapped[float | None] = mapped_column(Float, nullable=True)
    after_held_out: Mapped[float | None] = mapped_column(Float, nullable=True)
    after_aside: Mapped[float | None] = mapped_column(Float, nullable=True)


class Erasure(Base):
    """One client's erasure (crm/privacy.py): when, by whom ("client", "staff:<telegram id>",
    "cli", "retention"), the pseudonymous row it left (`client_ref`, the clients.id kept with the
    orders), and how many rows of each category went. Nothing of the erased data."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now)
    by: Mapped[str] = mapped_column(String(64))
    client_ref: Mapped[int] = mapped_column(Integer, index=True)
    categories: Mapped[dict] = mapped_column(JSON, default=dict)


class Purge(Base):
    """One run of the retention job (crm/retention.py): how many rows of each kind it deleted."""

    __tablename__ = "purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=clock.now, index=True)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
