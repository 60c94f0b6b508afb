"""Leads (answers, score rules, status, export) and meetings (slots, booking races, moving,
cancelling, reminders, invitations) in the CRM, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm.clients import TelegramProfile, assign_account_manager, register_client
from crm.db import unit_of_work
from crm.leads import (
    LeadError,
    export_leads_csv,
    lead_card,
    parse_contact,
    save_lead,
    score_lead,
    set_lead_status,
)
from crm.meetings import MeetingError, SlotTaken, book, book_in_turn, cancel, free_slots, grid, ics, upcoming
from crm.models import Client, Lead, Meeting, Notification
from crm.outbox import pending
from crm.staff import add_staff
from tests.harness import at_once

# Wednesday 2 December 2026, 8:00 in Paris: the desk (9:00-18:00 Monday to Friday) opens at 9:00.
WEDNESDAY_8H = datetime(2026, 12, 2, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def people(session):
    alice, _ = register_client(session, TelegramProfile(1001, "Alice", "Martin"))
    bob, _ = register_client(session, TelegramProfile(1002, "Bob"))
    claire = add_staff(session, 9001, "manager", "Claire Dubois")
    return session, alice, bob, claire


@pytest.mark.parametrize("answers,score", [
    ({}, 0),
    ({"need": "40 postes"}, 15),
    ({"budget_eur": 25000, "role": "decision_maker", "need": "40 postes", "timeline": "now", "size": "250+"}, 100),
    ({"budget_eur": 5000, "role": "influencer", "timeline": "3m", "size": "10-49"}, 50),
    ({"budget_eur": 999, "role": "researcher", "timeline": "later", "size": "1-9"}, 0),
    ({"budget_eur": 1000}, 10),
])
def test_score_rules_from_company_yml(answers, score):
    assert score_lead(Lead(**answers))[0] == score


def test_a_lead_is_kept_scored_and_moves_through_its_statuses(people):
    session, alice, _, _ = people
    partial = save_lead(session, alice, {"company": "Dupont SARL", "need": "40 chaises"}, complete=False)
    assert (partial.status, partial.score) == ("new", 15)
    assert alice.company == "Dupont SARL", "what the lead says fills the client file"
    again = save_lead(session, alice, {"budget_eur": 8000, "timeline": "3m", "email": "a@dupont.fr"}, complete=True)
    assert again.id == partial.id, "the open lead is completed, not duplicated"
    assert (again.status, again.score, again.company) == ("qualified", 50, "Dupont SARL")
    assert again.score_details == "budget +20, need +15, timeline +15"
    hot = save_lead(session, alice, {"role": "decision_maker"}, complete=True)
    assert (hot.status, hot.score) == ("hot", 70)
    set_lead_status(session, hot.id, "contacted")
    assert save_lead(session, alice, {"size": "250+"}, complete=True).status == "contacted"
    set_lead_status(session, hot.id, "won")
    assert save_lead(session, alice, {"need": "encore"}, complete=False).id != hot.id, "a won lead is closed"
    with pytest.raises(LeadError):
        set_lead_status(session, hot.id, "maybe")
    with pytest.raises(LeadError):
        set_lead_status(session, 424242, "won")
    from sqlalchemy import select

    from crm.models import LeadEvent
    history = [e.status for e in session.scalars(select(LeadEvent).where(LeadEvent.lead_id == hot.id)
                                                 .order_by(LeadEvent.id))]
    assert history == ["new", "qualified", "hot", "contacted", "won"], "each status once, in order (the reports)"


def test_invalid_phone_numbers_and_emails_are_refused():
    assert parse_contact("06 12 34 56 78") == ("0612345678", None)
    assert parse_contact("+44 20 7946 0958 or ceo@acme.co.uk") == ("+442079460958", "ceo@acme.co.uk")
    for bad in ("123", "jean.dupont@", "@gmail.com", "appelez-moi", "06 12", "jean@dupont"):
        assert parse_contact(bad) == (None, None), bad


def test_lead_card_and_csv_export(people):
    session, alice, bob, _ = people
    lead = save_lead(session, alice, {"company": "Dupont, Fils & Cie", "need": "40 chaises,\n12 bureaux",
                                      "budget_eur": 25000, "budget_text": "25 000 €", "role": "decision_maker",
                                      "timeline": "now", "phone": "0612345678"}, complete=True)
    save_lead(session, bob, {"need": "une imprimante"}, complete=False)
    card = lead_card(session, lead, "fr")
    assert card.startswith(f"🎯 Prospect n° {lead.id} — score 85/100 — chaud")
    assert "Rôle dans la décision : décide" in card and "Taille : non renseigné" in card
    assert "Lead no." in lead_card(session, lead, "en")
    rows = list(csv.DictReader(io.StringIO(export_leads_csv(session))))
    assert [r["client_name"] for r in rows] == ["Alice Martin", "Bob"], "best score first"
    assert rows[0]["company"] == "Dupont, Fils & Cie" and rows[0]["need"] == "40 chaises,\n12 bureaux"
    assert rows[0]["score"] == "85" and rows[0]["phone"] == "0612345678" and rows[1]["budget_eur"] == ""


def test_the_leads_export_never_hands_a_spreadsheet_a_formula(people):
    session, alice, _, _ = people
    save_lead(session, alice, {"company": '=HYPERLINK("https://evil.example","Cliquez")', "need": "+1+cmd|' /C calc'!A0",
                               "sector": "@SUM(A1:A9)", "budget_text": "-2+3", "phone": "+33612345678"}, complete=True)
    [row] = list(csv.DictReader(io.StringIO(export_leads_csv(session))))
    assert row["company"] == '\'=HYPERLINK("https://evil.example","Cliquez")'
    assert (row["need"], row["sector"], row["budget_text"]) == ("'+1+cmd|' /C calc'!A0", "'@SUM(A1:A9)", "'-2+3")
    assert row["phone"] == "'+33612345678", "shown as +33612345678, read as text"
    assert row["score"].isdigit() and row["client_name"] == "Alice Martin", "numbers and plain text untouched"


def test_slots_are_inside_opening_hours_and_skip_booked_ones(people):
    session, alice, bob, claire = people
    slots = grid(WEDNESDAY_8H)
    assert slots[0] == datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc), "10:00 Paris: 2 h notice after 8:00"
    paris = [s.astimezone(timezone(timedelta(hours=1))) for s in slots]
    assert all(p.weekday() < 5 and 9 <= p.hour < 18 for p in paris), "weekdays, 9:00-18:00"
    first, second = free_slots(session, alice, WEDNESDAY_8H)[:2]
    book(session, alice, first, now=WEDNESDAY_8H)
    assert free_slots(session, bob, WEDNESDAY_8H)[0] == second, "one manager: a booked slot is gone"
    add_staff(session, 9002, "manager", "John Smith")
    assert free_slots(session, bob, WEDNESDAY_8H)[0] == first, "two managers: still one free"


def test_an_account_managers_client_books_with_that_manager(people):
    session, alice, _, claire = people
    john = add_staff(session, 9002, "admin", "John Smith")
    assign_account_manager(session, alice, john.telegram_id)
    meeting = book(session, alice, free_slots(session, alice, WEDNESDAY_8H)[0], now=WEDNESDAY_8H)
    assert meeting.manager_id == john.id


def test_booking_sends_invitations_and_schedules_reminders_and_moving_cancels_them(people):
    session, alice, _, claire = people
    slots = free_slots(session, alice, WEDNESDAY_8H, count=100)
    wednesday_10h = slots[0]
    thursday_10h = next(s for s in slots if s == datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc))
    meeting = book(session, alice, thursday_10h, now=WEDNESDAY_8H)
    rows = list(session.scalars(select(Notification).where(Notification.meeting_id == meeting.id)))
    invitations = [n for n in rows if n.attachment == "ics"]
    assert {n.chat_id for n in invitations} == {1001, 9001}
    reminders = [n for n in rows if n.not_before is not None]
    assert len(reminders) == 4, "the day before and an hour before, to the client and the manager"
    assert sorted({r.not_before.replace(tzinfo=timezone.utc) for r in reminders}) == [
        datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc), datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)]
    assert not {n.id for n in pending(session, limit=100, now=WEDNESDAY_8H)} & {r.id for r in reminders}
    assert {n.id for n in pending(session, limit=100, now=datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc))} & {
        r.id for r in reminders}, "the day-before reminders fall due on Wednesday at 10:00 Paris"
    client_reminder = next(r for r in reminders if r.chat_id == 1001)
    assert [b["title"] for b in client_reminder.buttons] == ["Déplacer", "Annuler"]

    moved = book(session, alice, wednesday_10h, replacing=meeting.id, now=WEDNESDAY_8H)
    session.refresh(meeting)
    assert (meeting.status, meeting.slot_key) == ("moved", None)
    assert {r.status for r in reminders} == {"cancelled"}, "the old meeting's reminders are dropped"
    new_reminders = list(session.scalars(select(Notification).where(
        Notification.meeting_id == moved.id, Notification.not_before.is_not(None))))
    assert {r.not_before.replace(tzinfo=timezone.utc) for r in new_reminders} == {
        datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)}, "in 2 hours: the day-before reminder is already past"
    assert upcoming(session, alice, WEDNESDAY_8H) == [moved]
    assert thursday_10h in free_slots(session, alice, WEDNESDAY_8H, count=100), "the old slot is free again"
    invitation = ics(session, moved)
    assert "BEGIN:VEVENT" in invitation and "DTSTART:20261202T090000Z" in invitation
    assert "DTEND:20261202T093000Z" in invitation and "STATUS:CONFIRMED" in invitation

    cancel(session, alice, moved.id)
    assert moved.status == "cancelled" and upcoming(session, alice, WEDNESDAY_8H) == []
    assert any("a annulé son rendez-vous" in n.text for n in session.scalars(
        select(Notification).where(Notification.chat_id == 9001)))


def test_tampered_slots_and_meetings_change_nothing(people):
    session, alice, bob, _ = people
    with pytest.raises(SlotTaken):
        book(session, alice, datetime(2026, 12, 2, 9, 7, tzinfo=timezone.utc), now=WEDNESDAY_8H)  # off the grid
    with pytest.raises(SlotTaken):
        book(session, alice, datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc), now=WEDNESDAY_8H)  # a Saturday
    meeting = book(session, alice, free_slots(session, alice, WEDNESDAY_8H)[0], now=WEDNESDAY_8H)
    with pytest.raises(MeetingError):
        cancel(session, bob, meeting.id)  # another client's meeting
    with pytest.raises(MeetingError):
        book(session, bob, free_slots(session, bob, WEDNESDAY_8H)[0], replacing=meeting.id, now=WEDNESDAY_8H)
    assert meeting.status == "booked"


def test_two_clients_racing_for_the_last_slot_only_one_gets_it(engine):
    with unit_of_work(engine) as s:
        add_staff(s, 9001, "manager", "Claire Dubois")
        for i in range(6):
            register_client(s, TelegramProfile(2000 + i, f"Client {i}"))
        slot = free_slots(s, s.scalar(select(Client)), WEDNESDAY_8H)[0]
    results, barrier = [], threading.Barrier(6)

    def run(work):
        with unit_of_work(engine) as s:
            return work(s)

    def race(i):
        barrier.wait()
        try:
            book_in_turn(run, lambda s: book(s, s.scalar(select(Client).where(Client.telegram_id == 2000 + i)),
                                             slot, now=WEDNESDAY_8H))
            results.append(i)
        except SlotTaken:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1
    with unit_of_work(engine) as s:
        assert len(s.scalars(select(Meeting).where(Meeting.status == "booked")).all()) == 1


def test_one_upcoming_meeting_per_client_a_second_booking_must_move_it(people):
    from crm.meetings import AlreadyBooked

    session, alice, _, _ = people
    slots = free_slots(session, alice, WEDNESDAY_8H, count=100)
    first = book(session, alice, slots[0], now=WEDNESDAY_8H)
    with pytest.raises(AlreadyBooked) as already:  # an old slot button, or a manager's proposal
        book(session, alice, slots[3], now=WEDNESDAY_8H)
    assert already.value.meeting_id == first.id
    assert upcoming(session, alice, WEDNESDAY_8H) == [first], "nothing booked twice"
    moved = book(session, alice, slots[3], replacing=first.id, now=WEDNESDAY_8H)
    assert upcoming(session, alice, WEDNESDAY_8H) == [moved]
    after = moved.starts_at + timedelta(hours=1)  # once it has taken place, a new one may be booked
    assert book(session, alice, free_slots(session, alice, after)[0], now=after).status == "booked"


def test_one_client_booking_two_slots_at_once_gets_one(engine):
    from crm.meetings import AlreadyBooked

    with unit_of_work(engine) as s:
        for i in range(3):
            add_staff(s, 9001 + i, "manager", f"Manager {i}")
        alice, _ = register_client(s, TelegramProfile(1001, "Alice"))
        slots = free_slots(s, alice, WEDNESDAY_8H, count=4)

    def booking(i):
        with unit_of_work(engine) as s:
            return book(s, s.scalar(select(Client).where(Client.telegram_id == 1001)), slots[i], now=WEDNESDAY_8H).id

    outcomes = at_once(4, booking)
    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, (int, AlreadyBooked)) for o in outcomes), outcomes
    with unit_of_work(engine) as s:
        assert len(s.scalars(select(Meeting).where(Meeting.status == "booked")).all()) == 1
