"""Staff members and their roles (manager, marketer, admin)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm.i18n import Refusal, Texts
from crm.models import ROLES, Staff


class StaffError(Refusal):
    texts = Texts("staff.error")


DESK_ROLES = ("manager", "admin")


def add_staff(session: Session, telegram_id: int, role: str, name: str) -> Staff:
    """Add a staff member, or update the role and name of an existing one (and reactivate).
    What that changes at the desk (a manager leaving it) is crm.handoffs.update_staff's."""
    if role not in ROLES:
        raise StaffError("role", roles=", ".join(ROLES), role=role)
    if not name.strip():
        raise StaffError("name")
    member = session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))
    if member is None:
        member = Staff(telegram_id=telegram_id)
        session.add(member)
    member.role, member.name, member.active = role, name.strip(), True
    session.flush()
    return member


def list_staff(session: Session) -> list[Staff]:
    return list(session.scalars(select(Staff).order_by(Staff.role, Staff.name)))


def remove_staff(session: Session, telegram_id: int) -> Staff:
    """Deactivate (the history of what they did stays attached to them). The conversations they
    held going back to the queue is crm.handoffs.dismiss_staff's."""
    member = session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))
    if member is None or not member.active:
        raise StaffError("unknown", telegram_id=telegram_id)
    member.active = False
    session.flush()
    return member


def active_staff(session: Session, telegram_id: int) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.telegram_id == telegram_id, Staff.active.is_(True)))


def staff_role(session: Session, telegram_id: int) -> str | None:
    member = active_staff(session, telegram_id)
    return member.role if member else None


def managers_on_duty(session: Session) -> list[Staff]:
    """Active managers and admins: the people the desk notifies."""
    return list(session.scalars(
        select(Staff).where(Staff.active.is_(True), Staff.role.in_(DESK_ROLES)).order_by(Staff.id)))


def account_manager_of(session: Session, client) -> Staff | None:
    """The client's assigned account manager, while they are an active manager or admin."""
    if client.account_manager_id is None:
        return None
    member = session.get(Staff, client.account_manager_id)
    return member if member is not None and member.active and member.role in DESK_ROLES else None
