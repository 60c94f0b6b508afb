"""Managers' reports: the figures of a period (crm/periods.py), read from the CRM only, each beside
the same figure of the previous period (README "Reports" defines every one of them).

The figures are grouped in sections; a role sees some of them (`ROLE_SECTIONS`: marketers the
audience, sales and broadcasts, not the desk). Every query is bounded by an indexed time column,
and day buckets are computed in SQL with the day bounds given (portable between SQLite and
PostgreSQL, DST included).

The monthly report (`monthly_due`) goes to every admin on the first working day of the month at
company.yml reports.monthly_at: the bot claims the month once (an announcement), and the outbox
delivers one PDF per admin (built at send time, bot/report_render.py).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import and_, case, distinct, func, or_, select, union
from sqlalchemy.orm import Session

from crm import clock, desk_hours
from crm.alerts import announce
from crm.company import company_profile
from crm.i18n import Texts
from crm.models import (
    COMPLAINT_CATEGORIES,
    HANDOFF_REASONS,
    SEVERITIES,
    Broadcast,
    BroadcastDelivery,
    Client,
    Complaint,
    Consent,
    ConversationMessage,
    Handoff,
    Lead,
    LeadEvent,
    Meeting,
    Order,
    OrderLine,
    Product,
    Staff,
)
from crm.outbox import enqueue
from crm.periods import MONTH, Period, month_before, month_period, period_name
from crm.review import mask, normalise, understanding

SECTIONS = ("clients", "assistant", "desk", "complaints", "orders", "leads", "broadcasts")
ROLE_SECTIONS = {
    "admin": SECTIONS,
    "manager": SECTIONS,
    "marketer": ("clients", "orders", "broadcasts"),
}
# How each figure is measured (the CSV's unit column). Durations are in minutes, money in the
# orders' currency, rates are shares (0-1), scores the clients' 1-5.
UNITS = {
    "clients.active": "clients", "clients.new": "clients", "clients.messages": "messages",
    "assistant.conversations": "conversations", "assistant.automation_rate": "share",
    "assistant.understanding_rate": "share", "assistant.misunderstood": "messages",
    "desk.handoffs": "handoffs", "desk.handoffs_by_reason": "handoffs",
    "desk.take_median": "minutes", "desk.take_p90": "minutes", "desk.first_reply_median": "minutes",
    "desk.handling_median": "minutes", "desk.satisfaction": "score", "desk.satisfaction_votes": "ratings",
    "desk.satisfaction_score": "ratings", "desk.satisfaction_by_manager": "score", "desk.callbacks": "handoffs",
    "desk.unanswered": "handoffs",
    "complaints.new": "complaints", "complaints.by_category": "complaints", "complaints.by_severity": "complaints",
    "complaints.resolve_median": "minutes", "complaints.backlog": "complaints", "complaints.satisfaction": "score",
    "orders.count": "orders", "orders.revenue": "money", "orders.basket": "money", "orders.top_products": "units",
    "orders.cancelled": "orders",
    "leads.new": "leads", "leads.qualified": "leads", "leads.hot": "leads", "leads.won": "leads",
    "leads.lost": "leads", "leads.conversion": "share", "leads.score": "points",
    "meetings.booked": "meetings", "meetings.moved": "meetings", "meetings.cancelled": "meetings",
    "broadcasts.sent": "messages", "broadcasts.blocked": "messages", "broadcasts.opt_outs": "clients",
    "broadcasts.orders": "orders", "broadcasts.revenue": "money", "broadcasts.subscribers": "clients",
}
SECTION_OF = {"meetings": "leads"}
TOP_MISUNDERSTOOD, TOP_PRODUCTS = 10, 5
MISUNDERSTOOD_GROUPS = 500  # texts as written read from the database before masking and merging
TEXTS = Texts("report")


# --- figures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One line of a report: `key` names it (UNITS), `detail` the member of a breakdown (a reason,
    a category, a product, a manager, a misunderstood text); `value` and `previous` are None
    where there is nothing to measure (a median of no handoff)."""

    key: str
    value: float | None
    previous: float | None
    detail: str = ""

    @property
    def section(self) -> str:
        head = self.key.split(".")[0]
        return SECTION_OF.get(head, head)

    @property
    def unit(self) -> str:
        return UNITS[self.key]

    @property
    def name(self) -> str:
        return f"{self.key}:{self.detail}" if self.detail else self.key


@dataclass
class Measures:
    """What one period measured: the figures by (key, detail), in report order, and the series
    the charts draw."""

    values: dict[tuple[str, str], float | None] = field(default_factory=dict)
    per_day: list[tuple[date, int, int]] = field(default_factory=list)   # conversations, handoffs
    per_week: list[tuple[date, int, Decimal]] = field(default_factory=list)  # Monday, orders, revenue
    satisfaction: dict[int, int] = field(default_factory=dict)  # desk ratings 1-5
    currency: str = "EUR"

    def put(self, key: str, value, detail: str = "") -> None:
        assert key in UNITS, key
        self.values[(key, detail)] = None if value is None else float(value)


@dataclass
class Report:
    period: Period
    previous: Period
    sections: tuple[str, ...]
    figures: list[Figure]
    current: Measures

    def figure(self, key: str, detail: str = "") -> Figure:
        return next(f for f in self.figures if f.key == key and f.detail == detail)

    def section(self, name: str) -> list[Figure]:
        return [f for f in self.figures if f.section == name]


def build_report(session: Session, period: Period, sections: tuple[str, ...] = SECTIONS) -> Report:
    """The report of `period` for these sections, each figure beside the previous period's."""
    previous = period.previous()
    current, before = measure(session, period, sections), measure(session, previous, sections)
    figures = [Figure(key, value, before.values.get((key, detail), _absent(key)), detail)
               for (key, detail), value in current.values.items()]
    return Report(period, previous, tuple(s for s in SECTIONS if s in sections), figures, current)


def _absent(key: str) -> float | None:
    """A breakdown member the previous period did not have: 0 of a count, no data of an average."""
    return None if UNITS[key] in ("score", "share", "minutes") else 0.0


def measure(session: Session, period: Period, sections: tuple[str, ...] = SECTIONS) -> Measures:
    found = Measures()
    found.currency = session.scalar(select(Order.currency).limit(1)) or "EUR"
    for section in SECTIONS:
        if section in sections:
            MEASURES[section](session, period, found)
    return found


def _in(column, period: Period):
    return and_(column >= period.start.astimezone(timezone.utc), column < period.end.astimezone(timezone.utc))


def _day_of(column, period: Period):
    """The index of the desk's calendar day a time falls on, in SQL: bounds given, so the same
    expression works on SQLite and PostgreSQL, and a DST day is as long as it was."""
    zone = desk_hours.zone()
    bounds = [clock.start_of_day(day, zone) for day in period.days[1:]]
    whens = [(column < bound, index) for index, bound in enumerate(bounds)]
    return case(*whens, else_=len(bounds)) if whens else case((column.is_not(None), 0), else_=0)


def _minutes(since: datetime, until: datetime) -> float:
    return (clock.aware(until) - clock.aware(since)).total_seconds() / 60


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `share` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _count(session: Session, query) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _inbound(period: Period):
    """The clients' messages of the period."""
    return and_(ConversationMessage.direction == "in", _in(ConversationMessage.created_at, period))


def _clients(session: Session, period: Period, found: Measures) -> None:
    inbound = _inbound(period)
    messages, active = session.execute(
        select(func.count(ConversationMessage.id), func.count(distinct(ConversationMessage.client_id)))
        .where(inbound)).one()
    found.put("clients.active", active or 0)
    found.put("clients.new", session.scalar(select(func.count(Client.id)).where(_in(Client.first_seen, period))))
    found.put("clients.messages", messages or 0)


def _assistant(session: Session, period: Period, found: Measures) -> None:
    message_day = _day_of(ConversationMessage.created_at, period)
    opened_day = _day_of(Handoff.opened_at, period)
    inbound = _inbound(period)
    wrote = select(ConversationMessage.client_id.label("client"), message_day.label("day")).where(inbound)
    handed = select(Handoff.client_id.label("client"), opened_day.label("day")).where(_in(Handoff.opened_at, period))
    during = (select(ConversationMessage.client_id.label("client"), message_day.label("day"))
              .join(Handoff, and_(Handoff.client_id == ConversationMessage.client_id,
                                  ConversationMessage.created_at >= Handoff.opened_at,
                                  or_(Handoff.closed_at.is_(None), ConversationMessage.created_at < Handoff.closed_at)))
              .where(inbound))
    conversations = union(wrote, handed).subquery()
    per_day = dict(session.execute(select(conversations.c.day, func.count()).group_by(conversations.c.day)).all())
    handoffs = dict(session.execute(select(opened_day, func.count(Handoff.id))
                                    .where(_in(Handoff.opened_at, period)).group_by(opened_day)).all())
    found.per_day = [(day, int(per_day.get(i, 0)), int(handoffs.get(i, 0))) for i, day in enumerate(period.days)]
    total = sum(per_day.values())
    with_human = _count(session, union(handed, during))
    found.put("assistant.conversations", total)
    found.put("assistant.automation_rate", (total - with_human) / total if total else None)
    found.put("assistant.understanding_rate", understanding(session, period.start, period.end).rate)
    for text, count in misunderstood(session, period):
        found.put("assistant.misunderstood", count, text)


def misunderstood(session: Session, period: Period, limit: int = TOP_MISUNDERSTOOD) -> list[tuple[str, int]]:
    """The texts the model fell back on most often, masked as in the review queue (the writer's
    own names included) and merged when they read the same once masked."""
    rows = session.execute(
        select(ConversationMessage.text, Client.first_name, Client.last_name, Client.username,
               func.count(ConversationMessage.id).label("n"))
        .join(Client, Client.id == ConversationMessage.client_id)
        .where(ConversationMessage.understood.is_(False), _in(ConversationMessage.created_at, period))
        .group_by(ConversationMessage.text, Client.id, Client.first_name, Client.last_name, Client.username)
        .order_by(func.count(ConversationMessage.id).desc()).limit(MISUNDERSTOOD_GROUPS)).all()
    counts: Counter = Counter()
    variants: dict[str, Counter] = defaultdict(Counter)
    for text, first, last, username, n in rows:
        masked = mask(" ".join(text.split()), tuple(x for x in (first, last, username) if x))
        key = normalise(masked)
        if key:
            counts[key] += n
            variants[key][masked] += n
    # Each shown as its most frequent writing; on a tie the one with the fewest capitals.
    shown = {key: min(found, key=lambda v: (-found[v], sum(ch.isupper() for ch in v), v))
             for key, found in variants.items()}
    return [(shown[key], n) for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], shown[kv[0]]))[:limit]]


def _desk(session: Session, period: Period, found: Measures) -> None:
    opened = _in(Handoff.opened_at, period)
    by_reason = dict(session.execute(select(Handoff.reason, func.count(Handoff.id)).where(opened)
                                     .group_by(Handoff.reason)).all())
    found.put("desk.handoffs", sum(by_reason.values()))
    for reason in HANDOFF_REASONS:
        found.put("desk.handoffs_by_reason", by_reason.get(reason, 0), reason)
    taken = session.execute(select(Handoff.opened_at, Handoff.taken_at, Handoff.first_reply_at)
                            .where(opened, Handoff.taken_at.is_not(None))).all()
    waits = [desk_hours.open_minutes(o, t) for o, t, _ in taken]
    found.put("desk.take_median", median(waits))
    found.put("desk.take_p90", percentile(waits, 0.9))
    found.put("desk.first_reply_median",
              median([max(_minutes(t, r), 0.0) for _, t, r in taken if r is not None]))
    closed = session.execute(select(Handoff.taken_at, Handoff.closed_at, Handoff.satisfaction, Staff.name)
                             .outerjoin(Staff, Staff.id == Handoff.manager_id)
                             .where(_in(Handoff.closed_at, period))).all()
    found.put("desk.handling_median", median([_minutes(t, c) for t, c, _, _ in closed if t is not None]))
    scores = [s for _, _, s, _ in closed if s is not None]
    found.satisfaction = {score: scores.count(score) for score in range(1, 6)}
    found.put("desk.satisfaction", statistics.fmean(scores) if scores else None)
    found.put("desk.satisfaction_votes", len(scores))
    for score in range(5, 0, -1):
        found.put("desk.satisfaction_score", found.satisfaction[score], str(score))
    by_manager: dict[str, list[int]] = defaultdict(list)
    for _, _, score, name in closed:
        if score is not None and name:
            by_manager[name].append(score)
    for name, marks in sorted(by_manager.items(), key=lambda kv: (-statistics.fmean(kv[1]), kv[0])):
        found.put("desk.satisfaction_by_manager", statistics.fmean(marks), name)
    found.put("desk.callbacks", session.scalar(select(func.count(Handoff.id))
                                               .where(opened, Handoff.callback_phone.is_not(None))))
    found.put("desk.unanswered", session.scalar(select(func.count(Handoff.id)).where(
        opened, Handoff.status == "closed", Handoff.taken_at.is_(None))))


def _complaints(session: Session, period: Period, found: Measures) -> None:
    created = _in(Complaint.created_at, period)
    rows = session.execute(select(Complaint.category, Complaint.severity).where(created)).all()
    found.put("complaints.new", len(rows))
    categories, severities = Counter(c for c, _ in rows), Counter(s for _, s in rows)
    for category in COMPLAINT_CATEGORIES:
        found.put("complaints.by_category", categories.get(category, 0), category)
    for severity in SEVERITIES:
        found.put("complaints.by_severity", severities.get(severity, 0), severity)
    resolved = session.execute(select(Complaint.created_at, Complaint.resolved_at, Complaint.satisfaction)
                               .where(_in(Complaint.resolved_at, period))).all()
    found.put("complaints.resolve_median", median([_minutes(c, r) for c, r, _ in resolved]))
    end = period.end.astimezone(timezone.utc)
    found.put("complaints.backlog", session.scalar(select(func.count(Complaint.id)).where(
        Complaint.created_at < end, or_(Complaint.resolved_at.is_(None), Complaint.resolved_at >= end))))
    scores = [s for _, _, s in resolved if s is not None]
    found.put("complaints.satisfaction", statistics.fmean(scores) if scores else None)


def _orders(session: Session, period: Period, found: Measures) -> None:
    day = _day_of(Order.created_at, period)
    rows = session.execute(select(day, Order.status == "cancelled", func.count(Order.id), func.sum(Order.total))
                           .where(_in(Order.created_at, period)).group_by(day, Order.status == "cancelled")).all()
    kept = [(i, n, total or Decimal(0)) for i, cancelled, n, total in rows if not cancelled]
    count, revenue = sum(n for _, n, _ in kept), sum((t for _, _, t in kept), Decimal(0))
    found.put("orders.count", count)
    found.put("orders.revenue", revenue)
    found.put("orders.basket", revenue / count if count else None)
    found.put("orders.cancelled", sum(n for _, cancelled, n, _ in rows if cancelled))
    weeks: dict[date, list] = {}
    for day_ in period.days:  # every week of the period, Monday first, even without an order
        weeks.setdefault(day_ - timedelta(days=day_.weekday()), [0, Decimal(0)])
    for index, n, total in kept:
        monday = period.days[index] - timedelta(days=period.days[index].weekday())
        weeks[monday][0] += n
        weeks[monday][1] += total
    found.per_week = [(monday, n, total) for monday, (n, total) in sorted(weeks.items())]
    top = session.execute(
        select(Product.name, func.sum(OrderLine.quantity).label("units"))
        .join(OrderLine, OrderLine.product_id == Product.id).join(Order, Order.id == OrderLine.order_id)
        .where(_in(Order.created_at, period), Order.status != "cancelled")
        .group_by(Product.id, Product.name).order_by(func.sum(OrderLine.quantity).desc(), Product.name)
        .limit(TOP_PRODUCTS)).all()
    for name, units in top:
        found.put("orders.top_products", units, name)


def _leads(session: Session, period: Period, found: Measures) -> None:
    created = _in(Lead.created_at, period)
    new, won, score = session.execute(select(func.count(Lead.id), func.count(Lead.id).filter(Lead.status == "won"),
                                             func.avg(Lead.score)).where(created)).one()
    reached = dict(session.execute(select(LeadEvent.status, func.count(distinct(LeadEvent.lead_id)))
                                   .where(_in(LeadEvent.at, period)).group_by(LeadEvent.status)).all())
    found.put("leads.new", new or 0)
    for status in ("qualified", "hot", "won", "lost"):
        found.put(f"leads.{status}", reached.get(status, 0))
    found.put("leads.conversion", (won or 0) / new if new else None)
    found.put("leads.score", score)
    moved = session.scalar(select(func.count(Meeting.id)).where(Meeting.status == "moved",
                                                                _in(Meeting.cancelled_at, period))) or 0
    booked = session.scalar(select(func.count(Meeting.id)).where(_in(Meeting.created_at, period))) or 0
    found.put("meetings.booked", max(booked - moved, 0))
    found.put("meetings.moved", moved)
    found.put("meetings.cancelled", session.scalar(select(func.count(Meeting.id)).where(
        Meeting.status == "cancelled", _in(Meeting.cancelled_at, period))))


def attribution_days() -> int:
    return company_profile()["reports"]["attribution_days"]


def _broadcasts(session: Session, period: Period, found: Measures) -> None:
    started = and_(BroadcastDelivery.broadcast_id == Broadcast.id, _in(Broadcast.started_at, period))
    states = dict(session.execute(select(BroadcastDelivery.status, func.count(BroadcastDelivery.id))
                                  .join(Broadcast, started).group_by(BroadcastDelivery.status)).all())
    found.put("broadcasts.sent", states.get("sent", 0))
    found.put("broadcasts.blocked", states.get("blocked", 0))
    found.put("broadcasts.opt_outs", session.scalar(select(func.count(Consent.id)).where(
        Consent.granted.is_(False), _in(Consent.created_at, period))))
    sent: dict[int, list[datetime]] = defaultdict(list)
    for client_id, at in session.execute(select(BroadcastDelivery.client_id, BroadcastDelivery.sent_at)
                                         .join(Broadcast, started).where(BroadcastDelivery.status == "sent",
                                                                         BroadcastDelivery.sent_at.is_not(None))):
        sent[client_id].append(clock.aware(at))
    for times in sent.values():
        times.sort()
    window = timedelta(days=attribution_days())
    orders, revenue = 0, Decimal(0)
    if sent:
        recipients = (select(BroadcastDelivery.client_id).join(Broadcast, started)
                      .where(BroadcastDelivery.status == "sent"))
        for client_id, at, total in session.execute(
                select(Order.client_id, Order.created_at, Order.total)
                .where(Order.client_id.in_(recipients), Order.status != "cancelled",
                       Order.created_at >= period.start.astimezone(timezone.utc),
                       Order.created_at < (period.end + window).astimezone(timezone.utc))):
            times, at = sent[client_id], clock.aware(at)
            latest = bisect.bisect_right(times, at)  # the last delivery at or before the order
            if latest and at - times[latest - 1] < window:
                orders, revenue = orders + 1, revenue + total
    found.put("broadcasts.orders", orders)
    found.put("broadcasts.revenue", revenue)
    found.put("broadcasts.subscribers", subscribers(session, period.end))


def subscribers(session: Session, at: datetime) -> int:
    """Clients whose latest consent before `at` says yes (the latest row decides, crm/consent.py)."""
    at = at.astimezone(timezone.utc)
    latest = (select(func.max(Consent.id).label("id")).where(Consent.created_at < at)
              .group_by(Consent.client_id).subquery())
    return int(session.scalar(select(func.count(Consent.id)).join(latest, latest.c.id == Consent.id)
                              .where(Consent.granted.is_(True))) or 0)


MEASURES = {"clients": _clients, "assistant": _assistant, "desk": _desk, "complaints": _complaints,
            "orders": _orders, "leads": _leads, "broadcasts": _broadcasts}


# --- the monthly report ------------------------------------------------------------------------


def monthly_at() -> str:
    return company_profile()["reports"]["monthly_at"]


def first_working_day(month_first: date) -> date:
    """The month's first day the desk opens (company.yml desk.hours); Monday to Friday when no
    opening hours are set."""
    def works(day: date) -> bool:
        return desk_hours.opening(day) is not None if desk_hours.desk_settings().get("hours") else day.weekday() < 5

    return next((day for day in (month_first + timedelta(days=n) for n in range(31)) if works(day)), month_first)


def monthly_due(session: Session, now: datetime | None = None) -> Period | None:
    """Last month's report, when it is due and this process claims it (once for all processes):
    from the first working day of the month at reports.monthly_at, desk time; a bot that was down
    then sends it when it starts, later in the month."""
    now = clock.aware(now or clock.now())
    zone = desk_hours.zone()
    today = clock.today(zone, now)
    if now < clock.clock_instant(first_working_day(today.replace(day=1)), monthly_at(), zone):
        return None
    period = month_period(month_before(today.replace(day=1)), zone)
    return period if announce(session, f"report:{period.month}") else None


REPORT_ATTACHMENT = "report:"


def send_monthly(session: Session, period: Period) -> int:
    """One PDF of `period` to every active admin, through the outbox: the file is made when it is
    sent, in the admin's language. Returns how many."""
    admins = session.scalars(select(Staff).where(Staff.active.is_(True), Staff.role == "admin")).all()
    for admin in admins:
        enqueue(session, admin.telegram_id, TEXTS.t("monthly_caption", admin.language,
                                                   period=period_name(period, admin.language)),
                attachment=f"{REPORT_ATTACHMENT}{period.month}")
    return len(admins)


def queue_monthly(session: Session, now: datetime | None = None) -> tuple[Period, int] | None:
    """The monthly job: when last month's report is due and unclaimed, claim it and queue it for
    every admin, in the same unit of work (a crash between the two leaves neither). Returns the
    period and how many admins it is queued for, or None."""
    period = monthly_due(session, now)
    return (period, send_monthly(session, period)) if period is not None else None


def month_of_attachment(attachment: str) -> Period | None:
    """The period of an outbox row's "report:YYYY-MM" attachment; None for anything else."""
    match = MONTH.fullmatch(attachment.removeprefix(REPORT_ATTACHMENT))
    if not attachment.startswith(REPORT_ATTACHMENT) or match is None or not 1 <= int(match[2]) <= 12:
        return None
    return month_period(date(int(match[1]), int(match[2]), 1))
