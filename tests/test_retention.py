"""Retention (crm/retention.py), on SQLite and PostgreSQL: exactly what is past its period goes,
in batches, and a dry run counts the same; with the clock moved forward, what was kept goes in
its turn; one bot process a day runs it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm import retention
from crm.clients import TelegramProfile, record_message, register_client
from crm.db import unit_of_work
from crm.models import (
    Client,
    ConversationMessage,
    Handoff,
    Lead,
    Notification,
    Order,
    Purge,
    ReviewItem,
)
from tests.test_privacy import rasa_tracker_store, tracker_senders

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


@pytest.mark.parametrize("now,months,expected", [
    (datetime(2027, 3, 31, 12, tzinfo=timezone.utc), 1, datetime(2027, 2, 28, 12, tzinfo=timezone.utc)),
    (datetime(2028, 2, 29, 11, tzinfo=timezone.utc), 12, datetime(2027, 2, 28, 11, tzinfo=timezone.utc)),
    (datetime(2026, 12, 3, 10, tzinfo=timezone.utc), 12, datetime(2025, 12, 3, 10, tzinfo=timezone.utc)),
    (datetime(2026, 1, 15, tzinfo=timezone.utc), 3, datetime(2025, 10, 15, tzinfo=timezone.utc)),
])
def test_periods_are_calendar_months(now, months, expected):
    assert retention._months_ago(now, months) == expected


def _client(session, telegram_id: int, last_seen: datetime) -> Client:
    client, _ = register_client(session, TelegramProfile(telegram_id, f"Client{telegram_id}", "Nom", None, "fr"))
    client.phone, client.last_seen = f"+33 6 00 00 {telegram_id % 100:02d} 00", last_seen
    return client


def _message(session, client, at: datetime, text: str) -> None:
    record_message(session, client, "in", text).created_at = at


@pytest.fixture
def aged(engine, tmp_path):
    """A CRM with rows on both sides of each period (NOW is the day of the purge), and Rasa's
    store with old and recent events."""
    year, old = 365 * DAY, NOW - 400 * DAY
    with unit_of_work(engine) as s:
        active = _client(s, 1001, NOW - DAY)
        silent = _client(s, 1002, NOW - 3 * year - 30 * DAY)  # 3 years and a month: erased
        _message(s, active, old, "vieux message")               # 13 months: goes
        _message(s, active, NOW - 330 * DAY, "message récent")  # 11 months: stays
        _message(s, silent, old, "message du client silencieux")
        s.add_all([
            Handoff(client_id=active.id, reason="request", detail="rappelez-moi", callback_phone="+33 6 11 11 11 11",
                    status="closed", opened_at=old, closed_at=old),
            Handoff(client_id=active.id, reason="request", detail="récent", status="closed",
                    opened_at=NOW - 10 * DAY, closed_at=NOW - 10 * DAY),
            ReviewItem(key="a", text="vieux truc", reason="fallback", predictions=[], first_seen=old, last_seen=old),
            ReviewItem(key="b", text="vieux appris", reason="fallback", predictions=[], first_seen=old, last_seen=old,
                       status="labelled", label="greet"),
            ReviewItem(key="c", text="truc récent", reason="fallback", predictions=[], first_seen=NOW, last_seen=NOW),
            Notification(chat_id=1001, text="envoyé il y a 4 mois", status="sent", created_at=NOW - 120 * DAY),
            Notification(chat_id=1001, text="en attente depuis 4 mois", status="pending", created_at=NOW - 120 * DAY),
            Notification(chat_id=1001, text="envoyé il y a 2 mois", status="sent", created_at=NOW - 60 * DAY),
            Lead(client_id=active.id, status="lost", updated_at=NOW - 3 * year - 5 * DAY, phone="+33 6 22 22 22 22"),
            Lead(client_id=active.id, status="won", updated_at=NOW - 4 * year),
            Lead(client_id=active.id, status="new", updated_at=NOW - 2 * year),
            Order(number="CMD-000777", client_id=silent.id, delivery_address="1 rue Vieille", total=Decimal("10.00"),
                  created_at=NOW - 3 * year - 60 * DAY),
        ])
    tracker = rasa_tracker_store(tmp_path / "tracker.db", {
        "1001": [old.timestamp(), (NOW - DAY).timestamp()], "1002": [(old - 800 * DAY).timestamp()] * 3})
    return engine, tracker


EXPECTED = {"messages": 2, "handoff_texts": 1, "review_items": 1, "notifications": 1, "buttons": 0, "leads": 1,
            "inactive_clients": 1, "conversation_events": 4}


def test_exactly_what_is_past_its_period_goes_and_the_dry_run_said_so(aged, monkeypatch):
    from crm import trackers

    engine, tracker = aged
    monkeypatch.setattr(retention, "BATCH", 1)  # every kind takes several batches
    with unit_of_work(engine) as s:
        assert retention.report(s, trackers.tracker_engine(tracker), NOW) == EXPECTED
    assert retention.purge(engine, tracker, NOW) == {**EXPECTED, "conversation_events": 1}, \
        "the silent client's 3 events went with their erasure, the old one of the other by age"
    with unit_of_work(engine) as s:
        assert retention.report(s, trackers.tracker_engine(tracker), NOW) == dict.fromkeys(EXPECTED, 0)
        assert [m.text for m in s.scalars(select(ConversationMessage))] == ["message récent"]
        assert sorted((h.detail, h.callback_phone) for h in s.scalars(select(Handoff))) == [("", None), ("récent", None)]
        assert sorted(r.text for r in s.scalars(select(ReviewItem))) == ["truc récent", "vieux appris"]
        assert sorted(n.text for n in s.scalars(select(Notification))) == ["en attente depuis 4 mois",
                                                                          "envoyé il y a 2 mois"]
        assert sorted(lead.status for lead in s.scalars(select(Lead))) == ["new", "won"]
        silent = s.scalar(select(Client).where(Client.first_name == "", Client.erased_at.is_not(None)))
        assert silent is not None and silent.phone is None, "the silent client, erased"
        order = s.scalar(select(Order))
        assert (order.client_id, order.total, order.delivery_address) == (silent.id, Decimal("10.00"), "")
        [run] = s.scalars(select(Purge)).all()
        assert run.counts["inactive_clients"] == 1
    assert tracker_senders(tracker) == ["1001"]


def test_with_the_clock_moved_forward_what_was_kept_goes_in_its_turn(aged):
    import time_machine

    engine, tracker = aged
    retention.purge(engine, tracker, NOW)
    with time_machine.travel(NOW + 400 * DAY, tick=False):
        counts = retention.purge(engine, tracker, None)
    assert counts["messages"] == 1 and counts["notifications"] == 1 and counts["review_items"] == 1
    assert counts["leads"] == 1, "the new lead, last changed 2 years before the first run: now over 3"
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count(ConversationMessage.id))) == 0
        assert s.scalar(select(func.count(Notification.id))) == 1, "a pending message is never purged"
        assert s.scalar(select(func.count(Purge.id))) == 2
        assert [lead.status for lead in s.scalars(select(Lead))] == ["won"], "a won lead is a client's, kept"


def test_the_daily_run_is_claimed_once_after_its_hour(engine):
    paris_3h = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)  # 03:00 in Paris, before run_at 04:00
    with unit_of_work(engine) as s:
        assert not retention.claim_today(s, paris_3h)
        assert retention.claim_today(s, paris_3h + timedelta(hours=1, minutes=1))
        assert not retention.claim_today(s, paris_3h + timedelta(hours=5)), "once a day"
        assert retention.claim_today(s, paris_3h + timedelta(days=1, hours=2)), "the next day"


def test_the_command_line_reports_a_dry_run_then_runs(tmp_path):
    from bot.cli import prepare_database
    from crm.db import engine_for
    from tests.test_settings_cli import cli

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    prepare_database(url, demo=False)
    with unit_of_work(engine_for(url)) as s:
        client = _client(s, 1001, datetime.now(timezone.utc))
        _message(s, client, datetime.now(timezone.utc) - 500 * DAY, "très vieux message")
        _message(s, client, datetime.now(timezone.utc), "nouveau")
    env = {"DEMO_DATA": "off", "RASA_TRACKER_DB": str(tmp_path / "absent.db")}
    report = cli("retention", "report", database_url=url, extra_env=env)
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert lines[0].startswith("Past their period now") and "  messages              12 months          1" in lines
    assert lines[-1] == "Daily run after 04:00 (desk time). No run yet."
    again = cli("retention", "report", database_url=url, extra_env=env)
    assert "  messages              12 months          1" in again.stdout.splitlines(), "a report deletes nothing"
    run = cli("retention", "run", database_url=url, extra_env=env)
    assert run.returncode == 0 and run.stdout.startswith("Deleted: messages 1, handoff texts 0"), run.stdout
    after = cli("retention", "report", database_url=url, extra_env=env).stdout.splitlines()
    assert "  messages              12 months          0" in after and after[-1].endswith("UTC: messages 1")


def test_every_kind_says_how_long_it_is_kept():
    assert set(retention.PERIOD_OF) == set(retention.KINDS)
    assert retention.kept_for("messages") == "12 months" and retention.kept_for("inactive_clients") == "3 years"
    assert retention.kept_for("buttons") == "3 months"
