"""Desk rules in the CRM: one open handoff per client, first manager wins, opening hours."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm.clients import TelegramProfile, register_client
from crm.db import unit_of_work
from crm.handoffs import (
    HandoffError,
    close_handoff,
    next_opening,
    open_handoff,
    queue,
    rate_handoff,
    take_handoff,
    waiting_too_long,
)
from crm.models import Handoff, Notification, Staff
from crm.staff import add_staff


@pytest.fixture
def desk(session):
    client, _ = register_client(session, TelegramProfile(1001, "Alice"))
    other, _ = register_client(session, TelegramProfile(1002, "Bob"))
    claire = add_staff(session, 9001, "manager", "Claire")
    john = add_staff(session, 9002, "admin", "John")
    add_staff(session, 9003, "marketer", "Hugo")
    return session, client, other, claire, john


def test_one_open_handoff_per_client_and_managers_notified(desk):
    session, client, _, _, _ = desk
    handoff, created = open_handoff(session, client, "request")
    again, created_again = open_handoff(session, client, "fallback")
    assert created and not created_again and again.id == handoff.id
    notified = {n.chat_id for n in session.scalars(select(Notification).where(Notification.handoff_id == handoff.id))}
    assert notified == {9001, 9002}, "managers and admins, never marketers"
    with pytest.raises(HandoffError):
        open_handoff(session, client, "gossip")


def test_queue_is_oldest_first_and_taking_is_exclusive(desk):
    session, client, other, claire, john = desk
    first, _ = open_handoff(session, client, "request")
    second, _ = open_handoff(session, other, "request")
    assert [h.id for h in queue(session)] == [first.id, second.id]
    take_handoff(session, first.id, claire)
    with pytest.raises(HandoffError, match="taken"):
        take_handoff(session, first.id, john)
    close_handoff(session, first)
    with pytest.raises(HandoffError, match="closed"):
        take_handoff(session, first.id, john)
    with pytest.raises(HandoffError):
        take_handoff(session, 424242, john)
    assert [h.id for h in queue(session)] == [second.id]


def test_satisfaction_only_from_the_client_after_closing(desk):
    session, client, _, claire, _ = desk
    handoff, _ = open_handoff(session, client, "request")
    take_handoff(session, handoff.id, claire)
    assert rate_handoff(session, 1001, f"hrate:{handoff.id}:4") is None, "still open"
    close_handoff(session, handoff)
    assert rate_handoff(session, 1002, f"hrate:{handoff.id}:4") is None, "another client"
    assert rate_handoff(session, 1001, f"hrate:{handoff.id}:0") is None, "tampered"
    assert rate_handoff(session, 1001, f"hrate:{handoff.id}:4").satisfaction == 4


def test_waiting_too_long(desk):
    session, client, _, _, _ = desk
    handoff, _ = open_handoff(session, client, "request")
    assert waiting_too_long(session) == []
    assert waiting_too_long(session, datetime.now(timezone.utc) + timedelta(minutes=11)) == [handoff]


PARIS_WEDNESDAY_10H = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)  # 10:00 in Paris


@pytest.mark.parametrize("now,expected", [
    (PARIS_WEDNESDAY_10H, None),
    (PARIS_WEDNESDAY_10H + timedelta(hours=9), "2026-12-03 09:00"),   # Wednesday 19:00 -> Thursday 9:00
    (PARIS_WEDNESDAY_10H + timedelta(days=3), "2026-12-07 09:00"),    # Saturday -> Monday
    (PARIS_WEDNESDAY_10H - timedelta(hours=2), "2026-12-02 09:00"),   # Wednesday 8:00 -> 9:00
])
def test_opening_hours_in_paris(now, expected):
    opening = next_opening(now)
    assert (opening.strftime("%Y-%m-%d %H:%M") if opening else None) == expected


def test_two_managers_racing_for_a_conversation(engine):
    with unit_of_work(engine) as s:
        client, _ = register_client(s, TelegramProfile(1001, "Alice"))
        for i in range(6):
            add_staff(s, 9100 + i, "manager", f"Manager {i}")
        handoff_id = open_handoff(s, client, "request")[0].id
    results, barrier = [], threading.Barrier(6)

    def take(i):
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                manager = s.scalar(select(Staff).where(Staff.telegram_id == 9100 + i))
                take_handoff(s, handoff_id, manager)
            results.append(i)
        except HandoffError:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 1
    with unit_of_work(engine) as s:
        assert s.get(Handoff, handoff_id).manager_id is not None
