"""Promotional consent: one row per change, so the history (date and source) is kept."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.models import Client, Consent
from crm.i18n import Texts

SOURCES = ("command", "conversation", "button", "staff")
TEXTS = Texts("consent")


def set_consent(session: Session, client: Client, granted: bool, source: str) -> bool:
    """Record the choice; returns whether it changed anything."""
    if source not in SOURCES:
        raise ValueError(f"unknown consent source {source!r}")
    if has_consent(session, client) == granted and _latest(session, client) is not None:
        return False
    session.add(Consent(client_id=client.id, granted=granted, source=source))
    session.flush()
    return True


def _latest(session: Session, client: Client) -> Consent | None:
    return session.scalar(
        select(Consent).where(Consent.client_id == client.id).order_by(Consent.id.desc()).limit(1)
    )


def has_consent(session: Session, client: Client) -> bool:
    latest = _latest(session, client)
    return bool(latest and latest.granted)


def consent_unknown(session: Session, client: Client) -> bool:
    """The client never said yes or no to promotions."""
    return _latest(session, client) is None
