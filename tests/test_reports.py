"""The managers' reports (crm/reports.py), on SQLite and PostgreSQL: every figure on a CRM seeded so
that it is known by construction (November 2026, compared with October), the month's edges in
the desk's time zone, a range across the spring DST switch, an empty month, the periods staff
can ask for, and the monthly send claimed once."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from crm import periods, reports
from crm.db import unit_of_work
from crm.models import (
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
    Notification,
    Order,
    OrderLine,
    Product,
    Staff,
)

PARIS = ZoneInfo("Europe/Paris")
NOVEMBER = periods.month_period(date(2026, 11, 1), PARIS)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def seed(session) -> dict:
    """The CRM of the figures' tests. Times are UTC; Paris is UTC+1 all November."""
    alice = Staff(telegram_id=501, name="Alice", role="manager", language="fr")
    bob = Staff(telegram_id=502, name="Bob", role="manager", language="fr")
    session.add_all([alice, bob])

    def client(telegram_id, first_name, first_seen):
        row = Client(telegram_id=telegram_id, first_name=first_name, last_name="Martin", language="fr",
                     first_seen=first_seen, last_seen=first_seen)
        session.add(row)
        session.flush()
        return row

    a = client(1, "Anna", utc(2026, 11, 2, 9, 0))
    b = client(2, "Bruno", utc(2026, 11, 2, 10, 0))
    c = client(3, "Chloé", utc(2026, 11, 6, 17, 0))
    # 23:30 UTC on 30 November is 00:30 on 1 December in Paris: a December client.
    d = client(4, "Denis", utc(2026, 11, 30, 23, 30))
    e = client(5, "Zoé", utc(2026, 10, 5, 9, 0))

    def said(who, at, text, understood):
        session.add(ConversationMessage(client_id=who.id, direction="in", text=text, understood=understood,
                                        created_at=at))

    said(a, utc(2026, 11, 2, 10, 0), "bonjour", True)
    said(a, utc(2026, 11, 2, 10, 5), "xyz incompréhensible", False)
    said(a, utc(2026, 11, 3, 9, 0), "encore moi", True)
    session.add(ConversationMessage(client_id=a.id, direction="out", text="réponse", created_at=utc(2026, 11, 3, 9, 0)))
    said(b, utc(2026, 11, 2, 11, 0), "je veux parler à quelqu'un", True)
    said(b, utc(2026, 11, 2, 11, 15), "vous êtes là ?", None)  # to the manager: never read by the model
    said(c, utc(2026, 11, 30, 22, 30), "où est ma commande CMD-000123", False)  # 23:30 in Paris: November
    said(d, utc(2026, 11, 30, 23, 30), "bonsoir", True)  # 00:30 on 1 December in Paris
    said(e, utc(2026, 11, 10, 9, 0), "xyz  INCOMPRÉHENSIBLE !", False)
    said(e, utc(2026, 11, 10, 9, 1), "où est ma commande CMD-000456", False)
    said(e, utc(2026, 11, 10, 9, 2), "Zoé veut un truc bizarre", False)
    said(e, utc(2026, 10, 20, 9, 0), "xyz incompréhensible", False)  # October
    said(e, utc(2026, 10, 20, 9, 5), "merci", True)

    session.flush()
    session.add_all([
        # 12:00 in Paris on Monday 2 November: taken 10 minutes later, first reply 2 minutes after.
        Handoff(client_id=b.id, reason="request", status="closed", manager_id=alice.id,
                opened_at=utc(2026, 11, 2, 11, 0, 1), taken_at=utc(2026, 11, 2, 11, 10, 1),
                first_reply_at=utc(2026, 11, 2, 11, 12, 1), closed_at=utc(2026, 11, 2, 11, 40, 1),
                closed_by="manager", satisfaction=5),
        # Friday 18:50 in Paris (the desk closed at 18:00), taken on Monday at 9:20: 20 minutes of
        # desk time, 62 h 30 of calendar time.
        Handoff(client_id=c.id, reason="complaint", status="closed", manager_id=bob.id,
                opened_at=utc(2026, 11, 6, 17, 50), taken_at=utc(2026, 11, 9, 8, 20),
                first_reply_at=utc(2026, 11, 9, 8, 50), closed_at=utc(2026, 11, 9, 10, 20),
                closed_by="manager", satisfaction=3),
        Handoff(client_id=e.id, reason="fallback", status="closed", opened_at=utc(2026, 11, 10, 9, 3),
                closed_at=utc(2026, 11, 10, 11, 3), closed_by="expired", callback_phone="+33 6 12 34 56 78"),
        Handoff(client_id=a.id, reason="lead", status="active", manager_id=alice.id,
                opened_at=utc(2026, 11, 3, 9, 1), taken_at=utc(2026, 11, 3, 9, 6)),
        # October: one request, taken in 30 minutes, rated 4.
        Handoff(client_id=e.id, reason="request", status="closed", manager_id=alice.id,
                opened_at=utc(2026, 10, 20, 9, 6), taken_at=utc(2026, 10, 20, 9, 36),
                first_reply_at=utc(2026, 10, 20, 9, 40), closed_at=utc(2026, 10, 20, 10, 6),
                closed_by="manager", satisfaction=4),
    ])

    session.add_all([
        Complaint(client_id=c.id, category="product", severity="high", description="cassé",
                  created_at=utc(2026, 11, 6, 17, 50), resolved_at=utc(2026, 11, 8, 17, 50), status="resolved",
                  satisfaction=4),
        Complaint(client_id=e.id, category="delivery", severity="normal", description="en retard",
                  created_at=utc(2026, 11, 10, 9, 0)),
        Complaint(client_id=e.id, category="invoice", severity="critical", description="erreur",
                  created_at=utc(2026, 10, 20, 9, 0), resolved_at=utc(2026, 11, 1, 9, 0), status="resolved",
                  satisfaction=2),
        Complaint(client_id=e.id, category="service", severity="normal", description="accueil",
                  created_at=utc(2026, 10, 21, 9, 0), resolved_at=utc(2026, 12, 2, 9, 0), status="resolved"),
    ])

    pens = Product(sku="P1", name="Stylos", category="Écriture", price=Decimal("10.00"), stock=100)
    desk = Product(sku="P2", name="Bureau", category="Mobilier", price=Decimal("100.00"), stock=5)
    session.add_all([pens, desk])
    session.flush()

    def order(who, at, status, lines):
        row = Order(client_id=who.id, status=status, delivery_address="1 rue", created_at=at, updated_at=at,
                    total=sum(Decimal(q) * p.price for p, q in lines))
        session.add(row)
        session.flush()
        session.add_all([OrderLine(order_id=row.id, product_id=p.id, quantity=q, unit_price=p.price) for p, q in lines])

    order(a, utc(2026, 11, 3, 10, 0), "confirmed", [(pens, 2)])
    order(b, utc(2026, 11, 16, 10, 0), "delivered", [(desk, 1)])
    order(c, utc(2026, 11, 17, 10, 0), "cancelled", [(pens, 1)])
    order(a, utc(2026, 11, 19, 10, 0, 1), "confirmed", [(pens, 1)])  # 7 days and 1 s after the broadcast
    order(e, utc(2026, 10, 25, 10, 0), "delivered", [(pens, 5)])

    leads = [Lead(client_id=a.id, status="won", score=80, created_at=utc(2026, 11, 3, 9, 0)),
             Lead(client_id=b.id, status="lost", score=40, created_at=utc(2026, 11, 5, 9, 0)),
             Lead(client_id=e.id, status="qualified", score=55, created_at=utc(2026, 10, 10, 9, 0))]
    session.add_all(leads)
    session.flush()
    for lead, status, at in [(leads[0], "new", utc(2026, 11, 3, 9, 0)), (leads[0], "qualified", utc(2026, 11, 4, 9, 0)),
                             (leads[0], "won", utc(2026, 11, 20, 9, 0)), (leads[1], "new", utc(2026, 11, 5, 9, 0)),
                             (leads[1], "hot", utc(2026, 11, 6, 9, 0)), (leads[1], "lost", utc(2026, 11, 25, 9, 0)),
                             (leads[2], "new", utc(2026, 10, 10, 9, 0)), (leads[2], "qualified", utc(2026, 11, 2, 9, 0))]:
        session.add(LeadEvent(lead_id=lead.id, status=status, at=at))

    def meeting(who, created, status="booked", cancelled=None, day=10):
        session.add(Meeting(client_id=who.id, manager_id=alice.id, starts_at=utc(2026, 12, day, 9), status=status,
                            ends_at=utc(2026, 12, day, 9, 30), created_at=created, cancelled_at=cancelled))

    meeting(a, utc(2026, 11, 4, 9, 0), day=10)
    meeting(b, utc(2026, 11, 5, 9, 0), "moved", utc(2026, 11, 6, 9, 0), day=11)
    meeting(b, utc(2026, 11, 6, 9, 0), day=12)  # where B's meeting moved to
    meeting(c, utc(2026, 11, 7, 9, 0), "cancelled", utc(2026, 11, 8, 9, 0), day=13)

    for who, granted, at in [(a, True, utc(2026, 10, 1)), (b, True, utc(2026, 10, 1)), (e, True, utc(2026, 10, 1)),
                             (e, False, utc(2026, 11, 12, 12, 0)), (c, True, utc(2026, 12, 2))]:
        session.add(Consent(client_id=who.id, granted=granted, source="command", created_at=at))
    broadcast = Broadcast(text_fr="Promo", state="done", started_at=utc(2026, 11, 12, 10, 0))
    session.add(broadcast)
    session.flush()
    session.add_all([
        BroadcastDelivery(broadcast_id=broadcast.id, client_id=a.id, status="sent", sent_at=utc(2026, 11, 12, 10, 0)),
        BroadcastDelivery(broadcast_id=broadcast.id, client_id=b.id, status="sent", sent_at=utc(2026, 11, 12, 10, 1)),
        BroadcastDelivery(broadcast_id=broadcast.id, client_id=c.id, status="blocked"),
        BroadcastDelivery(broadcast_id=broadcast.id, client_id=e.id, status="opted_out"),
    ])
    session.flush()
    return {"alice": alice, "bob": bob}


@pytest.fixture
def seeded(engine):
    with unit_of_work(engine) as s:
        seed(s)
    return engine


def values(report: reports.Report) -> dict[str, float | None]:
    return {f.name: f.value for f in report.figures}


def previous(report: reports.Report) -> dict[str, float | None]:
    return {f.name: f.previous for f in report.figures}


def test_every_figure_of_a_month_is_the_one_known_by_construction(seeded):
    with unit_of_work(seeded) as s:
        report = reports.build_report(s, NOVEMBER)
    got = values(report)
    expected = {
        # A, B, C (23:30 on the 30th in Paris) and E wrote; D's "bonsoir" is December's.
        "clients.active": 4, "clients.new": 3, "clients.messages": 9,
        # Client-days: A 2nd, A 3rd, B 2nd, C 6th (handed over), C 30th, E 10th; with a human:
        # B 2nd, C 6th, E 10th (a handoff opened), A 3rd (the lead handoff opened that day).
        "assistant.conversations": 6, "assistant.automation_rate": 2 / 6,
        "assistant.understanding_rate": 3 / 8,
        "desk.handoffs": 4, "desk.handoffs_by_reason:request": 1, "desk.handoffs_by_reason:complaint": 1,
        "desk.handoffs_by_reason:fallback": 1, "desk.handoffs_by_reason:lead": 1, "desk.handoffs_by_reason:vip": 0,
        # Waits in desk time: 10, 20 (Friday evening to Monday 9:20), 5 minutes.
        "desk.take_median": 10, "desk.take_p90": 20, "desk.first_reply_median": 16,
        "desk.handling_median": 75, "desk.satisfaction": 4.0, "desk.satisfaction_votes": 2,
        "desk.satisfaction_score:5": 1, "desk.satisfaction_score:4": 0, "desk.satisfaction_score:3": 1,
        "desk.satisfaction_score:2": 0, "desk.satisfaction_score:1": 0,
        "desk.satisfaction_by_manager:Alice": 5.0, "desk.satisfaction_by_manager:Bob": 3.0,
        "desk.callbacks": 1, "desk.unanswered": 1,
        "complaints.new": 2, "complaints.by_category:product": 1, "complaints.by_category:delivery": 1,
        "complaints.by_category:invoice": 0, "complaints.by_category:service": 0, "complaints.by_category:other": 0,
        "complaints.by_severity:normal": 1, "complaints.by_severity:high": 1, "complaints.by_severity:critical": 0,
        "complaints.resolve_median": (2 * 1440 + 12 * 1440) / 2, "complaints.backlog": 2,
        "complaints.satisfaction": 3.0,
        "orders.count": 3, "orders.revenue": 130.0, "orders.basket": 130 / 3, "orders.cancelled": 1,
        "orders.top_products:Stylos": 3, "orders.top_products:Bureau": 1,
        "leads.new": 2, "leads.qualified": 2, "leads.hot": 1, "leads.won": 1, "leads.lost": 1,
        "leads.conversion": 0.5, "leads.score": 60,
        "meetings.booked": 3, "meetings.moved": 1, "meetings.cancelled": 1,
        "broadcasts.sent": 2, "broadcasts.blocked": 1, "broadcasts.opt_outs": 1,
        # B's desk, 4 days after the broadcast; A's pens 7 days and 1 s after: outside the window.
        "broadcasts.orders": 1, "broadcasts.revenue": 100.0, "broadcasts.subscribers": 2,
        # Masked (order numbers, the writer's own name) and merged once masked.
        "assistant.misunderstood:où est ma commande [order]": 2,
        "assistant.misunderstood:xyz incompréhensible": 2,
        "assistant.misunderstood:[name] veut un truc bizarre": 1,
    }
    assert {k: got.get(k) for k in expected} == pytest.approx(expected)
    assert set(got) == set(expected), "no figure left untested"
    assert [f.detail for f in report.section("assistant") if f.key == "assistant.misunderstood"] == [
        "où est ma commande [order]", "xyz incompréhensible", "[name] veut un truc bizarre"]
    assert [f.detail for f in report.figures if f.key == "orders.top_products"] == ["Stylos", "Bureau"]


def test_each_figure_is_compared_with_the_month_before(seeded):
    with unit_of_work(seeded) as s:
        report = reports.build_report(s, NOVEMBER)
    before = previous(report)
    assert report.previous.first == date(2026, 10, 1) and report.previous.last == date(2026, 10, 31)
    assert before["clients.messages"] == 2 and before["clients.active"] == 1 and before["clients.new"] == 1
    assert before["desk.handoffs"] == 1 and before["desk.take_median"] == 30 and before["desk.satisfaction"] == 4
    assert before["desk.satisfaction_by_manager:Bob"] is None  # Bob had no rating in October
    assert before["orders.count"] == 1 and before["orders.revenue"] == 50 and before["orders.top_products:Bureau"] == 0
    assert before["assistant.misunderstood:xyz incompréhensible"] == 1
    assert before["leads.new"] == 1 and before["complaints.new"] == 2 and before["broadcasts.subscribers"] == 3


def test_series_for_the_charts(seeded):
    with unit_of_work(seeded) as s:
        found = reports.measure(s, NOVEMBER)
    per_day = {day: (conversations, handoffs) for day, conversations, handoffs in found.per_day}
    assert len(per_day) == 30 and per_day[date(2026, 11, 2)] == (2, 1) and per_day[date(2026, 11, 30)] == (1, 0)
    assert sum(c for c, _ in per_day.values()) == 6 and sum(h for _, h in per_day.values()) == 4
    # Weeks start on Monday: 1 November is a Sunday, in the week of 26 October.
    assert [(monday, n, total) for monday, n, total in found.per_week] == [
        (date(2026, 10, 26), 0, 0), (date(2026, 11, 2), 1, 20), (date(2026, 11, 9), 0, 0),
        (date(2026, 11, 16), 2, 110), (date(2026, 11, 23), 0, 0), (date(2026, 11, 30), 0, 0)]
    assert found.satisfaction == {1: 0, 2: 0, 3: 1, 4: 0, 5: 1}


def test_december_starts_at_midnight_in_paris_not_in_utc(seeded):
    with unit_of_work(seeded) as s:
        december = reports.build_report(s, periods.month_period(date(2026, 12, 1), PARIS), ("clients",))
    got = values(december)
    assert got["clients.messages"] == 1 and got["clients.new"] == 1  # Denis, at 00:30 on 1 December


def test_a_range_across_the_spring_dst_switch_counts_each_day_as_lived(engine):
    zone = PARIS
    with unit_of_work(engine) as s:
        client = Client(telegram_id=9, first_name="Eve", language="fr", first_seen=utc(2027, 3, 1), last_seen=utc(2027, 3, 1))
        s.add(client)
        s.flush()
        # 23:30 in Paris on Saturday 27 March (UTC+1), 23:30 on Sunday 28 March (UTC+2 since 2:00).
        for at in (utc(2027, 3, 27, 22, 30), utc(2027, 3, 28, 21, 30), utc(2027, 3, 28, 22, 30)):
            s.add(ConversationMessage(client_id=client.id, direction="in", text="x", created_at=at))
    period = periods.day_range(date(2027, 3, 27), date(2027, 3, 28), zone)
    assert period.end - period.start == timedelta(hours=47)
    with unit_of_work(engine) as s:
        found = reports.measure(s, period, ("clients", "assistant"))
    # 22:30 UTC on the 28th is 00:30 on the 29th in Paris: outside the range.
    assert found.values[("clients.messages", "")] == 2
    assert [(day, conversations) for day, conversations, _ in found.per_day] == [
        (date(2027, 3, 27), 1), (date(2027, 3, 28), 1)]
    assert period.previous().first == date(2027, 3, 25) and period.previous().last == date(2027, 3, 26)
    october = periods.month_period(date(2026, 10, 1), zone)  # the autumn switch: one 25-hour day
    assert october.end - october.start == timedelta(days=31, hours=1)


def test_an_empty_month_says_zero_or_no_data(engine):
    with unit_of_work(engine) as s:
        report = reports.build_report(s, NOVEMBER)
    for figure in report.figures:
        no_data = figure.unit in ("share", "score", "minutes") or figure.key in ("orders.basket", "leads.score")
        assert figure.value == (None if no_data else 0), figure.name
    assert not any(f.key in ("assistant.misunderstood", "orders.top_products", "desk.satisfaction_by_manager")
                   for f in report.figures)


def test_a_marketer_s_sections_leave_the_desk_out(seeded):
    with unit_of_work(seeded) as s:
        report = reports.build_report(s, NOVEMBER, reports.ROLE_SECTIONS["marketer"])
    assert {f.section for f in report.figures} == {"clients", "orders", "broadcasts"}


NOW = utc(2026, 12, 4, 10, 0)  # Friday 4 December, 11:00 in Paris


@pytest.mark.parametrize("words,first,last,kind", [
    ([], date(2026, 12, 1), date(2026, 12, 4), "month_so_far"),
    (["last"], date(2026, 11, 1), date(2026, 11, 30), "month"),
    (["dernier"], date(2026, 11, 1), date(2026, 11, 30), "month"),
    (["2026-02"], date(2026, 2, 1), date(2026, 2, 28), "month"),
    (["2026-12"], date(2026, 12, 1), date(2026, 12, 4), "month_so_far"),
    (["2026-11-01", "2026-11-15"], date(2026, 11, 1), date(2026, 11, 15), "range"),
    (["2026-11-20", "2026-12-31"], date(2026, 11, 20), date(2026, 12, 4), "range"),  # up to today
])
def test_the_periods_staff_can_ask_for(words, first, last, kind):
    period = periods.parse_period(words, NOW)
    assert (period.first, period.last, period.kind) == (first, last, kind)


def test_the_month_so_far_is_compared_with_the_same_days_of_the_month_before():
    period = periods.parse_period([], NOW)
    before = period.previous()
    assert (before.first, before.last) == (date(2026, 11, 1), date(2026, 11, 4))
    assert before.end - before.start == period.end - period.start  # up to the same hour
    march = periods.parse_period([], utc(2027, 3, 31, 12, 0))
    assert march.previous().last == date(2027, 2, 28)  # February has no 31st


@pytest.mark.parametrize("words,key", [
    (["2026-13"], "bad_period"), (["novembre"], "bad_period"), (["2027-01"], "future"),
    (["2026-11-15", "2026-11-01"], "reversed"), (["2026-02-30", "2026-03-01"], "bad_period"),
    (["2024-01-01", "2026-01-01"], "too_long"), (["2026-11-01"], "bad_period"), (["x" * 5000], "bad_period"),
])
def test_a_period_that_cannot_be_read_is_refused_with_its_reason(words, key):
    with pytest.raises(periods.PeriodError) as refused:
        periods.parse_period(words, NOW)
    assert refused.value.key == key


def test_the_monthly_report_is_claimed_once_on_the_first_working_day_at_nine(engine):
    with unit_of_work(engine) as s:
        s.add_all([Staff(telegram_id=700, name="Ada", role="admin", language="en"),
                   Staff(telegram_id=701, name="Max", role="manager", language="fr"),
                   Staff(telegram_id=702, name="Old", role="admin", language="fr", active=False)])
    # 1 May 2027 is a Saturday: the desk opens on Monday 3 May; 9:00 in Paris is 7:00 UTC.
    assert reports.first_working_day(date(2027, 5, 1)) == date(2027, 5, 3)
    with unit_of_work(engine) as s:
        assert reports.monthly_due(s, utc(2027, 5, 3, 6, 59)) is None
    with unit_of_work(engine) as s:
        period = reports.monthly_due(s, utc(2027, 5, 3, 7, 0))
        assert period.month == "2027-04"
        assert reports.send_monthly(s, period) == 1
    for later in (utc(2027, 5, 3, 7, 10), utc(2027, 5, 20, 12, 0)):  # a second process, a restart
        with unit_of_work(engine) as s:
            assert reports.monthly_due(s, later) is None
    with unit_of_work(engine) as s:
        rows = s.execute(select(Notification.chat_id, Notification.text, Notification.attachment)).all()
    assert rows == [(700, "📊 Monthly report for April 2027: the figures and charts are in the PDF.", "report:2027-04")]


def test_a_bot_down_on_the_first_working_day_sends_it_when_it_starts(engine):
    with unit_of_work(engine) as s:
        period = reports.monthly_due(s, utc(2026, 12, 15, 8, 0))
    assert period.month == "2026-11"
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 0  # no admin: nobody to send to
