"""The periods of the managers' reports (crm/reports.py): whole days of the desk's calendar
(company.yml desk.timezone), what each is compared with, how staff ask for one ("2026-11",
"2026-11-01 2026-11-15", "last") and how it is named in each language.

A period's bounds are instants in UTC, so a period that crosses a DST switch has a day of 23 or
25 hours, as the desk lived it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import format_date

from crm import clock, desk_hours
from crm.i18n import Texts, normalise_language
from crm.text import shorten

class PeriodError(ValueError):
    """A period that cannot be read (a bad date, an end before its start, a month to come)."""

    def __init__(self, key: str, **values):
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True)
class Period:
    """Whole days of the desk's calendar, from `first` to `last` (included); `start` and `end` are
    the UTC instants that bound them (`end` excluded; now, for the month so far)."""

    first: date
    last: date
    start: datetime
    end: datetime
    kind: str  # "month", "month_so_far", "range"

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def month(self) -> str | None:
        return self.first.strftime("%Y-%m") if self.kind == "month" else None

    def previous(self) -> Period:
        """What this period is compared with: the month before for a month; the same days of the
        month before (up to the same instant) for the month so far; for a range, as many days
        just before it."""
        zone = desk_hours.zone()
        if self.kind == "month":
            return month_period(month_before(self.first), zone)
        if self.kind == "month_so_far":
            first = month_before(self.first)
            last_of_month = self.first - timedelta(days=1)
            start = clock.start_of_day(first, zone)
            end = min(start + (self.end - self.start), clock.start_of_day(self.first, zone))
            last = min(first + (self.last - self.first), last_of_month)
            return Period(first, last, start, end, "month_so_far")
        length = (self.last - self.first).days + 1
        return day_range(self.first - timedelta(days=length), self.first - timedelta(days=1), zone)


def month_before(first: date) -> date:
    return (first.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_after(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_period(first: date, zone=None) -> Period:
    zone = zone or desk_hours.zone()
    first = first.replace(day=1)
    after = month_after(first)
    return Period(first, after - timedelta(days=1), clock.start_of_day(first, zone),
                  clock.start_of_day(after, zone), "month")


def day_range(first: date, last: date, zone=None) -> Period:
    zone = zone or desk_hours.zone()
    return Period(first, last, clock.start_of_day(first, zone),
                  clock.start_of_day(last + timedelta(days=1), zone), "range")


def month_so_far(now: datetime | None = None) -> Period:
    now = clock.aware(now or clock.now())
    zone = desk_hours.zone()
    today = clock.today(zone, now)
    first = today.replace(day=1)
    return Period(first, today, clock.start_of_day(first, zone), now, "month_so_far")


def last_month(now: datetime | None = None) -> Period:
    return month_period(month_before(desk_hours.today(now)))


TEXTS = Texts("report")


def period_name(period: Period, language: str) -> str:
    """"novembre 2026" / "November 2026"; a range or the month so far by its first and last days."""
    code = normalise_language(language)
    if period.kind == "month":
        return format_date(period.first, "LLLL y", locale=code)
    first, last = (format_date(d, "d MMM y", locale=code) for d in (period.first, period.last))
    return TEXTS.t("range", code, first=first, last=last)


MONTH = re.compile(r"(\d{4})-(\d{2})")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
LAST_WORDS = {"last", "previous", "dernier", "precedent", "précédent"}
MAX_RANGE_DAYS = 366


def parse_period(words: list[str], now: datetime | None = None) -> Period:
    """The period a staff member asked for: nothing (this month so far), "last" (last month),
    "2026-11" (a month), or "2026-11-01 2026-11-15" (a range of days, both included, up to today).
    Raises PeriodError for anything else, or for a period that has not begun."""
    today = desk_hours.today(now)
    words = [w.strip().lower() for w in words if w.strip()]
    said = shorten(" ".join(words), 40)
    if not words:
        return month_so_far(now)
    if len(words) == 1 and words[0] in LAST_WORDS:
        return last_month(now)
    if len(words) == 1 and (match := MONTH.fullmatch(words[0])):
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12 or year < 2000:
            raise PeriodError("bad_period", text=said)
        first = date(year, month, 1)
        if first > today:
            raise PeriodError("future", text=said)
        return month_so_far(now) if first == today.replace(day=1) else month_period(first)
    if len(words) == 2 and all(DAY.fullmatch(w) for w in words):
        try:
            first, last = date.fromisoformat(words[0]), date.fromisoformat(words[1])
        except ValueError:
            raise PeriodError("bad_period", text=said) from None
        if last < first:
            raise PeriodError("reversed", first=words[0], last=words[1])
        if first > today:
            raise PeriodError("future", text=said)
        if (last - first).days >= MAX_RANGE_DAYS:
            raise PeriodError("too_long", days=MAX_RANGE_DAYS)
        return day_range(first, min(last, today))  # days to come have nothing to count yet
    raise PeriodError("bad_period", text=said)
