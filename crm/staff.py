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
    """Add a staff member, or update the role and name of an existing one (and reactivate). A
    manager given a role off the desk (marketer) hands their conversations back to the queue."""
    if role not in ROLES:
        raise StaffError("role", roles=", ".join(ROLES), role=role)
    if not name.strip():
        raise StaffError("name")
    member = session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))
    if member is None:
        member = Staff(telegram_id=telegram_id)
        session.add(member)
    leaves_desk = member.active and member.role in DESK_ROLES and role not in DESK_ROLES
    member.role, member.name, member.active = role, name.strip(), True
    session.flush()
    if leaves_desk:
        _release(session, member)
    return member


def _release(session: Session, member: Staff) -> list[int]:
    from crm.handoffs import release_held  # the desk needs staff; staff changes move the desk

    return release_held(session, member)


def list_staff(session: Session) -> list[Staff]:
    return list(session.scalars(select(Staff).order_by(Staff.role, Staff.name)))


def remove_staff(session: Session, telegram_id: int) -> Staff:
    """Deactivate (the history of what they did stays attached to them). The conversations they
    held go back to the queue: the other managers and the clients are told."""
    member = session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))
    if member is None or not member.active:
        raise StaffError("unknown", telegram_id=telegram_id)
    member.active = False
    session.flush()
    _release(session, member)
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
