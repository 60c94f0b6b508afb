"""/report in Telegram, and the monthly report to the admins.

`/report [part] [period]`: managers and admins get every part, marketers the audience, sales and
broadcasts (crm.reports.ROLE_SECTIONS); anyone else is refused. The figures are read in a worker
thread (the bot keeps answering clients meanwhile), sent as text, then the charts as one album.

The monthly job claims last month's report once for all bot processes and queues one PDF per
admin in the outbox (crm.reports.queue_monthly); the outbox builds the PDF when it sends it
(`monthly_pdf`, an outbox attachment kind), so a restart neither loses nor doubles it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from telegram import InputFile, InputMediaPhoto, Update
from telegram.error import TelegramError

from bot.render import split_text
from bot.report_render import charts, pdf_bytes, pdf_name, summary_text
from bot.shared import Context, safe_send
from bot.staff import Member, staff_only
from crm import periods, reports
from crm.i18n import Texts, languages
from crm.models import Staff
from crm.outbox import Outgoing
from crm.staff import staff_role
from crm.text import fold

log = logging.getLogger(__name__)
TEXTS = Texts("report")
PARTS = Texts("report.part")
STAFF_ROLES = ("manager", "admin", "marketer")


def part_words() -> dict[str, str]:
    """The word of each part in every language ("accueil", "desk"), folded: -> the section."""
    return {fold(PARTS.t(section, language)): section for section in reports.SECTIONS for language in languages()}


def parts_text(sections: tuple[str, ...], language: str) -> str:
    return ", ".join(PARTS.t(section, language) for section in sections)


@staff_only(STAFF_ROLES)
async def report_command(update: Update, context: Context, member: Member) -> None:
    language, chat_id = member.language, update.effective_chat.id
    words = list(context.args or [])
    role = await context.assistant.db(lambda s: staff_role(s, update.effective_user.id))
    allowed = reports.ROLE_SECTIONS.get(role, ())
    sections = allowed
    if words and fold(words[0]) in ("help", "aide", "?"):
        await safe_send(context.bot, chat_id, TEXTS.t("usage", language))
        return
    if words and fold(words[0]) in part_words():
        asked = part_words()[fold(words[0])]
        if asked not in allowed:
            await safe_send(context.bot, chat_id, TEXTS.t("refused_part", language, parts=parts_text(allowed, language)))
            return
        sections, words = (asked,), words[1:]
    try:
        period = periods.parse_period(words)
    except periods.PeriodError as exc:
        await safe_send(context.bot, chat_id, TEXTS.t(f"period_error.{exc.key}", language, **exc.values))
        return
    await safe_send(context.bot, chat_id, TEXTS.t("working", language, period=periods.period_name(period, language)))
    try:
        report = await context.assistant.db(lambda s: reports.build_report(s, period, sections))
        text = summary_text(report, language)
    except DBAPIError:
        raise  # the CRM unreachable: the update is handled again shortly (bot/app.py on_error)
    except Exception:
        log.exception("could not build the report of %s to %s", period.first, period.last)
        await safe_send(context.bot, chat_id, TEXTS.t("failed", language))
        return
    for chunk in split_text(text):
        await safe_send(context.bot, chat_id, chunk)
    try:
        images = await asyncio.to_thread(charts, report, language)
    except Exception:
        log.exception("could not draw the report's charts")
        images = None
    if images is None:
        await safe_send(context.bot, chat_id, TEXTS.t("charts_failed", language))
    else:
        await send_charts(context.bot, chat_id, images, language)


async def send_charts(bot, chat_id: int, images: list[tuple[str, bytes]], language: str) -> None:
    """One album (a single photo when there is one chart; nothing when there is none)."""
    if not images:
        return
    try:
        if len(images) == 1:
            name, png = images[0]
            await bot.send_photo(chat_id, InputFile(png, filename=f"{name}.png"))
        else:
            await bot.send_media_group(chat_id, [InputMediaPhoto(png, filename=f"{name}.png") for name, png in images])
    except TelegramError as exc:
        log.warning("could not send the report's charts to %s: %s", chat_id, exc)
        await safe_send(bot, chat_id, TEXTS.t("charts_failed", language))


MONTHLY_INTERVAL = 600.0


async def monthly_report(context: Context, now: datetime | None = None) -> None:
    """Every few minutes: when last month's report is due and no bot process has claimed it, claim
    it and queue it for every admin (the outbox sends the PDFs). `now`: the clock's, by default."""
    try:
        queued = await context.assistant.db(lambda s: reports.queue_monthly(s, now))
    except Exception:  # the CRM unreachable for a moment: the next round claims it
        log.exception("could not queue the monthly report")
        return
    if queued is not None:
        period, admins = queued
        log.info("monthly report of %s queued for %d admin(s)", period.month, admins)


def monthly_pdf(session: Session, row: Outgoing) -> tuple[str, bytes] | None:
    """The outbox attachment "report:YYYY-MM": that month's PDF in its admin's language, built now."""
    period = reports.month_of_attachment(row.attachment or "")
    if period is None:
        return None
    language = session.scalar(select(Staff.language).where(Staff.telegram_id == row.chat_id)) or "fr"
    report = reports.build_report(session, period)
    return pdf_name(period, language), pdf_bytes(report, language)
