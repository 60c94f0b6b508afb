"""The client card managers see: profile, recent messages, open orders and complaints, notes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.complaints import CATEGORY_LABELS
from crm.clients import client_tags
from crm.i18n import Texts, format_money
from crm.leads import client_leads, lead_line
from crm.meetings import upcoming, when_text
from crm.models import Client, ClientNote, Complaint, ConversationMessage, Handoff, Order, Staff
from crm.orders import status_label
from crm.text import shorten

TEXTS = Texts("client_file")


NOTES_SHOWN = 3
NOTE_CHARS = 300


def client_card(session: Session, client: Client, language: str, messages: int = 6) -> str:
    """The card stays short whatever the file holds (it goes into every desk notice): the latest
    messages and notes, each shortened, and how many older notes there are."""
    lines = [TEXTS.t("profile", language, name=client.display_name,
                       username=f" (@{client.username})" if client.username else "",
                       client_language=client.language, since=client.first_seen)]
    if client.vip:
        lines.append(TEXTS.t("vip", language))
    tags = client_tags(session, client)
    if tags:
        lines.append(TEXTS.t("tags", language, tags=", ".join(tags)))
    if client.account_manager_id:
        manager = session.get(Staff, client.account_manager_id)
        lines.append(TEXTS.t("account_manager", language, name=manager.name))
    contact = ", ".join(x for x in (client.company, client.phone, client.email) if x)
    if contact:
        lines.append(TEXTS.t("contact", language, contact=contact))
    recent = list(session.scalars(select(ConversationMessage).where(ConversationMessage.client_id == client.id)
                                  .order_by(ConversationMessage.id.desc()).limit(messages)))[::-1]
    if recent:
        lines.append(TEXTS.t("messages", language))
        lines += [f"{'→' if m.direction == 'in' else '←'} {shorten(m.text, 200) or '[' + m.kind + ']'}" for m in recent]
    orders = list(session.scalars(select(Order).where(
        Order.client_id == client.id, Order.status.in_(("confirmed", "preparing", "shipped"))).order_by(Order.id)))
    lines.append(TEXTS.t("orders", language) + (" " + TEXTS.t("none", language) if not orders else ""))
    lines += [f"• {o.number} — {format_money(o.total, o.currency, language)} — {status_label(o.status, language)}"
              for o in orders]
    complaints = list(session.scalars(select(Complaint).where(
        Complaint.client_id == client.id, Complaint.status != "resolved").order_by(Complaint.id)))
    lines.append(TEXTS.t("complaints", language) + (" " + TEXTS.t("none", language) if not complaints else ""))
    lines += [f"• {c.number} — {CATEGORY_LABELS.t(c.category, language)} — {c.severity}"
              for c in complaints]
    leads = client_leads(session, client)
    if leads:
        lines.append(TEXTS.t("leads", language))
        lines += [f"• {lead_line(session, lead, language)}" for lead in leads[:3]]
    else:
        lines.append(TEXTS.t("lead", language))
    meetings = upcoming(session, client)
    if meetings:
        lines.append(TEXTS.t("meetings", language))
        lines += [TEXTS.t("meeting_line", language, when=when_text(m.starts_at, language),
                            manager=session.get(Staff, m.manager_id).name) for m in meetings]
    scores = [str(s) for s in session.scalars(select(Handoff.satisfaction).where(
        Handoff.client_id == client.id, Handoff.satisfaction.is_not(None)))]
    if scores:
        lines.append(TEXTS.t("scores", language, scores=", ".join(scores)))
    total = session.scalar(select(func.count(ClientNote.id)).where(ClientNote.client_id == client.id))
    notes = list(session.execute(select(ClientNote, Staff.name).join(Staff, Staff.id == ClientNote.staff_id)
                                 .where(ClientNote.client_id == client.id).order_by(ClientNote.id.desc())
                                 .limit(NOTES_SHOWN)).tuples())[::-1]
    if notes:
        lines.append(TEXTS.t("notes", language))
        if total > len(notes):
            lines.append(TEXTS.t("more_notes", language, count=total - len(notes)))
        lines += [f"• {note.created_at:%d/%m/%Y} {name} : {shorten(note.text, NOTE_CHARS)}" for note, name in notes]
    return "\n".join(lines)
