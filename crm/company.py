"""The company profile (company.yml): policy answers and business rules, editable without
retraining. Re-read whenever the file changes.

The whole file is checked against a pydantic model (answers, orders, complaints, desk, leads,
meetings) at start-up and at every reload; each error names the key and its line. A file that
fails keeps the last good version in use (logged loudly; the bot tells the admins once): a typo
never silences the assistant. With no good version yet (start-up), the error stops the process.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from crm.models import ORDER_STATUSES, SEVERITIES
from crm.settings import current as settings

log = logging.getLogger(__name__)

POLICY_TOPICS = ("ask_delivery", "ask_payment", "ask_returns", "ask_contract", "ask_contact",
                 "ask_loyalty", "book_meeting")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPAN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\s*-\s*(([01]\d|2[0-3]):[0-5]\d|24:00)")

Minutes = Annotated[int, Field(ge=0)]


def _hour_minute(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value.strip()):
        raise ValueError(f"{value!r} is not HH:MM (e.g. \"03:00\")")
    return value.strip()


HourMinute = Annotated[str, AfterValidator(_hour_minute)]  # a time of day on the desk's clock
Points = Annotated[int, Field(ge=0, le=100)]


class Section(BaseModel):
    # A misspelt key would be ignored silently and its default used: refuse it instead.
    model_config = ConfigDict(extra="forbid")


class Answer(Section):
    fr: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Answers(Section):
    ask_delivery: Answer
    ask_payment: Answer
    ask_returns: Answer
    ask_contract: Answer
    ask_contact: Answer
    ask_loyalty: Answer
    book_meeting: Answer


class Orders(Section):
    cancellable_statuses: list[Literal[ORDER_STATUSES]] = ["confirmed", "preparing"]


class Complaints(Section):
    urgent_words: list[str] = []
    critical_words: list[str] = []
    repeated_complaints: Annotated[int, Field(ge=1)] = 2
    repeated_within_days: Annotated[int, Field(ge=1)] = 60
    large_order_total: Annotated[float, Field(gt=0)] = 1000


class Desk(Section):
    timezone: str = "Europe/Paris"
    hours: dict[Literal[DAYS], str | None] = {}
    fallbacks_before_handoff: Annotated[int, Field(ge=1)] = 2
    handoff_severities: list[Literal[SEVERITIES]] = ["critical"]
    show_manager_name: bool = True
    unanswered_after_minutes: Minutes = 10
    account_manager_first_minutes: Minutes = 5
    manager_reply_minutes: Minutes = 5
    vip_to_manager: bool = True
    vip_again_after_minutes: Minutes = 30
    queue_timeout_minutes: Minutes = 120

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a time zone (e.g. Europe/Paris)") from None
        return name

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: dict) -> dict:
        for day, span in hours.items():
            if span is None:
                continue
            match = SPAN.fullmatch(span.strip())
            if match is None:
                raise ValueError(f"{day}: {span!r} is not HH:MM-HH:MM (e.g. \"09:00-18:00\")")
            start, end = (part.strip() for part in span.split("-"))
            if start >= end:
                raise ValueError(f"{day}: {span!r} closes before it opens")
        return hours


class Score(Section):
    budget: list[tuple[Annotated[float, Field(ge=0)], Points]] = []
    role: dict[str, Points] = {}
    need: Points = 0
    timeline: dict[str, Points] = {}
    size: dict[str, Points] = {}


class Leads(Section):
    hot_threshold: Points = 70
    score: Score = Score()


class Meetings(Section):
    length_minutes: Annotated[int, Field(ge=5, le=480)] = 30
    days_ahead: Annotated[int, Field(ge=1, le=90)] = 10
    min_notice_hours: Annotated[float, Field(ge=0)] = 2
    slots_offered: Annotated[int, Field(ge=1, le=20)] = 6
    remind_before_minutes: list[Annotated[int, Field(gt=0)]] = [1440, 60]


class Review(Section):
    low_confidence: Annotated[float, Field(ge=0, le=1)] = 0.6
    rephrase_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    retrain_after_labels: Annotated[int, Field(ge=0)] = 20
    retrain_at: HourMinute = "03:00"


class Retention(Section):
    """How long personal data is kept (crm/retention.py)."""

    messages_months: Annotated[int, Field(ge=1, le=120)] = 12
    notifications_months: Annotated[int, Field(ge=1, le=120)] = 3
    leads_years: Annotated[int, Field(ge=1, le=10)] = 3
    inactive_clients_years: Annotated[int, Field(ge=1, le=10)] = 3
    run_at: HourMinute = "04:00"


class Reports(Section):
    """The managers' reports (crm/reports.py)."""

    attribution_days: Annotated[int, Field(ge=1, le=90)] = 7
    monthly_at: HourMinute = "09:00"


class Profile(Section):
    name: str = ""
    answers: Answers
    orders: Orders = Orders()
    complaints: Complaints = Complaints()
    desk: Desk = Desk()
    leads: Leads = Leads()
    meetings: Meetings = Meetings()
    review: Review = Review()
    retention: Retention = Retention()
    reports: Reports = Reports()


_lock = threading.Lock()
_cache: dict[Path, tuple[float, dict]] = {}      # the last good version of each file
_refused: dict[Path, tuple[float, str]] = {}     # the version refused since, and why


class ProfileError(ValueError):
    pass


def profile_path() -> Path:
    return settings().company_profile


def _line(node, loc: tuple) -> int | None:
    """The line (1-based) of the key at `loc` in the YAML node tree: the deepest one found."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == key), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load(path: Path) -> dict:
    """Read and check one profile file; ProfileError says what is wrong, with key and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ProfileError(f"{path.name}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path.name} line 1: the file must be a mapping of sections (answers, desk, ...)")
    try:
        return Profile.model_validate(data).model_dump()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
            key = ".".join(str(part) for part in loc) or "(top)"
            line = _line(node, loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (misspelt?)"
            problems.append(f"{path.name} line {line}: {key}: {message}" if line else f"{path.name}: {key}: {message}")
        raise ProfileError("; ".join(problems)) from None


def company_profile() -> dict:
    """The profile in force: the file as it is now when it is valid, else the last good version."""
    path = profile_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    with _lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        refused = _refused.get(path)
        if cached and refused and refused[0] == mtime:
            return cached[1]
    try:
        profile = load(path)
    except ProfileError as exc:
        if cached is None:
            raise  # nothing to fall back on: start-up stops with the reason
        with _lock:
            _refused[path] = (mtime, str(exc))
        log.error("company profile refused, the last valid version stays in use: %s", exc)
        return cached[1]
    with _lock:
        _cache[path] = (mtime, profile)
        _refused.pop(path, None)
    return profile


def profile_problem() -> tuple[float, str] | None:
    """(file version, reason) when the file on disk was refused and an older version is in use."""
    company_profile()
    with _lock:
        return _refused.get(profile_path())


def policy_answer(topic: str, language: str) -> str:
    return company_profile()["answers"][topic]["en" if language == "en" else "fr"]
