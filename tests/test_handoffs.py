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
    client_wrote,
    manager_answered,
    rate_handoff,
    remind_overdue,
    request_callback,
    take_handoff,
    vip_handoff_due,
)
from crm.clients import ClientError, assign_account_manager
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


def later(minutes: int) -> datetime:
    return datetime.now(timezone.utc) + timedelta(minutes=minutes)


def sent_to(session, chat_id: int) -> list[str]:
    return [n.text for n in session.scalars(select(Notification).where(Notification.chat_id == chat_id)
                                            .order_by(Notification.id))]


def test_nobody_takes_it_in_time_client_told_once_managers_reminded(desk):
    session, client, _, _, _ = desk
    open_handoff(session, client, "request")
    assert remind_overdue(session) == 0
    assert remind_overdue(session, later(11)) == 1
    assert remind_overdue(session, later(12)) == 0, "once"
    assert any("patience" in text for text in sent_to(session, 1001))
    assert any("attend un conseiller depuis 10 min" in text for text in sent_to(session, 9001))
    assert any("waiting" in text or "attend" in text for text in sent_to(session, 9002))


def test_the_account_manager_is_told_first_then_everybody(desk):
    session, client, _, claire, john = desk
    assign_account_manager(session, client, 9002)
    handoff, _ = open_handoff(session, client, "request")
    assert sent_to(session, 9001) == [], "not Claire yet"
    assert "les autres conseillers seront prévenus dans 5 min" in sent_to(session, 9002)[0], "John is, with why"
    assert remind_overdue(session, later(4)) == 0
    assert remind_overdue(session, later(6)) == 1
    assert len(sent_to(session, 9001)) == 1 and len(sent_to(session, 9002)) == 1, "Claire now; John not twice"
    with pytest.raises(ClientError):
        assign_account_manager(session, client, 9003)  # a marketer is nobody's account manager


def test_a_removed_account_manager_does_not_hold_back_the_desk(desk):
    session, client, _, claire, _ = desk
    assign_account_manager(session, client, 9001)
    claire.active = False
    open_handoff(session, client, "request")
    assert len(sent_to(session, 9002)) == 1


def test_the_manager_is_reminded_when_the_client_waits_for_their_answer(desk):
    session, client, _, claire, _ = desk
    handoff, _ = open_handoff(session, client, "request")
    take_handoff(session, handoff.id, claire)
    client_wrote(session, handoff)
    assert remind_overdue(session, later(4)) == 0
    assert remind_overdue(session, later(6)) == 1
    assert remind_overdue(session, later(7)) == 0, "once per unanswered message"
    assert "Alice (n° %d) attend votre réponse" % handoff.id in sent_to(session, 9001)[-1]
    manager_answered(session, handoff)
    client_wrote(session, handoff)
    assert remind_overdue(session, later(6)) == 1, "a new wait, a new reminder"


def test_a_call_back_number_is_kept_and_the_desk_told(desk):
    session, client, _, _, _ = desk
    assert request_callback(session, client, "+33 6 12 34 56 78") is None, "no open handoff"
    handoff, _ = open_handoff(session, client, "request")
    assert request_callback(session, client, "12") is None, "not a phone number"
    handoff_back, text = request_callback(session, client, "+33 6 12 34 56 78")
    assert handoff_back.callback_phone == client.phone == "+33612345678"
    assert "+33612345678" in text
    assert any("rappelé au +33612345678" in t for t in sent_to(session, 9001))


def test_vip_goes_to_a_manager_only_when_open_and_not_just_handed_back(desk):
    session, client, _, claire, _ = desk
    wednesday_10h = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
    assert not vip_handoff_due(session, client, wednesday_10h), "not VIP"
    client.vip = True
    assert vip_handoff_due(session, client, wednesday_10h)
    assert not vip_handoff_due(session, client, wednesday_10h + timedelta(hours=10)), "desk closed"
    handoff, _ = open_handoff(session, client, "vip")
    close_handoff(session, handoff)
    handoff.closed_at = wednesday_10h - timedelta(minutes=10)
    assert not vip_handoff_due(session, client, wednesday_10h), "a manager just handed back"
    assert vip_handoff_due(session, client, wednesday_10h + timedelta(minutes=25))


def test_with_a_staff_group_notices_go_into_the_clients_topic(desk, monkeypatch):
    session, client, _, _, _ = desk
    monkeypatch.setenv("STAFF_CHAT_ID", "-1001234567890")
    handoff, _ = open_handoff(session, client, "request")
    rows = list(session.scalars(select(Notification).where(Notification.handoff_id == handoff.id)))
    assert [(n.chat_id, n.topic_client_id) for n in rows] == [(-1001234567890, client.id)]
    monkeypatch.setenv("STAFF_CHAT_ID", "12345")
    from crm.settings import SettingError, staff_chat
    with pytest.raises(SettingError, match="STAFF_CHAT_ID"):
        staff_chat()


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
