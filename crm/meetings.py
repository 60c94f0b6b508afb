"""Meetings with a manager: free slots inside the desk's opening hours, booking (two clients
racing for one slot: one gets it), moving, cancelling, the .ics invitation, and reminders kept in
the outbox (sent when due, so a restart loses none)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm import clock
from crm.buttons import payload_buttons
from crm.company import company_profile
from crm.desk_hours import opening, short_text, when_text, zone
from crm.i18n import Refusal, Texts
from crm.models import Client, Lead, Meeting, Notification, Staff
from crm.outbox import enqueue
from crm.staff import account_manager_of, managers_on_duty

TEXTS = Texts("meetings")


class MeetingError(Refusal):
    texts = Texts("meetings.error")


class SlotTaken(MeetingError):
    """Someone else booked the slot first (or it is no longer offered)."""


class AlreadyBooked(MeetingError):
    """The client has an upcoming meeting: one at a time (the new slot may replace it)."""

    def __init__(self, meeting: Meeting):
        super().__init__("already_booked", id=meeting.id)
        self.meeting_id = meeting.id  # an id: the unit of work that raised it is rolled back


def settings() -> dict:
    return company_profile().get("meetings", {})


def length() -> timedelta:
    return timedelta(minutes=int(settings().get("length_minutes", 30)))


def grid(now: datetime | None = None) -> list[datetime]:
    """Every possible start (UTC) from `min_notice_hours` to `days_ahead` days, inside opening hours.
    Slots are steps of the desk's wall clock ("10:00, 10:30, ..."), so a meeting keeps its
    announced hour across a DST change; a wall-clock time that does not exist that night (the
    spring gap) is not offered, and one that happens twice (the autumn fold) is offered once."""
    now = clock.aware(now or clock.now())
    step = length()
    earliest = now + timedelta(hours=float(settings().get("min_notice_hours", 2)))
    tz = zone()
    first = clock.today(tz, now)
    starts: list[datetime] = []
    for offset in range(int(settings().get("days_ahead", 10)) + 1):
        day = first + timedelta(days=offset)
        span = opening(day)
        if span is None:
            continue
        open_at, close_at = span
        wall = open_at.astimezone(tz).replace(tzinfo=None)
        while True:
            try:
                start = clock.local_instant(wall.date(), wall.time(), tz)
            except clock.NonexistentTime:
                wall += step
                continue
            if start + step > close_at:
                break
            wall += step
            if start >= earliest and (not starts or start > starts[-1]):
                starts.append(start)
    return starts


def candidates(session: Session, client: Client) -> list[Staff]:
    """Who may hold the client's meeting: their account manager only, if they have one; else every
    manager on duty."""
    owner = account_manager_of(session, client)
    return [owner] if owner is not None else managers_on_duty(session)


def _busy(session: Session, manager_ids: list[int], since: datetime, until: datetime) -> dict[int, list[tuple]]:
    rows = session.execute(select(Meeting.manager_id, Meeting.starts_at, Meeting.ends_at).where(
        Meeting.manager_id.in_(manager_ids), Meeting.status == "booked",
        Meeting.ends_at > since, Meeting.starts_at < until)).all()
    busy: dict[int, list[tuple]] = {}
    for manager_id, start, end in rows:
        busy.setdefault(manager_id, []).append((clock.aware(start), clock.aware(end)))
    return busy


def _free(busy: list[tuple], start: datetime, end: datetime) -> bool:
    return all(end <= b_start or start >= b_end for b_start, b_end in busy)


def free_slots(session: Session, client: Client, now: datetime | None = None, count: int | None = None) -> list[datetime]:
    """The next free starts (UTC) where one of the client's candidate managers is free."""
    count = count or int(settings().get("slots_offered", 6))
    managers = candidates(session, client)
    starts = grid(now)
    if not managers or not starts:
        return []
    busy = _busy(session, [m.id for m in managers], starts[0], starts[-1] + length())
    out = []
    for start in starts:
        if any(_free(busy.get(m.id, []), start, start + length()) for m in managers):
            out.append(start)
            if len(out) == count:
                break
    return out


def parse_slot(value: str | None) -> datetime | None:
    try:
        return clock.aware(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return None


def book(session: Session, client: Client, starts_at: datetime, *, replacing: int | None = None,
         now: datetime | None = None) -> Meeting:
    """Book a slot for the client (moving meeting `replacing` when given). Raises SlotTaken when
    the slot is not offered (any more) or every manager is busy then. Two clients booking the same
    manager at the same moment: the unique `slot_key` lets one in and raises IntegrityError for
    the other, whose unit of work is then rolled back; `book_in_turn` retries it afresh."""
    starts_at = clock.aware(starts_at).astimezone(timezone.utc)
    if starts_at not in grid(now):
        raise SlotTaken("not_offered")
    # One booking of a client at a time: this write takes the client's row (PostgreSQL) or the
    # database (SQLite) before the check below, so two bookings at once cannot both pass it.
    session.execute(update(Client).where(Client.id == client.id).values(last_seen=Client.last_seen))
    if replacing is None:
        current = upcoming(session, client, now)
        if current:
            raise AlreadyBooked(current[0])
    old = _own_meeting(session, client, replacing) if replacing is not None else None
    end = starts_at + length()
    managers = candidates(session, client)
    busy = _busy(session, [m.id for m in managers], starts_at, end)
    for manager in sorted(managers, key=lambda m: len(busy.get(m.id, []))):
        if not _free(busy.get(manager.id, []), starts_at, end):
            continue
        meeting = Meeting(client_id=client.id, manager_id=manager.id, starts_at=starts_at, ends_at=end,
                          status="booked", slot_key=f"{manager.id}@{starts_at:%Y%m%dT%H%M}",
                          lead_id=_open_lead_id(session, client))
        session.add(meeting)
        session.flush()  # IntegrityError: another client got this manager at this time just now
        if old is not None:
            _release(session, old, "moved")
        _announce(session, client, manager, meeting, old, clock.aware(now or clock.now()))
        return meeting
    raise SlotTaken("slot_taken")


def book_in_turn(run, work, attempts: int = 3):
    """`run(work)` in a fresh unit of work each time a booking lost a race (IntegrityError): the
    next attempt sees the other booking and picks another manager, or raises SlotTaken."""
    for _ in range(attempts):
        try:
            return run(work)
        except IntegrityError:
            continue
    raise SlotTaken("slot_taken")


def _open_lead_id(session: Session, client: Client) -> int | None:
    return session.scalar(select(Lead.id).where(Lead.client_id == client.id, Lead.status.in_(
        ("new", "qualified", "hot", "contacted"))).order_by(Lead.id.desc()).limit(1))


def _own_meeting(session: Session, client: Client, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, int(meeting_id))
    if meeting is None or meeting.client_id != client.id or meeting.status != "booked":
        raise MeetingError("unknown")
    return meeting


def _release(session: Session, meeting: Meeting, status: str) -> None:
    meeting.status, meeting.slot_key, meeting.cancelled_at = status, None, clock.now()
    session.execute(update(Notification).where(Notification.meeting_id == meeting.id,
                                               Notification.status == "pending")
                    .values(status="cancelled"))


def cancel(session: Session, client: Client, meeting_id: int) -> Meeting:
    meeting = _own_meeting(session, client, meeting_id)
    _release(session, meeting, "cancelled")
    manager = session.get(Staff, meeting.manager_id)
    enqueue(session, manager.telegram_id, TEXTS.t("cancelled_manager", manager.language,
                                                    client=client.display_name,
                                                    when=when_text(meeting.starts_at, manager.language)),
            client_id=client.id)
    return meeting


def upcoming(session: Session, client: Client, now: datetime | None = None) -> list[Meeting]:
    return list(session.scalars(select(Meeting).where(
        Meeting.client_id == client.id, Meeting.status == "booked", Meeting.starts_at >= clock.aware(now or clock.now()))
        .order_by(Meeting.starts_at)))


def _announce(session: Session, client: Client, manager: Staff, meeting: Meeting, old: Meeting | None,
              now: datetime) -> None:
    """The invitation to both sides, and the reminders still ahead of `now`, all through the outbox."""
    minutes = int(length().total_seconds() // 60)
    language = client.language
    enqueue(session, client.telegram_id, TEXTS.t("invitation", language,
                                                   when=when_text(meeting.starts_at, language),
                                                   manager=manager.name.split()[0], minutes=minutes),
            meeting_id=meeting.id, attachment="ics", client_id=client.id)
    lead = session.get(Lead, meeting.lead_id) if meeting.lead_id else None
    if old is not None:
        text = TEXTS.t("moved_manager", manager.language, client=client.display_name,
                         old=when_text(old.starts_at, manager.language), when=when_text(meeting.starts_at, manager.language))
    else:
        text = TEXTS.t("confirmed_manager", manager.language, client=client.display_name,
                         when=when_text(meeting.starts_at, manager.language), minutes=minutes,
                         lead=TEXTS.t("lead", manager.language, id=lead.id, score=lead.score) if lead else "")
    enqueue(session, manager.telegram_id, text, meeting_id=meeting.id, attachment="ics", client_id=client.id)
    for before in settings().get("remind_before_minutes", [1440, 60]):
        due = clock.aware(meeting.starts_at) - timedelta(minutes=int(before))
        if due <= now:
            continue
        buttons = payload_buttons(session, client.telegram_id, [
            {"title": TEXTS.t("move", language), "payload": f'/reschedule_meeting{{"meeting_id":"{meeting.id}"}}'},
            {"title": TEXTS.t("cancel", language), "payload": f'/cancel_meeting{{"meeting_id":"{meeting.id}"}}'},
        ])
        enqueue(session, client.telegram_id, TEXTS.t("reminder_client", language,
                                                       when=when_text(meeting.starts_at, language),
                                                       manager=manager.name.split()[0]),
                buttons, meeting_id=meeting.id, not_before=due, client_id=client.id)
        enqueue(session, manager.telegram_id, TEXTS.t("reminder_manager", manager.language,
                                                        client=client.display_name,
                                                        when=when_text(meeting.starts_at, manager.language)),
                meeting_id=meeting.id, not_before=due, client_id=client.id)


def slot_buttons(session: Session, client: Client, starts: list[datetime], replacing: int | None = None) -> list[dict]:
    """Rasa payload buttons, one per slot (the meeting to move rides along when moving one)."""
    return [{"title": short_text(s, client.language), "payload": slot_payload(s, replacing)} for s in starts]


def slot_payload(starts_at: datetime, replacing: int | None = None) -> str:
    extra = f',"meeting_id":"{replacing}"' if replacing is not None else ""
    return f'/choose_slot{{"meeting_slot":"{clock.aware(starts_at).isoformat()}"{extra}}}'


def offer_slots(session: Session, client: Client) -> int:
    """Send the client a choice of free slots (a manager's "propose a meeting" button).
    Returns how many slots were offered."""
    starts = free_slots(session, client)
    if starts:
        minutes = int(length().total_seconds() // 60)
        enqueue(session, client.telegram_id, TEXTS.t("offer", client.language, minutes=minutes),
                payload_buttons(session, client.telegram_id, slot_buttons(session, client, starts)),
                client_id=client.id)
    return len(starts)


def ics(session: Session, meeting: Meeting) -> str:
    """The meeting as an iCalendar (RFC 5545) invitation."""
    client = session.get(Client, meeting.client_id)
    manager = session.get(Staff, meeting.manager_id)
    company = company_profile().get("name", "")

    def stamp(value: datetime) -> str:
        return clock.aware(value).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")

    status = "CONFIRMED" if meeting.status == "booked" else "CANCELLED"
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//assistant-relations-clients//meetings//FR", "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:meeting-{meeting.id}@assistant-relations-clients",
        f"DTSTAMP:{stamp(meeting.created_at)}",
        f"DTSTART:{stamp(meeting.starts_at)}",
        f"DTEND:{stamp(meeting.ends_at)}",
        f"SUMMARY:{escape(TEXTS.t('summary', client.language, company=company, client=client.display_name))}",
        f"DESCRIPTION:{escape(manager.name)}",
        f"STATUS:{status}",
        "END:VEVENT", "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
