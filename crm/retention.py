"""Keep personal data no longer than needed (RGPD article 5: storage limitation). The periods are
company.yml's `retention` section; a daily job (bot/app.py, after retention.run_at, desk time,
claimed once whatever the number of bot processes) deletes what is past them, in batches of
BATCH rows per transaction, on SQLite and PostgreSQL alike. `python -m bot retention report`
prints what the job would delete now (a dry run) and its latest runs.

What goes, and when (the README's "Personal data" explains why):
- conversation messages, and the texts of closed handoffs (the request, a call-back number),
  `messages_months` after they were written (12); Rasa's tracker events too;
- pending or skipped items of the review queue (masked texts) not seen for as long;
- outbox messages already sent (or failed), `notifications_months` after they were queued (3);
  button payloads and received updates live much shorter already (30 days, 1 day);
- leads never won, `leads_years` after their last change (3: CNIL's guidance for prospects);
- clients silent for `inactive_clients_years` (3) are erased as on request (crm/privacy.py):
  their orders stay for accounting, pseudonymous.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from crm import clock, desk_hours, trackers
from crm.alerts import announce
from crm.company import company_profile
from crm.db import unit_of_work
from crm.models import (
    ButtonPayload,
    Client,
    ConversationMessage,
    Handoff,
    Lead,
    Notification,
    Purge,
    ReviewItem,
)

BATCH = 500
KINDS = ("messages", "handoff_texts", "review_items", "notifications", "buttons", "leads", "inactive_clients",
         "conversation_events")


def _months_ago(now: datetime, months: int) -> datetime:
    """The same day and time `months` earlier (the last day of a shorter month)."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    month += 1
    for day in range(now.day, 27, -1):
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return now.replace(year=year, month=month, day=min(now.day, 28))


@dataclass(frozen=True)
class Cutoffs:
    """What was written, sent or seen before these instants is past its period."""

    messages: datetime
    notifications: datetime
    leads: datetime
    clients: datetime


# The company.yml retention setting that sets each kind's period, and its unit.
PERIOD_OF = {"messages": "messages_months", "handoff_texts": "messages_months", "review_items": "messages_months",
             "conversation_events": "messages_months", "notifications": "notifications_months",
             "buttons": "notifications_months", "leads": "leads_years", "inactive_clients": "inactive_clients_years"}


def kept_for(kind: str) -> str:
    """How long a kind is kept, as company.yml says: "12 months", "3 years"."""
    setting = PERIOD_OF[kind]
    return f"{company_profile()['retention'][setting]} {setting.rsplit('_', 1)[1]}"


def cutoffs(now: datetime | None = None) -> Cutoffs:
    rules = company_profile()["retention"]
    now = now or clock.now()
    return Cutoffs(_months_ago(now, rules["messages_months"]), _months_ago(now, rules["notifications_months"]),
                   _months_ago(now, 12 * rules["leads_years"]), _months_ago(now, 12 * rules["inactive_clients_years"]))


def _conditions(cut: Cutoffs) -> dict:
    """kind -> (model, condition) of the rows past their period (but inactive clients and Rasa's
    events, which are not plain deletes)."""
    return {
        "messages": (ConversationMessage, ConversationMessage.created_at < cut.messages),
        "handoff_texts": (Handoff, (Handoff.status == "closed") & (Handoff.opened_at < cut.messages)
                          & ((Handoff.detail != "") | Handoff.callback_phone.is_not(None))),
        "review_items": (ReviewItem, ReviewItem.status.in_(("pending", "skipped")) & (ReviewItem.last_seen < cut.messages)),
        "notifications": (Notification, Notification.status.not_in(("pending", "sending"))
                          & (Notification.created_at < cut.notifications)),
        "buttons": (ButtonPayload, ButtonPayload.created_at < cut.notifications),
        "leads": (Lead, (Lead.status != "won") & (Lead.updated_at < cut.leads)),
    }


def _inactive(cut: Cutoffs):
    return (Client.erased_at.is_(None)) & (Client.telegram_id > 0) & (Client.last_seen < cut.clients)


def report(session: Session, tracker: Engine | None, now: datetime | None = None) -> dict[str, int]:
    """How many rows of each kind are past their period now: what purge() would delete."""
    cut = cutoffs(now)
    counts = {kind: int(session.scalar(select(func.count()).select_from(model).where(condition)) or 0)
              for kind, (model, condition) in _conditions(cut).items()}
    counts["inactive_clients"] = int(session.scalar(select(func.count(Client.id)).where(_inactive(cut))) or 0)
    counts["conversation_events"] = trackers.count_before(tracker, cut.messages)
    return {kind: counts[kind] for kind in KINDS}


def _batches(engine: Engine, model, condition, change=None) -> int:
    """Delete (or `change`, a dict of values) the rows of `model` matching `condition`, BATCH
    at a time, each batch its own transaction. Returns how many."""
    total = 0
    while True:
        with unit_of_work(engine) as session:
            ids = session.scalars(select(model.id).where(condition).order_by(model.id).limit(BATCH)).all()
            if not ids:
                return total
            statement = update(model).values(**change) if change else delete(model)
            session.execute(statement.where(model.id.in_(ids)).execution_options(synchronize_session=False))
            total += len(ids)


def purge(engine: Engine, tracker_url: str | None, now: datetime | None = None) -> dict[str, int]:
    """Delete what is past its period (see the module's docstring), then record the counts (a
    `purges` row). Raises what the database raises; what was done stays done."""
    from crm.privacy import erase_client

    now = now or clock.now()
    cut = cutoffs(now)
    counts = dict.fromkeys(KINDS, 0)
    for kind, (model, condition) in _conditions(cut).items():
        change = dict(detail="", callback_phone=None) if kind == "handoff_texts" else None
        counts[kind] = _batches(engine, model, condition, change)
    tracker = trackers.tracker_engine(tracker_url)
    while True:
        with unit_of_work(engine) as session:
            ids = session.scalars(select(Client.id).where(_inactive(cut)).order_by(Client.id).limit(BATCH)).all()
        if not ids:
            break
        for client_id in ids:
            with unit_of_work(engine) as session:
                client = session.get(Client, client_id)
                if client is None or client.erased_at is not None:
                    continue
                events = trackers.erase_conversation(tracker, str(client.telegram_id))
                erase_client(session, client, "retention", now, done={"conversation_events": events})
                counts["inactive_clients"] += 1
    counts["conversation_events"] = trackers.purge_before(tracker, cut.messages, BATCH)
    with unit_of_work(engine) as session:
        session.add(Purge(at=now, counts=counts))
    return counts


def claim_today(session: Session, now: datetime | None = None) -> bool:
    """Whether this process runs today's purge: past retention.run_at on the desk's clock, and
    not yet today (one bot process claims it, whatever their number)."""
    now = now or clock.now()
    local = now.astimezone(desk_hours.zone())
    hour, minute = (int(part) for part in company_profile()["retention"]["run_at"].split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return False
    return announce(session, f"retention:{local.date().isoformat()}")


def latest_runs(session: Session, limit: int = 5) -> list[tuple[datetime, dict]]:
    return [(clock.aware(row.at), row.counts) for row in
            session.scalars(select(Purge).order_by(Purge.at.desc(), Purge.id.desc()).limit(limit))]
