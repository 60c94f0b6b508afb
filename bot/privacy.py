"""A client's personal data in Telegram (crm/privacy.py): `/mydata` (or saying so: the assistant
answers with a "privacy" payload, see deliver_privacy) sends the file of everything held about
them; `/forget` (or saying so) explains what is erased and what the law keeps, and erases only
once the client confirms with a button. Admins erase a client with `/forget TELEGRAM_ID`.

The erasure runs under the client's chat lock, so that no message of theirs is at Rasa while
their conversation is deleted from its tracker store. What the client is told after it is sent
directly, never through the outbox: nothing about them is written again."""

from __future__ import annotations

import asyncio
import json
import logging

from sqlalchemy import select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import TelegramError

from bot.callbacks import callback_data, parse
from bot.shared import Context, safe_send
from crm import privacy
from crm.company import company_profile
from crm.i18n import Texts, normalise_language
from crm.models import Client
from crm.staff import active_staff

log = logging.getLogger(__name__)
TEXTS = Texts("privacy")


def _language(user) -> str:
    """The language of someone we hold nothing about: their Telegram's, if we speak it."""
    return normalise_language(user.language_code)


async def _client(assistant, telegram_id: int) -> tuple[int, str] | None:
    """(client id, language) of the client with this Telegram id, None if we hold nothing."""
    row = await assistant.db(lambda s: s.execute(
        select(Client.id, Client.language).where(Client.telegram_id == telegram_id)).first())
    return (row[0], row[1]) if row else None


async def _admin(assistant, telegram_id: int) -> str | None:
    """The language of this admin, None when they are not an active admin."""
    def work(session):
        member = active_staff(session, telegram_id)
        return member.language if member is not None and member.role == "admin" else None

    return await assistant.db(work)


async def send_export(bot, assistant, user, chat_id: int) -> None:
    """The client's file, as a JSON document in their chat."""
    found = await _client(assistant, user.id)
    language = found[1] if found else _language(user)
    if found is None:
        await safe_send(bot, chat_id, TEXTS.t("mydata.none", language))
        return

    def work(session):
        return privacy.export_client(session, session.get(Client, found[0]))

    try:
        document = await assistant.db(work)
    except Exception:  # the CRM is down: say so, never a silence
        log.exception("the data export failed")
        await safe_send(bot, chat_id, TEXTS.t("mydata.failed", language))
        return
    data = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    try:
        await bot.send_document(chat_id, InputFile(data, filename=TEXTS.t("mydata.file", language)),
                                caption=TEXTS.t("mydata.caption", language, company=company_profile().get("name", "")))
    except TelegramError as exc:
        log.warning("could not send the data export: %s", type(exc).__name__)
        await safe_send(bot, chat_id, TEXTS.t("mydata.failed", language))


def _confirm_buttons(client_id: int, language: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(TEXTS.t("forget.yes", language), callback_data=callback_data("forget", client_id, "yes"))],
        [InlineKeyboardButton(TEXTS.t("forget.no", language), callback_data=callback_data("forget", client_id, "no"))],
    ])


async def ask_forget(bot, assistant, user, chat_id: int) -> None:
    """What an erasure does and keeps, with the buttons to confirm or cancel."""
    found = await _client(assistant, user.id)
    if found is None:
        await safe_send(bot, chat_id, TEXTS.t("forget.none", _language(user)))
        return
    client_id, language = found
    await safe_send(bot, chat_id, TEXTS.t("forget.ask", language), markup=_confirm_buttons(client_id, language))


async def mydata_command(update: Update, context: Context) -> None:
    await send_export(context.bot, context.assistant, update.effective_user, update.effective_chat.id)


async def forget_command(update: Update, context: Context) -> None:
    """/forget: the client's own erasure (asked, then confirmed); /forget ID: an admin's."""
    user, chat_id = update.effective_user, update.effective_chat.id
    args = context.args or []
    if not args:
        await ask_forget(context.bot, context.assistant, user, chat_id)
        return
    language = await _admin(context.assistant, user.id)
    if language is None:
        found = await _client(context.assistant, user.id)
        await safe_send(context.bot, chat_id, TEXTS.t("forget.admins_only", found[1] if found else _language(user)))
        return
    if len(args) != 1 or not args[0].isdigit() or len(args[0]) > 15:
        await safe_send(context.bot, chat_id, TEXTS.t("forget.usage", language))
        return
    target = await context.assistant.db(lambda s: s.execute(
        select(Client.id, Client.first_name, Client.last_name).where(Client.telegram_id == int(args[0]))).first())
    if target is None:
        await safe_send(context.bot, chat_id, TEXTS.t("forget.unknown", language, id=args[0]))
        return
    name = f"{target[1]} {target[2]}".strip() or args[0]
    await safe_send(context.bot, chat_id, TEXTS.t("forget.staff_ask", language, name=name, id=args[0]),
                    markup=_confirm_buttons(target[0], language))


async def forget_button(update: Update, context: Context) -> None:
    """"Erase my data" or "Cancel", pressed by the client themselves or by an admin. A button of
    an erased client (pressed twice, or after they came back as a new client) erases nothing."""
    query, user = update.callback_query, update.effective_user
    client_id, choice = parse("forget", query.data) or (None, "")
    helper = context.assistant
    row = await helper.db(lambda s: s.execute(select(Client.telegram_id, Client.language, Client.erased_at)
                                              .where(Client.id == client_id)).first()) if client_id else None
    admin_language = await _admin(helper, user.id)
    own = row is not None and row[0] == user.id
    language = row[1] if own else admin_language or _language(user)
    if row is None or choice not in ("yes", "no") or not (own or admin_language or row[2] is not None):
        await query.answer(TEXTS.t("forget.invalid", language), show_alert=True)
        return
    if row[2] is not None:
        await query.answer(TEXTS.t("forget.already", language), show_alert=True)
        return
    await query.answer()
    if choice == "no":
        await _edit(query, TEXTS.t("forget.cancelled", language))
        return
    telegram_id, client_language = row[0], row[1]
    by = "client" if own else f"staff:{user.id}"
    try:
        async with helper.chat_lock(telegram_id):
            erased = await asyncio.to_thread(privacy.forget, helper.engine, telegram_id, by,
                                             context.settings.tracker_store_url)
    except privacy.PrivacyError as exc:
        if exc.key not in ("unknown", "erased"):  # a double tap: the first press has done it all
            await _edit(query, exc.text(language))
        return
    await safe_send(context.bot, telegram_id, TEXTS.t("forget.done", client_language))
    for chat, thread in erased.topics:  # the copies of the conversation in the staff group go too
        try:
            await context.bot.delete_forum_topic(chat, thread)
        except TelegramError as exc:
            log.warning("could not delete an erased client's topic in the staff group: %s", type(exc).__name__)
    if not own:
        counts = ", ".join(f"{TEXTS.t('category.' + name, language)} {count}"
                           for name, count in erased.counts.items() if count)
        await _edit(query, TEXTS.t("forget.staff_done", language, id=telegram_id, counts=counts or "—"))
    else:
        await _edit(query, TEXTS.t("forget.erased", client_language))


async def _edit(query, text: str) -> None:
    try:
        await query.edit_message_text(text)
    except TelegramError as exc:
        log.info("could not edit the erasure message: %s", type(exc).__name__)


async def deliver_privacy(bot, assistant, user, chat_id: int, kind: str) -> None:
    """The assistant understood a request about the client's data (actions/privacy.py answers
    with the custom payload {"privacy": "export" | "forget"}): the same as /mydata or /forget."""
    if kind == "export":
        await send_export(bot, assistant, user, chat_id)
    elif kind == "forget":
        await ask_forget(bot, assistant, user, chat_id)
