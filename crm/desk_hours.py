"""The desk's calendar: its time zone and opening hours (company.yml `desk`), whether it is open
at an instant, when it reopens, and dates written the way people read them.

Handoffs, meetings and broadcasts all read the calendar here. Every function takes `now` (the
clock's `now()` by default), and works on the desk's wall clock so that "09:00-18:00" means 9:00
in Paris in winter and in summer alike (see crm.clock for the DST rules).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm import clock
from crm.company import DAYS, company_profile
from crm.i18n import format_when


def desk_settings() -> dict:
    return company_profile().get("desk", {})


def zone() -> ZoneInfo:
    name = desk_settings().get("timezone", "Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"company profile: desk.timezone {name!r} is not a time zone (e.g. Europe/Paris)") from None


def today(now: datetime | None = None) -> date:
    """The desk's calendar day: a promotion "until 31 December" runs until midnight in Paris."""
    return clock.today(zone(), now)


def opening(day: date) -> tuple[datetime, datetime] | None:
    """When the desk opens and closes (UTC) on that calendar day, or None when it is closed."""
    span = (desk_settings().get("hours") or {}).get(DAYS[day.weekday()])
    if not span:
        return None
    start, end = span.split("-")
    tz = zone()
    return clock.clock_instant(day, start.strip(), tz), clock.clock_instant(day, end.strip(), tz)


def next_opening(now: datetime | None = None) -> datetime | None:
    """None when the desk is open at `now`; otherwise when it next opens, in the desk's time zone.
    None too when no opening hours are configured (the desk is always open)."""
    now = clock.aware(now or clock.now())
    first = today(now)
    for offset in range(8):
        span = opening(first + timedelta(days=offset))
        if span is None:
            continue
        start, end = span
        if start <= now < end:
            return None
        if start > now:
            return start.astimezone(zone())
    return None


def is_open(now: datetime | None = None) -> bool:
    return next_opening(now) is None


def open_minutes(since: datetime, until: datetime | None = None) -> float:
    """How many minutes the desk was open between two instants: a request left on Friday evening
    has waited 0 minutes of desk time on Monday at 9:00. Every minute counts when no opening
    hours are configured (the desk is always open)."""
    since, until = clock.aware(since), clock.aware(until or clock.now())
    if until <= since:
        return 0.0
    if not desk_settings().get("hours"):
        return (until - since).total_seconds() / 60
    total, day, last = 0.0, today(since), today(until)
    while day <= last:
        span = opening(day)
        if span is not None:
            start, end = max(span[0], since), min(span[1], until)
            if end > start:
                total += (end - start).total_seconds() / 60
        day += timedelta(days=1)
    return total


def _local(instant: datetime) -> datetime:
    return clock.aware(instant).astimezone(zone())


def when_text(instant: datetime, language: str) -> str:
    """"mardi 1 décembre à 10 h 00" / "Tuesday 1 December at 10:00", in the desk's time zone."""
    return format_when(_local(instant), language)


def short_text(instant: datetime, language: str) -> str:
    """"mar. 01/12 10:00" / "Tue 01/12 10:00": a button's title."""
    return format_when(_local(instant), language, "date.short")
