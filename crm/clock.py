"""The product's one clock, and the wall-clock arithmetic every time rule shares.

Every rule that depends on the date or the hour (desk hours, reminders, meeting slots, scheduled
broadcasts, segments, promotions) takes `now` as an argument or reads `now()` here; nothing else
reads the system clock. Tests move this clock with time-machine, or pass `now`.

Stored times are UTC. A local (wall-clock) time exists in a time zone only at the edges: desk
hours, slots, what people type and read. Two DST rules apply everywhere:
- a wall-clock time that does not exist (the spring gap, 02:30 in Paris on the last Sunday of
  March) is refused by `local_instant`, and skipped by `opening_instant`'s callers;
- a wall-clock time that exists twice (the autumn fold) means its first occurrence.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """A stored time read back: a naive one is UTC already (SQLite keeps the wall-clock only)."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def today(zone: ZoneInfo, at: datetime | None = None) -> date:
    """The calendar day in `zone` at the instant `at` (now by default)."""
    return aware(at or now()).astimezone(zone).date()


class NonexistentTime(ValueError):
    """A wall-clock time skipped by a daylight-saving change (it never happens in that zone)."""


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time in `zone`. Raises NonexistentTime inside a DST gap;
    an ambiguous time (the autumn fold) is its first occurrence."""
    local = datetime.combine(day, at.replace(fold=0), tzinfo=zone)
    instant = local.astimezone(timezone.utc)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise NonexistentTime(f"{day.isoformat()} {at:%H:%M} does not exist in {zone.key}")
    return instant


def clock_instant(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """`local_instant` for an "HH:MM" of the desk's settings, "24:00" being the next midnight.
    Inside a DST gap, the first instant after it (a desk opening at 02:30 that night opens at 03:00)."""
    hours, minutes = int(hhmm[:2]), int(hhmm[3:5])
    if hours == 24:
        day, hours = day + timedelta(days=1), 0
    wall = datetime.combine(day, time(hours, minutes))
    for _ in range(2 * 24 * 60):  # a gap is an hour in Europe; a whole day at worst (Samoa, 2011)
        try:
            return local_instant(wall.date(), wall.time(), zone)
        except NonexistentTime:
            wall += timedelta(minutes=1)
    raise NonexistentTime(f"{day.isoformat()} {hhmm} does not exist in {zone.key}")


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of a calendar day in `zone`."""
    return clock_instant(day, "00:00", zone)
