"""Leads: what a business enquiry told us, its score (company.yml's explicit rules), its status,
and the lead card managers see. The conversation that fills a lead is actions/leads.py."""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm import clock
from crm.company import company_profile
from crm.i18n import Refusal, Texts
from crm.models import LEAD_STATUSES, Client, Lead, LeadEvent

SIZES = ("1-9", "10-49", "50-249", "250+")
TIMELINES = ("now", "3m", "6m", "later")
ROLES = ("decision_maker", "influencer", "researcher")
BUDGETS = {"lt1k": 0, "1k-5k": 1000, "5k-20k": 5000, "gt20k": 20000}  # button codes -> lower bound
SKIP = "skip"
OPEN_STATUSES = ("new", "qualified", "hot", "contacted")

LABELS = Texts("leads.label")
TEXTS = Texts("leads")

SKIP_EXACT = {"-", "?", "nsp", "skip", "pass", "next", "passer", "suivant", "je passe", "on passe", "skip it"}
SKIP_WORDS = ("je ne sais pas", "sais pas", "j'sais pas", "aucune idee", "no idea", "don't know", "dont know",
              "not sure", "pas sur", "prefere ne pas", "rather not", "prefer not", "ne souhaite pas")
STOP_WORDS = ("stop", "arrete", "arreter", "annule", "annuler", "laisse tomber", "laissez tomber", "cancel",
              "never mind", "nevermind", "forget it", "plus tard", "later please", "on arrete")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE_RE = re.compile(r"\+?[\d][\d .\-()]{7,20}\d")


class LeadError(Refusal):
    texts = Texts("leads.error")


def plain(text: str) -> str:
    """Lower case, no accents, single spaces: how answers are compared with words."""
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return " ".join(text.lower().replace("’", "'").split())


def _has(text: str, words) -> bool:
    return any(re.search(rf"(?<![a-z]){re.escape(w)}(?![a-z])", text) for w in words)


def means_skip(text: str) -> bool:
    value = plain(text).strip(" .!")
    return value == SKIP or value in SKIP_EXACT or _has(value, SKIP_WORDS)


def means_stop(text: str) -> bool:
    value = plain(text)
    return len(value.split()) <= 5 and _has(value, STOP_WORDS)


def parse_size(text: str) -> str | None:
    value = plain(text)
    if value in SIZES:
        return value
    number = _first_number(value)
    if number is None:
        if _has(value, ("seul", "alone", "freelance", "independant", "auto-entrepreneur", "myself")):
            return "1-9"
        return None
    if number < 10:
        return "1-9"
    if number < 50:
        return "10-49"
    return "50-249" if number < 250 else "250+"


def _first_number(value: str) -> float | None:
    match = re.search(r"(\d[\d\s.,]*)\s*(k|m|mille|million|millions|thousand)?(?![a-z])", value)
    if not match:
        return None
    digits = match.group(1).strip().replace(" ", "")
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", digits):  # 10.000 / 10,000
        digits = re.sub(r"[.,]", "", digits)
    else:
        digits = digits.replace(",", ".").rstrip(".")
    try:
        number = float(digits)
    except ValueError:
        return None
    unit = match.group(2)
    if unit is None:  # "entre 5 et 10k", "5-10 k€": the range's unit applies to both ends
        shared = re.match(r"\s*(?:et|a|-|to|and)\s*\d[\d.,]*\s*(k|m|mille|million|millions|thousand)(?![a-z])",
                          value[match.end():])
        unit = shared.group(1) if shared else None
    if unit in ("k", "mille", "thousand"):
        number *= 1_000
    elif unit in ("m", "million", "millions"):
        number *= 1_000_000
    return number


def parse_budget(text: str) -> int | None:
    """EUR (the lower bound of a range button), or None when no amount is found."""
    value = plain(text)
    if value in BUDGETS:
        return BUDGETS[value]
    number = _first_number(value)
    return int(number) if number is not None and number < 1e10 else None


def parse_timeline(text: str) -> str | None:
    value = plain(text)
    if value in TIMELINES:
        return value
    if _has(value, ("urgent", "urgence", "asap", "immediat", "immediatement", "tout de suite", "des que possible",
                    "au plus vite", "this month", "ce mois", "right away", "now", "maintenant", "cette semaine",
                    "this week", "demain", "tomorrow")):
        return "now"
    match = re.search(r"(\d+)\s*(mois|months?|semaines?|weeks?|jours?|days?|ans?|years?)", value)
    if match:
        count, unit = int(match.group(1)), match.group(2)
        months = count / 4 if unit[0] in "sw" else count / 30 if unit[0] in "jd" else count * 12 if unit[0] in "ay" else count
        return "now" if months <= 1 else "3m" if months <= 3 else "6m" if months <= 6 else "later"
    if _has(value, ("trimestre", "quarter", "rentree")):
        return "3m"
    if _has(value, ("semestre", "six mois", "six months", "half a year")):
        return "6m"
    if _has(value, ("plus tard", "later", "pas presse", "no rush", "annee prochaine", "next year", "pas de date",
                    "no date", "un jour", "someday")):
        return "later"
    return None


def parse_role(text: str) -> str | None:
    value = plain(text)
    if value in ROLES:
        return value
    if _has(value, ("je decide", "decideur", "decision maker", "i decide", "dirigeant", "gerant", "patron",
                    "directeur", "directrice", "pdg", "ceo", "owner", "fondateur", "founder", "responsable achat",
                    "acheteur", "acheteuse", "buyer", "purchasing", "c'est moi qui", "moi qui decide")):
        return "decision_maker"
    if _has(value, ("recommande", "recommend", "conseille", "prescri", "influence", "propose", "suggest",
                    "mon chef", "my boss", "ma direction", "management decides")):
        return "influencer"
    if _has(value, ("renseigne", "curieux", "curious", "looking around", "just looking", "research", "compare",
                    "etude", "information")):
        return "researcher"
    return None


def parse_contact(text: str) -> tuple[str | None, str | None]:
    """(phone, email) found in the answer; (None, None) when neither is valid."""
    email_match = EMAIL_RE.search(text or "")
    email = email_match.group(0).lower() if email_match else None
    phone = None
    rest = EMAIL_RE.sub(" ", text or "")
    phone_match = PHONE_RE.search(rest)
    if phone_match:
        digits = re.sub(r"\D", "", phone_match.group(0))
        if 9 <= len(digits) <= 15:
            phone = ("+" if phone_match.group(0).startswith("+") else "") + digits
    return phone, email


def lead_rules() -> dict:
    return company_profile().get("leads", {})


def score_lead(lead: Lead) -> tuple[int, list[str]]:
    """The score (0 to 100) and what made it, from company.yml's `leads.score` rules."""
    rules = lead_rules().get("score", {})
    points, details = 0, []

    def add(name: str, value: int) -> None:
        nonlocal points
        if value:
            points += value
            details.append(f"{name} +{value}")

    if lead.budget_eur is not None:
        for floor, value in rules.get("budget", []):
            if lead.budget_eur >= floor:
                add("budget", int(value))
                break
    add("role", int((rules.get("role") or {}).get(lead.role, 0)) if lead.role else 0)
    add("need", int(rules.get("need", 0)) if (lead.need or "").strip() else 0)
    add("timeline", int((rules.get("timeline") or {}).get(lead.timeline, 0)) if lead.timeline else 0)
    add("size", int((rules.get("size") or {}).get(lead.size, 0)) if lead.size else 0)
    return min(points, 100), details


def hot_threshold() -> int:
    return int(lead_rules().get("hot_threshold", 70))


def save_lead(session: Session, client: Client, answers: dict, complete: bool) -> Lead:
    """Record the answers on the client's open lead (or a new one), score it and set its status:
    qualified when every question was asked, hot at or above the threshold, new otherwise.
    A lead a manager already moved on (contacted) keeps its status. Returns the lead."""
    lead = session.scalar(select(Lead).where(Lead.client_id == client.id, Lead.status.in_(OPEN_STATUSES))
                          .order_by(Lead.id.desc()).limit(1))
    if lead is None:
        lead = Lead(client_id=client.id, status="new", score=0, score_details="")
        session.add(lead)
    for field in ("company", "sector", "size", "need", "budget_eur", "budget_text", "timeline", "role", "phone",
                  "email"):
        value = answers.get(field)
        if value not in (None, "", SKIP):
            setattr(lead, field, value[:255] if isinstance(value, str) and field != "need" else value)
    lead.score, details = score_lead(lead)
    lead.score_details = ", ".join(details)
    before = lead.status if lead.id is not None else None
    if lead.status != "contacted":
        if lead.score >= hot_threshold():
            lead.status = "hot"
        elif complete:
            lead.status = "qualified"
    if lead.company and not client.company:
        client.company = lead.company
    if lead.phone and not client.phone:
        client.phone = lead.phone
    if lead.email and not client.email:
        client.email = lead.email
    lead.updated_at = clock.now()
    session.flush()
    if lead.status != before:
        session.add(LeadEvent(lead_id=lead.id, status=lead.status, at=lead.updated_at))
    return lead


def set_lead_status(session: Session, lead_id: int, status: str) -> Lead:
    if status not in LEAD_STATUSES:
        raise LeadError("status", statuses=", ".join(LEAD_STATUSES), status=status)
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise LeadError("unknown", id=lead_id)
    if lead.status != status:
        session.add(LeadEvent(lead_id=lead.id, status=status, at=clock.now()))
    lead.status, lead.updated_at = status, clock.now()
    return lead


def leads_by_score(session: Session, limit: int = 20, open_only: bool = True) -> list[Lead]:
    query = select(Lead)
    if open_only:
        query = query.where(Lead.status.in_(OPEN_STATUSES))
    return list(session.scalars(query.order_by(Lead.score.desc(), Lead.id.desc()).limit(limit)))


def client_leads(session: Session, client: Client) -> list[Lead]:
    return list(session.scalars(select(Lead).where(Lead.client_id == client.id).order_by(Lead.id.desc())))


def label(code: str | None, language: str) -> str:
    return LABELS.t(code, language) if code in LABELS else (code or "")


def budget_label(lead: Lead, language: str) -> str | None:
    if lead.budget_text:
        return lead.budget_text
    return f"≥ {lead.budget_eur} €" if lead.budget_eur is not None else None


def lead_card(session: Session, lead: Lead, language: str) -> str:
    client = session.get(Client, lead.client_id)
    none = TEXTS.t("none", language)
    contact = ", ".join(x for x in (lead.phone, lead.email) if x)
    fields = [
        ("client", client.display_name),
        ("company", lead.company),
        ("sector", lead.sector),
        ("size", label(lead.size, language) if lead.size else None),
        ("need", lead.need),
        ("budget", budget_label(lead, language)),
        ("timeline", label(lead.timeline, language) if lead.timeline else None),
        ("role", label(lead.role, language) if lead.role else None),
        ("contact", contact or None),
    ]
    lines = [TEXTS.t("card_title", language, id=lead.id, score=lead.score, status=label(lead.status, language))]
    lines += [TEXTS.t(key, language, value=value or none) for key, value in fields]
    if lead.score_details:
        lines.append(TEXTS.t("details", language, value=lead.score_details))
    return "\n".join(lines)


def lead_line(session: Session, lead: Lead, language: str) -> str:
    client = session.get(Client, lead.client_id)
    return TEXTS.t("line", language, id=lead.id, score=lead.score, status=label(lead.status, language),
                     client=client.display_name, company=f" ({lead.company})" if lead.company else "",
                     date=lead.created_at)


EXPORT_FIELDS = ("id", "created_at", "status", "score", "score_details", "client_telegram_id", "client_name",
                 "company", "sector", "size", "need", "budget_eur", "budget_text", "timeline", "role", "phone",
                 "email")


def export_leads_csv(session: Session) -> str:
    """Every lead, highest score first, as CSV (UTF-8, comma separated, one header line)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    for lead in leads_by_score(session, limit=1_000_000, open_only=False):
        client = session.get(Client, lead.client_id)
        writer.writerow([lead.id, lead.created_at.isoformat(timespec="seconds"), lead.status, lead.score,
                         cell(lead.score_details), client.telegram_id, cell(client.display_name),
                         cell(lead.company), cell(lead.sector), cell(lead.size), cell(lead.need),
                         "" if lead.budget_eur is None else lead.budget_eur, cell(lead.budget_text),
                         cell(lead.timeline), cell(lead.role), cell(lead.phone), cell(lead.email)])
    return out.getvalue()


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(text: str | None) -> str:
    """A text cell a spreadsheet will not run: what a client typed (a company "=HYPERLINK(...)")
    starting like a formula gets a leading apostrophe, which spreadsheets show as plain text."""
    text = text or ""
    return "'" + text if text.startswith(FORMULA_START) else text
