"""Every time rule at the instants that catch clock bugs: the night of the spring DST switch, New
Year's Eve, just after the desk closes on a Friday, a leap day, and the autumn fold. The clock is
moved with time-machine, or `now` is passed: nothing here depends on the machine's calendar."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from crm import broadcasts, clock, desk_hours
from crm.broadcasts import BroadcastError
from crm.clients import TelegramProfile, register_client
from crm.consent import set_consent
from crm.handoffs import hand_over
from crm.meetings import book, free_slots, grid
from crm.models import Notification, Order
from crm.promotions import add_promotion, running_promotions
from crm.settings import ROOT
from crm.settings import install as install_settings
from crm.staff import add_staff

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    """A wall-clock time in Paris, as the UTC instant it is."""
    return datetime(*args, tzinfo=PARIS).astimezone(timezone.utc)


SATURDAY_BEFORE_SPRING_SWITCH = paris(2027, 3, 27, 23, 45)   # clocks jump 02:00 -> 03:00 that night
NEW_YEARS_EVE = paris(2026, 12, 31, 23, 30)
FRIDAY_AFTER_CLOSING = paris(2026, 12, 4, 18, 55)            # the desk closes at 18:00
LEAP_DAY = paris(2028, 2, 29, 10, 0)                          # a Tuesday


@pytest.fixture
def round_the_clock(tmp_path, monkeypatch):
    """company.yml with the desk open every day, all day (as the end-to-end tests run it)."""
    profile = yaml.safe_load((ROOT / "company.yml").read_text(encoding="utf-8"))
    profile["desk"]["hours"] = {day: "00:00-24:00" for day in desk_hours.DAYS}
    path = tmp_path / "company.yml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("COMPANY_PROFILE", str(path))
    install_settings(None)  # read again, with it


# --- the desk: open or closed, and when it reopens -----------------------------------------------


@pytest.mark.parametrize("instant,reopens", [
    (SATURDAY_BEFORE_SPRING_SWITCH, paris(2027, 3, 29, 9, 0)),
    (NEW_YEARS_EVE, paris(2027, 1, 1, 9, 0)),
    (FRIDAY_AFTER_CLOSING, paris(2026, 12, 7, 9, 0)),
    (paris(2026, 12, 4, 17, 59), None),
    (paris(2026, 12, 4, 18, 0), paris(2026, 12, 7, 9, 0)),
    (LEAP_DAY, None),
    (paris(2028, 2, 29, 8, 59), paris(2028, 2, 29, 9, 0)),
    (paris(2027, 3, 29, 9, 0), None),   # the first Monday of summer time: 9:00 is 07:00 UTC
    (paris(2026, 10, 26, 8, 30), paris(2026, 10, 26, 9, 0)),  # the first Monday of winter time: 08:00 UTC
])
def test_the_desk_is_open_by_its_own_wall_clock(instant, reopens):
    opening = desk_hours.next_opening(instant)
    assert (opening.astimezone(timezone.utc) if opening else None) == reopens
    assert desk_hours.is_open(instant) is (reopens is None)


@pytest.mark.parametrize("instant,fr,en", [
    (SATURDAY_BEFORE_SPRING_SWITCH, "lundi 29 mars à 9 h 00", "Monday 29 March at 09:00"),
    (NEW_YEARS_EVE, "vendredi 1 janvier à 9 h 00", "Friday 1 January at 09:00"),
    (FRIDAY_AFTER_CLOSING, "lundi 7 décembre à 9 h 00", "Monday 7 December at 09:00"),
])
def test_a_client_is_told_when_the_desk_reopens_in_words(session, time_machine, instant, fr, en):
    time_machine.move_to(instant, tick=False)
    alice, _ = register_client(session, TelegramProfile(4001, "Alice"))
    bob, _ = register_client(session, TelegramProfile(4002, "Bob", language_code="en"))
    told = hand_over(session, alice, "request", "fr")
    assert told.startswith("Nos conseillers sont absents pour le moment.") and f"dès la réouverture, {fr}." in told
    assert f"when we reopen, on {en}." in hand_over(session, bob, "request", "en")


@pytest.mark.time_machine(LEAP_DAY, tick=False)
def test_on_a_leap_day_the_desk_is_open_and_the_client_is_passed_on(session):
    alice, _ = register_client(session, TelegramProfile(4001, "Alice"))
    assert hand_over(session, alice, "request", "fr").startswith("Je transmets votre demande à un conseiller")


# --- meeting slots and reminders -----------------------------------------------------------------


def test_after_friday_closing_the_first_slots_are_on_monday_morning():
    slots = grid(FRIDAY_AFTER_CLOSING)
    assert slots[:3] == [paris(2026, 12, 7, 9, 0), paris(2026, 12, 7, 9, 30), paris(2026, 12, 7, 10, 0)]


def test_slots_keep_their_wall_clock_hour_across_the_spring_switch():
    slots = grid(SATURDAY_BEFORE_SPRING_SWITCH)
    assert slots[0] == datetime(2027, 3, 29, 7, 0, tzinfo=timezone.utc), "Monday 9:00 in summer time"
    assert {s.astimezone(PARIS).strftime("%H:%M") for s in slots} == {
        f"{h:02d}:{m:02d}" for h in range(9, 18) for m in (0, 30)}


@pytest.mark.usefixtures("round_the_clock")
def test_no_slot_inside_the_spring_gap_and_none_twice_in_the_autumn_fold():
    """Booked on the Saturday: on 28 March 2027 clocks jump from 02:00 to 03:00; on 25 October
    2026 they go back from 03:00 to 02:00, so 02:00-03:00 happens twice."""
    spring = [s for s in grid(paris(2027, 3, 27, 12, 0)) if s.astimezone(PARIS).date() == date(2027, 3, 28)]
    walls = [s.astimezone(PARIS).strftime("%H:%M") for s in spring]
    assert "02:00" not in walls and "02:30" not in walls and len(spring) == 46, "23 hours that day"
    assert walls[:4] == ["00:00", "00:30", "01:00", "01:30"] and walls[4] == "03:00"
    assert spring[4] - spring[3] == timedelta(minutes=30), "01:30 CET and 03:00 CEST are 30 minutes apart"

    autumn = [s for s in grid(paris(2026, 10, 24, 12, 0)) if s.astimezone(PARIS).date() == date(2026, 10, 25)]
    walls = [s.astimezone(PARIS).strftime("%H:%M") for s in autumn]
    assert len(walls) == len(set(walls)) == 48, "each wall-clock time of the 25-hour day offered once"
    assert all(b > a for a, b in zip(autumn, autumn[1:])), "in time order, no instant twice"


@pytest.mark.usefixtures("round_the_clock")
def test_a_typed_slot_inside_the_gap_does_not_exist(session):
    alice, _ = register_client(session, TelegramProfile(4001, "Alice"))
    add_staff(session, 9001, "manager", "Claire Dubois")
    gap = datetime(2027, 3, 28, 2, 30)  # what a tampered button could carry: 02:30 "Paris"
    assert all(s.astimezone(PARIS).replace(tzinfo=None) != gap for s in free_slots(
        session, alice, SATURDAY_BEFORE_SPRING_SWITCH, count=500))


def test_reminders_fall_due_at_the_right_utc_instant_across_the_switch(session):
    alice, _ = register_client(session, TelegramProfile(4001, "Alice"))
    add_staff(session, 9001, "manager", "Claire Dubois")
    monday_10h = paris(2027, 3, 29, 10, 0)
    assert monday_10h == datetime(2027, 3, 29, 8, 0, tzinfo=timezone.utc)
    meeting = book(session, alice, monday_10h, now=SATURDAY_BEFORE_SPRING_SWITCH)
    due = sorted({n.not_before.replace(tzinfo=timezone.utc) for n in session.scalars(
        select(Notification).where(Notification.meeting_id == meeting.id, Notification.not_before.is_not(None)))})
    assert due == [datetime(2027, 3, 28, 8, 0, tzinfo=timezone.utc), datetime(2027, 3, 29, 7, 0, tzinfo=timezone.utc)]
    invitation = next(n for n in session.scalars(select(Notification).where(
        Notification.meeting_id == meeting.id, Notification.chat_id == 4001)))
    assert "lundi 29 mars à 10 h 00" in invitation.text


@pytest.mark.time_machine(NEW_YEARS_EVE, tick=False)
def test_the_clock_is_read_where_no_now_is_given(session):
    alice, _ = register_client(session, TelegramProfile(4001, "Alice"))
    add_staff(session, 9001, "manager", "Claire Dubois")
    assert free_slots(session, alice)[0] == paris(2027, 1, 1, 9, 0)
    assert clock.now() == NEW_YEARS_EVE and desk_hours.today() == date(2026, 12, 31)
    assert alice.first_seen.replace(tzinfo=timezone.utc) == NEW_YEARS_EVE, "column defaults read the clock too"


# --- broadcasts at a time that does not exist, and segments by calendar days ---------------------


def test_a_broadcast_for_a_time_that_does_not_exist_is_refused_with_the_reason():
    with pytest.raises(BroadcastError) as refused:
        broadcasts.send_time("28/03/2027 02:30", now=SATURDAY_BEFORE_SPRING_SWITCH)
    assert refused.value.text("fr") == (
        "le 28/03/2027 02:30 n'existe pas en heure de Europe/Paris : les horloges passent de 02:00 à 03:00 "
        "cette nuit-là (heure d'été). Choisissez une autre heure, par exemple 03:00.")
    assert "does not exist in Europe/Paris time: clocks jump from 02:00 to 03:00" in refused.value.text("en")
    with pytest.raises(BroadcastError, match="does not exist"):
        broadcasts.send_time("2027-03-28 02:30", now=SATURDAY_BEFORE_SPRING_SWITCH)
    assert broadcasts.send_time("28/03/2027 03:00", now=SATURDAY_BEFORE_SPRING_SWITCH) == datetime(
        2027, 3, 28, 1, 0, tzinfo=timezone.utc)
    assert broadcasts.send_time("28/03/2027 01:59", now=SATURDAY_BEFORE_SPRING_SWITCH) == datetime(
        2027, 3, 28, 0, 59, tzinfo=timezone.utc)


def test_a_broadcast_time_is_read_on_the_desks_clock():
    assert broadcasts.send_time("01/01/2027 00:00", now=NEW_YEARS_EVE) == datetime(2026, 12, 31, 23, 0,
                                                                                  tzinfo=timezone.utc)
    assert broadcasts.send_time("25/10/2026 02:30", now=paris(2026, 10, 1, 9, 0)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=timezone.utc), "the autumn fold: its first occurrence"
    with pytest.raises(BroadcastError, match="in the past") as past:
        broadcasts.send_time("31/12/2026 23:00", now=NEW_YEARS_EVE)
    assert "for example 01/01/2027 09:30" in str(past.value), "the example is tomorrow, on the desk's calendar"
    for bad in ("29/02/2027 10:00", "demain", "", "31/12/2026", "32/01/2027 10:00"):
        with pytest.raises(BroadcastError, match="did not understand"):
            broadcasts.send_time(bad, now=NEW_YEARS_EVE)
    assert broadcasts.send_time("29/02/2028 10:00", now=NEW_YEARS_EVE) == LEAP_DAY


def _client_with_last_order(session, telegram_id: int, ordered_at: datetime):
    client, _ = register_client(session, TelegramProfile(telegram_id, f"C{telegram_id}"))
    set_consent(session, client, True, "command")
    session.add(Order(client_id=client.id, delivery_address="x", total=Decimal(1), created_at=ordered_at))
    session.flush()
    return client


@pytest.mark.parametrize("now,ordered_at", [
    (LEAP_DAY, paris(2028, 1, 30, 23, 59)),                  # 30 calendar days before the leap day
    (paris(2027, 4, 26, 0, 5), paris(2027, 3, 27, 12, 0)),   # 30 days, one of them 23 hours long
    (paris(2027, 1, 30, 0, 10), NEW_YEARS_EVE),               # 30 days from New Year's Eve at 23:30
])
def test_last_order_counts_calendar_days_in_the_desks_time_zone(session, now, ordered_at):
    client = _client_with_last_order(session, 5001, ordered_at)
    found = {spec: client.id in broadcasts.segment_client_ids(session, spec, now) for spec in (
        "last_order>30", "last_order>=30", "last_order<30", "last_order<=30", "last_order>29", "last_order<31")}
    assert found == {"last_order>30": False, "last_order>=30": True, "last_order<30": False,
                     "last_order<=30": True, "last_order>29": True, "last_order<31": True}


# --- promotions by the desk's calendar day -------------------------------------------------------


def test_a_promotion_until_31_december_ends_at_midnight_in_paris(session, time_machine):
    add_promotion(session, title_fr="Fin d'année", title_en="Year end", discount_percent=Decimal(10),
                  starts_on=date(2026, 12, 1), ends_on=date(2026, 12, 31))
    add_promotion(session, title_fr="Bissextile", title_en="Leap", discount_percent=Decimal(10),
                  starts_on=date(2028, 2, 29), ends_on=date(2028, 2, 29))

    def running(at):
        time_machine.move_to(at, tick=False)
        return {p.title_en for p in running_promotions(session)} & {"Year end", "Leap"}

    assert running(NEW_YEARS_EVE) == {"Year end"}
    assert running(paris(2027, 1, 1, 0, 0)) == set(), "already 2027 in Paris (23:00 UTC)"
    assert running(LEAP_DAY) == {"Leap"}
    assert running(paris(2028, 3, 1, 0, 0)) == set()


def test_wall_clock_arithmetic():
    assert clock.local_instant(date(2027, 3, 28), time(3, 0), PARIS) == datetime(2027, 3, 28, 1, 0, tzinfo=timezone.utc)
    with pytest.raises(clock.NonexistentTime):
        clock.local_instant(date(2027, 3, 28), time(2, 30), PARIS)
    assert clock.clock_instant(date(2027, 3, 28), "02:30", PARIS) == datetime(2027, 3, 28, 1, 0, tzinfo=timezone.utc)
    assert clock.clock_instant(date(2026, 12, 31), "24:00", PARIS) == paris(2027, 1, 1, 0, 0)
    assert clock.start_of_day(date(2028, 2, 29), PARIS) == datetime(2028, 2, 28, 23, 0, tzinfo=timezone.utc)
    assert clock.today(PARIS, NEW_YEARS_EVE) == date(2026, 12, 31)
    assert clock.today(PARIS, paris(2027, 1, 1, 0, 30)) == date(2027, 1, 1)
