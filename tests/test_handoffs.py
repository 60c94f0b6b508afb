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
from crm.settings import install as install_settings
from crm.staff import add_staff
from tests.harness import at_once


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
    assert rate_handoff(session, 1001, handoff.id, 4) is None, "still open"
    close_handoff(session, handoff)
    assert rate_handoff(session, 1002, handoff.id, 4) is None, "another client"
    assert rate_handoff(session, 1001, handoff.id, 0) is None, "tampered"
    assert rate_handoff(session, 1001, handoff.id, 4).satisfaction == 4


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
    assert handoff.first_reply_at is None
    manager_answered(session, handoff)
    first_reply = handoff.first_reply_at
    assert first_reply is not None, "the desk's first reply time starts here"
    client_wrote(session, handoff)
    assert remind_overdue(session, later(6)) == 1, "a new wait, a new reminder"
    manager_answered(session, handoff)
    from crm.clock import aware
    assert aware(handoff.first_reply_at) == aware(first_reply), "the first reply only"


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
    install_settings(None)  # read again, with it
    handoff, _ = open_handoff(session, client, "request")
    rows = list(session.scalars(select(Notification).where(Notification.handoff_id == handoff.id)))
    assert [(n.chat_id, n.topic_client_id) for n in rows] == [(-1001234567890, client.id)]
    monkeypatch.setenv("STAFF_CHAT_ID", "12345")
    install_settings(None)  # read again, with it
    from crm.settings import SettingError, read
    with pytest.raises(SettingError, match="STAFF_CHAT_ID"):
        read()


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


def test_two_processes_reminding_the_desk_at_once_send_each_reminder_once(engine):
    from datetime import datetime, timezone

    from crm.models import Notification

    with unit_of_work(engine) as s:
        add_staff(s, 9201, "manager", "Claire Dubois")
        for i in range(10):
            client, _ = register_client(s, TelegramProfile(6100 + i, f"Client {i}"))
            open_handoff(s, client, "request")
    later = datetime.now(timezone.utc) + timedelta(hours=1)

    def remind(i):
        with unit_of_work(engine) as s:
            return remind_overdue(s, later)

    assert sum(at_once(2, remind)) == 10
    with unit_of_work(engine) as s:
        waiting = [n for n in s.scalars(select(Notification)) if n.text.startswith("Nos conseillers sont tous occupés")]
        reminders = [n for n in s.scalars(select(Notification)) if n.text.startswith("⏰ La conversation")]
    assert len(waiting) == 10 and len({n.chat_id for n in waiting}) == 10, "each client told once"
    assert len(reminders) == 10, "each manager reminder once"


def test_concurrent_first_messages_of_a_new_user_make_one_client(engine):
    from crm.models import Client

    def first_update(i):
        with unit_of_work(engine) as s:
            return register_client(s, TelegramProfile(7777, "Nouveau"))[1]

    results = at_once(6, first_update)
    assert all(isinstance(r, bool) for r in results), results
    assert results.count(True) == 1
    with unit_of_work(engine) as s:
        assert len(s.scalars(select(Client).where(Client.telegram_id == 7777)).all()) == 1


def test_concurrent_requests_open_one_handoff_and_a_second_done_is_refused(engine):
    with unit_of_work(engine) as s:
        add_staff(s, 9301, "manager", "Claire Dubois")
        register_client(s, TelegramProfile(7001, "Alice"))

    def request(i):
        with unit_of_work(engine) as s:
            client = s.scalar(select(Client).where(Client.telegram_id == 7001))
            return open_handoff(s, client, "request")[1]

    from crm.models import Client

    results = at_once(6, request)
    assert all(isinstance(r, bool) for r in results), results
    assert results.count(True) == 1
    with unit_of_work(engine) as s:
        [handoff] = s.scalars(select(Handoff).where(Handoff.status.in_(("queued", "active")))).all()
        close_handoff(s, handoff)
        assert handoff.status == "closed"
    with unit_of_work(engine) as s:
        with pytest.raises(HandoffError):
            close_handoff(s, s.get(Handoff, handoff.id))


def test_a_client_and_a_manager_cancelling_at_once_give_the_stock_back_once(engine):
    from crm.demo import load_demo_if_empty
    from crm.models import Order, Product
    from crm.orders import OrderError, cancel_order, place_order, set_order_status

    with unit_of_work(engine) as s:
        load_demo_if_empty(s)
        client, _ = register_client(s, TelegramProfile(7101, "Alice"))
        product = s.scalar(select(Product).where(Product.sku == "PER-LOG-MXM3"))
        stock = product.stock
        number = place_order(s, client, product.id, 3, "1 rue de la Paix, Paris").number

    def cancel(i):
        with unit_of_work(engine) as s:
            if i % 2:
                return set_order_status(s, number, "cancelled").status
            cancel_order(s, s.scalar(select(Order).where(Order.number == number)))
            return "cancelled"

    results = at_once(4, cancel)
    assert any(r == "cancelled" for r in results)
    assert all(r == "cancelled" or isinstance(r, OrderError) for r in results), results
    with unit_of_work(engine) as s:
        assert s.scalar(select(Product.stock).where(Product.sku == "PER-LOG-MXM3")) == stock


FRIDAY_17H30_PARIS = datetime(2026, 12, 4, 16, 30, tzinfo=timezone.utc)


def test_desk_time_counts_only_the_opening_hours():
    from crm.desk_hours import open_minutes

    monday_10h30 = datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc)
    assert open_minutes(FRIDAY_17H30_PARIS, monday_10h30) == 30 + 90, "Friday 17:30-18:00, Monday 9:00-10:30"
    assert open_minutes(datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc),
                        datetime(2026, 12, 6, 20, 0, tzinfo=timezone.utc)) == 0, "a weekend counts nothing"
    assert open_minutes(monday_10h30, FRIDAY_17H30_PARIS) == 0


@pytest.mark.time_machine(FRIDAY_17H30_PARIS, tick=False)
def test_a_request_nobody_takes_closes_after_desk_time_and_keeps_its_call_back(desk):
    from crm.handoffs import callback_handoff, expire_queued

    session, client, _, _, _ = desk
    handoff, _ = open_handoff(session, client, "request", "devis pour 40 postes")
    assert expire_queued(session, datetime(2026, 12, 4, 23, 0, tzinfo=timezone.utc)) == 0, "30 min of desk time"
    assert expire_queued(session, datetime(2026, 12, 7, 9, 29, tzinfo=timezone.utc)) == 0, "Monday 10:29: 119 min"
    assert remind_overdue(session, datetime(2026, 12, 7, 9, 31, tzinfo=timezone.utc)) >= 1
    session.refresh(handoff)
    assert (handoff.status, handoff.closed_by, handoff.detail) == ("closed", "expired", "devis pour 40 postes")
    told = sent_to(session, 1001)
    assert told[-1].startswith("Désolé : aucun conseiller n'a pu prendre votre demande à temps.")
    assert not any("patience" in text for text in told), "closed, so not also told to wait"
    assert any(text.startswith(f"⌛ Conversation n° {handoff.id} (Alice) fermée") for text in sent_to(session, 9001))
    assert expire_queued(session, datetime(2026, 12, 8, 9, 0, tzinfo=timezone.utc)) == 0, "once"
    with time_machine_at(datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)):
        assert request_callback(session, client, "06 12 34 56 78")[0].id == handoff.id
    with time_machine_at(datetime(2026, 12, 15, 10, 0, tzinfo=timezone.utc)):
        assert callback_handoff(session, client) is None, "a week later the offer has lapsed"


def time_machine_at(instant):
    import time_machine

    return time_machine.travel(instant, tick=False)


def test_queue_timeout_zero_never_closes(desk, monkeypatch):
    from crm import desk_hours
    from crm.handoffs import expire_queued

    session, client, _, _, _ = desk
    settings = {**desk_hours.desk_settings(), "queue_timeout_minutes": 0}
    monkeypatch.setattr("crm.handoffs.desk_settings", lambda: settings)
    open_handoff(session, client, "request")
    assert expire_queued(session, datetime.now(timezone.utc) + timedelta(days=30)) == 0


def test_a_manager_leaving_the_desk_puts_back_what_they_held_and_what_only_they_heard_of(desk):
    from crm.clients import assign_account_manager
    from crm.handoffs import dismiss_staff

    session, client, other, claire, john = desk
    held, _ = open_handoff(session, client, "request")
    take_handoff(session, held.id, claire)
    assign_account_manager(session, other, 9001)
    waiting, _ = open_handoff(session, other, "request")
    assert not waiting.notified_all, "only Claire, Bob's account manager, heard of it"
    john_before = len(sent_to(session, 9002))
    dismiss_staff(session, 9001)
    session.refresh(held)
    assert (held.status, held.manager_id) == ("queued", None)
    assert sent_to(session, 1001)[-1].startswith("Votre conseiller n'est plus disponible.")
    john_now = sent_to(session, 9002)[john_before:]
    assert any(t.startswith(f"🔔 Conversation à prendre (n° {held.id})") and "De retour dans la file" in t
               for t in john_now)
    assert any(t.startswith(f"🔔 Conversation à prendre (n° {waiting.id})") for t in john_now), \
        "Bob's request, which only Claire had heard of"
    assert take_handoff(session, held.id, john).manager_id == john.id


def test_the_card_shows_the_latest_notes_shortened_and_counts_the_others(desk):
    from crm.client_file import client_card
    from crm.handoffs import add_note

    session, client, _, claire, _ = desk
    for i in range(6):
        add_note(session, client, claire, f"note {i} " + "x" * 3990)
    card = client_card(session, client, "fr")
    assert "… et 3 note(s) plus ancienne(s)" in card
    assert "note 5 " in card and "note 3 " in card and "note 2 " not in card
    assert len(card) < 1500, "a desk notice with the card always fits in one message"
    assert "… and 3 older note(s)" in client_card(session, client, "en")
