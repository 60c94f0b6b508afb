"""Staff commands in Telegram: change an order's status, resolve a complaint. Managers and
admins only; anyone else gets a polite refusal and changes nothing."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram import Update

from bot.shared import Context
from bot.render import split_text
from crm.complaints import ComplaintError, parse_complaint_number, resolution_message, resolve_complaint
from crm.i18n import Texts, normalise_language
from crm.models import ORDER_STATUSES, Client
from crm.orders import OrderError, parse_order_number, set_order_status, status_label
from crm.staff import active_staff

TEXTS = Texts("bot.staff")


async def staff_member(update: Update, context: Context, roles=("manager", "admin")):
    """(staff, language) for an active staff member with one of `roles`; otherwise refuse politely:
    a command with a message, a pressed button with an alert that it is no longer valid."""
    from sqlalchemy import select

    user = update.effective_user

    def work(session):
        member = active_staff(session, user.id)
        if member is not None:
            return (member.id, member.language) if member.role in roles else (None, member.language)
        client = session.scalar(select(Client.language).where(Client.telegram_id == user.id))
        return None, client or normalise_language(user.language_code)

    member_id, language = await context.assistant.db(work)
    if member_id is None and update.callback_query is not None:
        await update.callback_query.answer(TEXTS.t("button_refused", language), show_alert=True)
    elif member_id is None:
        await update.effective_message.reply_text(TEXTS.t("refused", language))
    return member_id, language


@dataclass(frozen=True)
class Member:
    """The staff member a command came from."""

    id: int
    language: str


def staff_only(roles=("manager", "admin")):
    """A command or a button for staff with one of `roles`: the handler gets the Member as a third
    argument; anyone else gets the polite refusal in their language, and the handler does not run."""
    def wrap(handler: Callable[..., Awaitable[None]]):
        @functools.wraps(handler)
        async def run(update: Update, context: Context) -> None:
            member_id, language = await staff_member(update, context, roles)
            if member_id is not None:
                await handler(update, context, Member(member_id, language))
        return run
    return wrap


@staff_only()
async def order_command(update: Update, context: Context, member: Member) -> None:
    language = member.language
    args = context.args or []
    number = parse_order_number(args[0]) if args else None
    status = args[1].lower() if len(args) == 2 else None
    if number is None or status not in ORDER_STATUSES:
        await update.effective_message.reply_text(
            TEXTS.t("order_usage", language, statuses=", ".join(ORDER_STATUSES)))
        return
    try:
        await context.assistant.db(lambda s: set_order_status(s, number, status))
    except OrderError as exc:
        await update.effective_message.reply_text(TEXTS.t("error", language, error=exc.text(language)))
        return
    await update.effective_message.reply_text(
        TEXTS.t("order_done", language, number=number, status=status_label(status, language)))


@staff_only()
async def resolve_command(update: Update, context: Context, member: Member) -> None:
    language = member.language
    args = context.args or []
    number = parse_complaint_number(args[0]) if args else None
    resolution = " ".join(args[1:]).strip()
    if number is None or not resolution:
        await update.effective_message.reply_text(TEXTS.t("resolve_usage", language))
        return
    def work(session):
        complaint = resolve_complaint(session, number, resolution)
        client = session.get(Client, complaint.client_id)
        return len(split_text(resolution_message(complaint, client.language)))

    try:
        parts = await context.assistant.db(work)
    except ComplaintError as exc:
        await update.effective_message.reply_text(TEXTS.t("error", language, error=exc.text(language)))
        return
    await update.effective_message.reply_text(TEXTS.t(
        "resolved", language, number=number, length=len(resolution),
        parts=TEXTS.t("parts", language, count=parts) if parts > 1 else ""))
