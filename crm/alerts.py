"""Alerts to staff that must go out once however many bot processes notice the same thing:
today, a company.yml that was refused (the last valid version stays in use)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm import clock
from crm.company import profile_path, profile_problem
from crm.db import insert_unless_exists
from crm.i18n import Texts
from crm.models import Announcement, Staff
from crm.outbox import enqueue
from crm.staff import managers_on_duty

TEXTS = Texts("alerts")


def announce(session: Session, key: str) -> bool:
    """True for the one process that claims `key` first; False for every other, and later."""
    return insert_unless_exists(session, Announcement, {"key": key[:128], "created_at": clock.now()}, ["key"])


def alert_profile_refused(session: Session) -> int:
    """Tell the admins (the managers when there is no admin) once per refused version of the
    company profile. Returns how many were told."""
    problem = profile_problem()
    if problem is None:
        return 0
    version, reason = problem
    digest = hashlib.sha256(f"{version}:{reason}".encode()).hexdigest()[:32]
    if not announce(session, f"profile:{digest}"):
        return 0
    return tell_admins(session, lambda language: TEXTS.t("profile_refused", language, file=profile_path().name,
                                                         reason=reason[:3000]))


def tell_admins(session: Session, text_in: Callable[[str], str]) -> int:
    """A message to every admin (the managers on duty when there is no admin), each in their
    language, through the outbox. Returns how many."""
    admins = list(session.scalars(select(Staff).where(Staff.active.is_(True), Staff.role == "admin")))
    recipients = admins or managers_on_duty(session)
    for member in recipients:
        enqueue(session, member.telegram_id, text_in(member.language))
    return len(recipients)
