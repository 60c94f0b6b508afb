"""Complaints: a ticket with a severity from documented rules (company.yml), managers alerted
for severe ones, the client told when it is resolved and asked for a satisfaction score."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm import clock
from crm.clients import rate_as_client
from crm.company import company_profile
from crm.i18n import Refusal, Texts, languages
from crm.models import COMPLAINT_CATEGORIES, Client, Complaint, Order
from crm.outbox import button, enqueue, notify_managers
from crm.text import fold

COMPLAINT_NUMBER = re.compile(r"\bREC[-\s]?0*(\d{1,9})\b", re.IGNORECASE)

CATEGORY_LABELS = Texts("complaints.category")
# Words that name each kind of problem (folded), in French and English: a category guessed from the
# first message, or typed at the category question.
CATEGORY_WORDS = {
    "delivery": ["livraison", "livre", "livreur", "colis", "retard", "transporteur", "delivery", "parcel",
                 "late", "shipping", "courier", "driver"],
    "invoice": ["facture", "facturation", "paiement", "prelevement", "invoice", "billing",
                "charged", "payment"],
    "product": ["produit", "casse", "defectueux", "panne", "marche pas", "fonctionne pas", "abime",
                "product", "broken", "faulty", "defective", "damaged", "doesn't work"],
    "service": ["service", "accueil", "conseiller", "telephone", "repond", "politesse", "staff", "rude",
                "support", "answer"],
    "other": ["autre", "other"],
}

STATUS_LABELS = Texts("complaints.status")
TEXTS = Texts("complaints")
SEVERITY_LABELS = Texts("complaints.severity")
REASON_LABELS = Texts("complaints.reason")


ERRORS = Texts("complaints.error")


class ComplaintError(Refusal):
    texts = ERRORS


def complaint_number(complaint_id: int) -> str:
    return f"REC-{complaint_id:06d}"


def parse_complaint_number(text: str | None) -> str | None:
    match = COMPLAINT_NUMBER.search(text or "")
    return complaint_number(int(match.group(1))) if match else None


def _mentions(text: str, words: list[str]) -> bool:
    folded = f" {fold(text)} "
    return any(re.search(rf"\b{re.escape(fold(w))}\b", folded) for w in words)


def assess_severity(session: Session, client: Client, description: str, order: Order | None) -> tuple[str, list[str]]:
    """The documented rules of company.yml → (severity, reasons)."""
    rules = company_profile().get("complaints", {})
    reasons = []
    if _mentions(description, rules.get("urgent_words", [])):
        reasons.append("urgent_words")
    critical = _mentions(description, rules.get("critical_words", []))
    if critical:
        reasons.append("critical_words")
    since = clock.now() - timedelta(days=int(rules.get("repeated_within_days", 60)))
    earlier = session.scalar(select(func.count(Complaint.id)).where(
        Complaint.client_id == client.id, Complaint.created_at >= since))
    if earlier >= int(rules.get("repeated_complaints", 2)):
        reasons.append("repeated")
    if order is not None and order.total >= Decimal(str(rules.get("large_order_total", 1000))):
        reasons.append("large_order")
    if critical or len(reasons) >= 2:
        return "critical", reasons
    return ("high" if reasons else "normal"), reasons


def open_complaint(session: Session, client: Client, category: str, description: str,
                   order: Order | None = None) -> Complaint:
    if category not in COMPLAINT_CATEGORIES:
        raise ComplaintError("category", categories=", ".join(COMPLAINT_CATEGORIES))
    if order is not None and order.client_id != client.id:
        raise ComplaintError("foreign_order")
    description = description.strip()[:4000]
    if not description:
        raise ComplaintError("empty")
    severity, reasons = assess_severity(session, client, description, order)
    complaint = Complaint(client_id=client.id, order_id=order.id if order else None,
                          category=category, description=description, severity=severity,
                          severity_reasons=",".join(reasons))
    session.add(complaint)
    session.flush()
    complaint.number = complaint_number(complaint.id)
    if severity != "normal":
        texts = {
            lang: TEXTS.t(
                "alert", lang, severity=SEVERITY_LABELS.t(severity, lang),
                number=complaint.number, client=client.display_name,
                order=f" ({order.number})" if order else "",
                category=CATEGORY_LABELS.t(category, lang),
                reasons=", ".join(REASON_LABELS.t(r, lang) for r in reasons),
                description=description[:1500])
            for lang in languages()
        }
        notify_managers(session, texts, client.id)
    session.flush()
    return complaint


def client_complaints(session: Session, client: Client, limit: int = 5) -> list[Complaint]:
    return list(session.scalars(select(Complaint).where(Complaint.client_id == client.id)
                                .order_by(Complaint.id.desc()).limit(limit)))


def find_client_complaint(session: Session, client: Client, number: str) -> Complaint | None:
    return session.scalar(select(Complaint).where(Complaint.number == number,
                                                  Complaint.client_id == client.id))


def resolve_complaint(session: Session, number: str, resolution: str) -> Complaint:
    complaint = session.scalar(select(Complaint).where(Complaint.number == number))
    if complaint is None:
        raise ComplaintError("unknown", number=number)
    if complaint.status == "resolved":
        raise ComplaintError("resolved", number=number)
    resolution = resolution.strip()
    if not resolution:
        raise ComplaintError("no_resolution")
    complaint.status, complaint.resolution, complaint.resolved_at = "resolved", resolution, clock.now()
    client = session.get(Client, complaint.client_id)
    buttons = [button(str(n), "rate_complaint", complaint.id, n) for n in range(1, 6)]
    # The outbox splits a long resolution below Telegram's limit; the rating buttons come last.
    enqueue(session, client.telegram_id, resolution_message(complaint, client.language), buttons, client_id=client.id)
    session.flush()
    return complaint


def resolution_message(complaint: Complaint, language: str) -> str:
    return TEXTS.t("resolved", language, number=complaint.number, resolution=complaint.resolution)


def rate_complaint(session: Session, telegram_id: int, complaint_id: int, score: int) -> Complaint | None:
    """The client's score (1-5) of how a complaint was resolved; None when not theirs, or unresolved."""
    return rate_as_client(session, Complaint, complaint_id, "resolved", telegram_id, score)


def complaint_line(complaint: Complaint, language: str) -> str:
    return (f"{complaint.number} — {complaint.created_at:%d/%m/%Y} — "
            f"{CATEGORY_LABELS.t(complaint.category, language)} — "
            f"{STATUS_LABELS.t(complaint.status, language)}")
