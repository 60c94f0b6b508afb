"""Alerts to staff that must go out once however many bot processes notice the same thing:
today, a company.yml that was refused (the last valid version stays in use)."""

from __future__ import annotations

import hashlib

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
    admins = list(session.scalars(select(Staff).where(Staff.active.is_(True), Staff.role == "admin")))
    recipients = admins or managers_on_duty(session)
    for member in recipients:
        enqueue(session, member.telegram_id, TEXTS.t("profile_refused", member.language,
                                                        file=profile_path().name, reason=reason[:3000]))
    return len(recipients)
