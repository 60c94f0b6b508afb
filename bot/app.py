"""The Telegram application: handlers that translate Telegram to our code and back, assembled in
`build_application` so the whole surface of the bot reads in one screen."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardRemove, Update, User
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import broadcasts, desk, leads, privacy, reports, review
from bot.broadcaster import run_sender
from bot.callbacks import callback_data, handler_pattern, parse
from bot.outbox import INTERVAL, deliver_outbox
from bot.rasa_client import Answer, RasaClient, RasaUnavailable
from bot.replicas import HEARTBEAT, Replicas
from bot.render import CAPTION_LIMIT, keyboard, split_text
from crm import clock, inbox, retention
from crm.alerts import alert_profile_refused
from crm.buttons import keep_buttons, new_batch, payload_for, plan_buttons, purge_buttons
from crm.choices import typed_choice
from bot.settings import Settings
from bot.shared import ROUTE, Context, assistant_only, route as route_read, safe_send, score_button
from bot.staff import order_command, resolve_command
from bot.texts import TEXTS, commands
from bot.transport import TelegramRequest
from crm.clients import (
    Known,
    TelegramProfile,
    backlog,
    claim_unanswered,
    mark_answered,
    recorded,
    recorded_id,
    recorded_message,
    record_answers,
    record_incoming,
    record_message,
    register_client,
    set_language,
    set_reachable,
    settle,
    touch_client,
    touch_or_register,
)
from crm.complaints import rate_complaint
from crm.consent import TEXTS as CONSENT_TEXTS
from crm.consent import set_consent
from crm.db import engine_for, unit_of_work
from crm.handoffs import client_text, open_handoff_of, request_callback, route_of
from crm.i18n import DEFAULT_LANGUAGE, language_name, languages, normalise_language
from crm.models import Client
from crm.text import shorten
from crm.settings import install
from crm.staff import staff_role

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_TEXT = 4096


class Assistant:
    """What the handlers share: the CRM, Rasa, and one lock per chat (in Redis too when several
    bot processes run: bot/replicas.py) so that a client's messages reach Rasa in the order they
    were written even though updates are handled concurrently."""

    def __init__(self, engine: Engine, rasa: RasaClient, action_health: str | None = None,
                 replicas: Replicas | None = None):
        self.engine = engine
        self.rasa = rasa
        self.action_health = action_health
        self.replicas = replicas or Replicas()
        # Updates marked done in the inbox with their answers (one unit of work less a message).
        self.finished: set[int] = set()
        self._actions_reachable = False  # seen answering once: its silence then means it is down
        # What was just sent is written down here, not behind the other work queued for the
        # default threads: a process killed between a send and its record (the send then
        # repeated by another process, with an apology) has milliseconds to be caught in.
        self._after_send: ThreadPoolExecutor | None = None

    async def db(self, work: Callable[[Session], T], persist: bool = False, core: bool = False) -> T:
        """Run `work` in a unit of work, in a thread. `persist`: what was just done in Telegram
        must be written down (an answer sent): with the CRM unreachable, try again for a minute
        rather than forget it was sent (and send it twice later). `core`: `work` runs SQLAlchemy
        Core statements only (the path of every message), on a Connection in a transaction: a
        Session's bookkeeping costs more than such a statement."""
        def run() -> T:
            with (self.engine.begin() if core else unit_of_work(self.engine)) as session:
                return work(session)

        attempts, delay = (12 if persist else 1), 0.25
        for attempt in range(1, attempts + 1):
            try:
                if persist:
                    if self._after_send is None:
                        self._after_send = ThreadPoolExecutor(max_workers=2, thread_name_prefix="after-send")
                    return await asyncio.get_running_loop().run_in_executor(self._after_send, run)
                return await asyncio.to_thread(run)
            except DBAPIError as exc:
                if attempt == attempts:
                    raise
                log.warning("the CRM is unreachable (%s): writing again in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)

    def close(self) -> None:
        """The threads that write down what was sent end (nothing is left in hand by now)."""
        executor, self._after_send = self._after_send, None
        if executor is not None:
            executor.shutdown(wait=True)

    async def client(self, user: User) -> tuple[int, str]:
        """Register (or refresh) the client; return (client id, language)."""

        def work(session):
            client, _ = register_client(session, profile(user))
            return client.id, client.language

        return await self.db(work)

    async def desk_holds(self, telegram_id: int) -> tuple[str, str, datetime] | None:
        return await self.db(lambda s: desk_hold(s, telegram_id))

    async def actions_down(self) -> bool:
        """Whether the action server, reachable from here before, is down now. Rasa answers
        nothing (not an error) when it cannot reach the actions: without this check the client
        would be asked to rephrase a message the assistant never really handled. A bot that
        cannot reach the action server at all (another network) never concludes it is down."""
        if not self.action_health:
            return False
        reachable = await self.rasa.probe(self.action_health)
        self._actions_reachable = self._actions_reachable or reachable
        return self._actions_reachable and not reachable

    def chat_lock(self, chat_id):
        """Held while one message of a chat is handled (desk routing, Rasa, answers), in every
        bot process; re-entrant within a task."""
        return self.replicas.hold(chat_id)

    async def converse(self, bot, user: User, chat_id: int, text: str, kind: str = "text",
                       update_id: int | None = None) -> None:
        """One client message to Rasa and its answers back. Never raises for Rasa or Telegram.
        The caller holds the chat's lock. The message is recorded owed an answer until it is
        delivered. An update replayed after a crash (or handled for a dead replica) whose message
        was recorded and not answered is answered now, in its turn: holding the chat's lock for
        every process, nobody else is answering it. Without that certainty (Redis unreachable)
        it is left to answer_backlog (once the dead process's claim is stale)."""
        orphans = self.replicas.exclusive(chat_id)

        def record_in(session):
            message = recorded_message(session, update_id)
            if message is not None and (message.answered or message.direction != "in" or not orphans):
                return None
            if message is None:
                client = touch_client(session, profile(user)) or register_client(session, profile(user))[0]
                return record_new(session, client, text, kind, update_id)
            # Recorded by a process that died before answering: ours now.
            message.claimed_at = clock.now()
            client = session.get(Client, message.client_id)
            said, read = what_goes_to_rasa(session, client, text, kind)
            if read:
                message.understood = True
            return client.id, client.language, message.id, said, True

        looked = ROUTE.get()
        if looked is not None and looked[0] == update_id and looked[2] is not None and kind == "text":
            found = looked[2]  # recorded with the chat's look-up (AssistantApplication.process_update)
        else:
            found = await self.db(record_in)
        if found is None:
            return
        client_id, language, message_id, said, orphan = found
        metadata = {
            "language": language,
            "language_code": user.language_code,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "username": user.username,
            "message": message_id,  # the row the action server marks when the model falls back
        }
        try:
            answers = await self.rasa.send(str(user.id), said, metadata)
        except RasaUnavailable:
            # Kept unanswered: answer_backlog answers it once Rasa is back.
            await self.db(lambda s: settle(s, message_id, answered=False))
            await safe_send(bot, chat_id, TEXTS.t("rasa_down", language))
            return
        if orphan and answers:
            # The process that died may have sent its answer just before: said as answer_backlog says it.
            await safe_send(bot, chat_id, back_text(text if kind == "text" else "", language))
        await self._answer(bot, chat_id, client_id, language, answers, message_id, update_id)

    async def _answer(self, bot, chat_id: int, client_id: int, language: str, answers: list[Answer],
                      message_id: int, update_id: int | None = None) -> None:
        if not answers and await self.actions_down():  # owed an answer once the actions are back
            await self.db(lambda s: settle(s, message_id, answered=False))
            await safe_send(bot, chat_id, TEXTS.t("rasa_down", language))
            return
        if not answers:  # Rasa answered nothing (an action failed): never leave silence
            await safe_send(bot, chat_id, TEXTS.t("no_answer", language))
            await self.db(lambda s: mark_answered(s, message_id))
            return
        await self.deliver(bot, chat_id, client_id, answers, message_id, update_id)

    async def answer_backlog(self, bot) -> int:
        """Rasa is back: each client's last message it could not answer gets its answer, once (a
        claim in the CRM decides between two bot processes), oldest first, with an apology for
        the wait. Stops at the first failure: Rasa is still down. Returns how many were answered."""
        answered = 0
        for waiting in await self.db(backlog):
            chat_id = waiting.telegram_id
            async with self.chat_lock(chat_id):
                if not await self.db(lambda s: claim_unanswered(s, waiting.message_id)):
                    continue  # another process has it, or the client wrote again meanwhile
                if await self.desk_holds(chat_id) is not None:
                    # A manager has the conversation and reads the message there.
                    await self.db(lambda s: mark_answered(s, waiting.message_id))
                    continue
                metadata = {"language": waiting.language, "first_name": waiting.first_name,
                            "last_name": waiting.last_name, "username": waiting.username,
                            "message": waiting.message_id}
                try:
                    answers = await self.rasa.send(str(chat_id), waiting.text, metadata)
                except RasaUnavailable:
                    await self.db(lambda s: settle(s, waiting.message_id, answered=False))
                    return answered
                if not answers and await self.actions_down():  # the actions are still away: later
                    await self.db(lambda s: settle(s, waiting.message_id, answered=False))
                    return answered
                await safe_send(bot, chat_id, back_text(waiting.text if waiting.kind == "text" else "",
                                                        waiting.language))
                client_id = await self.db(lambda s: s.scalar(select(Client.id).where(Client.telegram_id == chat_id)))
                await self._answer(bot, chat_id, client_id, waiting.language, answers, waiting.message_id)
                answered += 1
        return answered

    async def deliver(self, bot, chat_id: int, client_id: int, answers: list[Answer],
                      message_id: int | None = None, update_id: int | None = None) -> None:
        """Send Rasa's answers, then record them (and the message they answer as answered, and
        the update `update_id` done in the inbox when nothing is left to do for it) with their
        buttons' payloads, in one unit of work after the sends: the caller holds the chat's lock
        until then, and a press is handled under that lock, so it always finds its payload. The
        buttons of the last answer are the client's choices on screen (crm/choices.py)."""
        batch = new_batch() if answers and answers[-1].buttons else None
        buttons: list[dict] = []  # kept with the answers, after the sends (crm.buttons.plan_buttons)
        for i, answer in enumerate(answers):
            rows = plan_buttons(chat_id, answer.buttons, batch if i == len(answers) - 1 else None)
            buttons += rows
            markup = keyboard([(row["title"], callback_data("choice", row["token"])) for row in rows])
            if answer.image:
                caption = answer.text if len(answer.text) <= CAPTION_LIMIT else None
                await safe_send(bot, chat_id, caption, photo=answer.image,
                                markup=markup if caption is not None else None)
                if caption is not None:
                    continue
            chunks = split_text(answer.text) or (["…"] if markup else [])
            for i, chunk in enumerate(chunks):
                await safe_send(bot, chat_id, chunk, markup=markup if i == len(chunks) - 1 else None)
        texts = [a.text for a in answers if a.text]
        finishing = update_id if not any(a.privacy for a in answers) else None

        def record_out(session):
            keep_buttons(session, buttons)
            record_answers(session, client_id, texts, batch, message_id)
            if finishing is not None:
                inbox.done(session, finishing)

        await self.db(record_out, persist=True, core=True)
        if finishing is not None:
            self.finished.add(finishing)
        for kind in dict.fromkeys(a.privacy for a in answers if a.privacy):  # "send me my data", "erase it"
            await privacy.deliver_privacy(bot, self, User(chat_id, "", False), chat_id, kind)


def what_goes_to_rasa(session: Session | Connection, client: Client | Known, text: str,
                      kind: str) -> tuple[str, bool | None]:
    """What Rasa is sent for a client's message, and whether the model reads it (True: the action
    server notes a fallback on it; None: not read by the model). A typed answer naming one of the
    buttons on screen ("livraison", "mardi 10h") is that button pressed; anything else goes to
    Rasa as written."""
    said = (typed_choice(session, client, text) if kind == "text" else None) or text
    return said, (True if kind == "text" and said == text and not text.startswith("/") else None)


def record_new(session: Session | Connection, client: Client | Known, text: str, kind: str,
               update_id: int | None) -> tuple[int, str, int, str, bool]:
    """A known client's message not recorded yet, recorded owed its answer: (client id, language,
    message id, what goes to Rasa, False: no process answered it before)."""
    said, read = what_goes_to_rasa(session, client, text, kind)
    return client.id, client.language, record_incoming(session, client.id, text, kind, update_id, read), said, False


def typed_text(update: Update) -> str:
    """What a text message says, as the assistant reads it."""
    return (update.effective_message.text or "").strip()[:MAX_TEXT]


def back_text(quoted: str, language: str) -> str:
    """The apology before a late answer, quoting the message it answers (a text)."""
    return TEXTS.t("back" if quoted else "back_no_quote", language, text=shorten(quoted, 120))


def desk_hold(session: Session, telegram_id: int) -> tuple[str, str, datetime] | None:
    """(status, language, since when) while the client's conversation is with the desk (queued
    or held by a manager): then nothing they do reaches Rasa."""
    client = session.scalar(select(Client).where(Client.telegram_id == telegram_id))
    handoff = open_handoff_of(session, client) if client is not None else None
    return (handoff.status, client.language, handoff.opened_at) if handoff is not None else None


def profile(user: User) -> TelegramProfile:
    return TelegramProfile(user.id, user.first_name or "", user.last_name or "", user.username,
                           user.language_code)




# --- handlers ----------------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    user, chat = update.effective_user, update.effective_chat
    helper = context.assistant
    async with helper.chat_lock(chat.id):
        held = await helper.desk_holds(user.id)
        if held is not None:  # the desk has the conversation: /start must not restart the assistant
            status, language, _ = held
            await safe_send(context.bot, chat.id, client_text(f"desk_{status}", language))
            return
        await helper.converse(context.bot, user, chat.id, "/greet", kind="command")


async def help_command(update: Update, context: Context) -> None:
    helper = context.assistant
    _, language = await helper.client(update.effective_user)
    text = TEXTS.t("help", language)
    role = await helper.db(lambda s: staff_role(s, update.effective_user.id))
    if role in ("manager", "admin"):
        text += TEXTS.t("staff_help", language)
    if role in ("marketer", "admin"):
        text += TEXTS.t("marketer_help", language)
    await safe_send(context.bot, update.effective_chat.id, text)


async def language_command(update: Update, context: Context) -> None:
    _, language = await context.assistant.client(update.effective_user)
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(language_name(code), callback_data=callback_data("language", code)) for code in languages()]]
    )
    await safe_send(context.bot, update.effective_chat.id,
                    TEXTS.t("choose_language", language), markup=markup)


async def language_chosen(update: Update, context: Context) -> None:
    query = update.callback_query
    [choice] = parse("language", query.data) or [""]
    helper = context.assistant
    client_id, language = await helper.client(update.effective_user)
    if choice not in languages():
        await query.answer(TEXTS.t("button_expired", language), show_alert=True)
        return

    def work(session):
        set_language(session, session.get(Client, client_id), choice)

    await helper.db(work)
    await query.answer()
    try:
        await query.edit_message_text(TEXTS.t("language_set", choice))
    except TelegramError as exc:
        log.info("could not edit the language message: %s", exc)


async def text_message(update: Update, context: Context) -> None:
    message = update.effective_message
    text = typed_text(update)
    if not text:
        _, language = await context.assistant.client(update.effective_user)
        await safe_send(context.bot, message.chat_id, TEXTS.t("empty", language))
        return
    helper = context.assistant
    async with helper.chat_lock(message.chat_id):
        if not assistant_only(update) and (
                await broadcasts.compose_input(update, context) or await desk.relay_from_manager(update, context)
                or await desk.relay_from_client(update, context)):
            return
        await helper.converse(context.bot, update.effective_user, message.chat_id, text, update_id=update.update_id)


async def button(update: Update, context: Context) -> None:
    """A button of a Rasa answer: its payload goes to Rasa as if the client had typed it."""
    query = update.callback_query
    helper = context.assistant
    # Buttons live in the client's private chat, whose id is the client's own id: a button is
    # honoured only for the client it was sent to.
    chat_id = update.effective_user.id

    def work(session):
        # While the desk has the conversation, only buttons it sent since (a manager's proposal
        # of meeting slots) work: an old "Confirm" must not place an order behind its back.
        held = desk_hold(session, chat_id)
        [token] = parse("choice", query.data) or [None]
        return held, payload_for(session, chat_id, token, sent_after=held[2] if held else None)

    held, payload = await helper.db(work)
    if payload is None and held is not None:
        status, language, _ = held
        await query.answer(client_text(f"desk_{status}", language)[:200], show_alert=True)
        return
    if payload is None:
        _, language = await helper.client(update.effective_user)
        await query.answer(TEXTS.t("button_expired", language), show_alert=True)
        return
    await query.answer()
    async with helper.chat_lock(chat_id):
        await helper.converse(context.bot, update.effective_user, chat_id, payload, kind="button",
                              update_id=update.update_id)


async def consent_command(update: Update, context: Context) -> None:
    """/subscribe and /stop: promotional consent, effective at once, recorded with its source."""
    granted = update.effective_message.text.split()[0].split("@")[0].lower() == "/subscribe"
    helper = context.assistant

    def work(session):
        client, _ = register_client(session, profile(update.effective_user))
        set_consent(session, client, granted, "command")
        return client.language

    language = await helper.db(work)
    await safe_send(context.bot, update.effective_chat.id,
                    CONSENT_TEXTS.t("subscribed" if granted else "unsubscribed", language))


# A satisfaction score (1-5) on a resolved complaint; only its client can give it.
rating = score_button("rate_complaint", rate_complaint, TEXTS, "button_expired", "rated")


async def unknown_command(update: Update, context: Context) -> None:
    _, language = await context.assistant.client(update.effective_user)
    command = (update.effective_message.text or "").split()[0][:64]
    await safe_send(context.bot, update.effective_chat.id,
                    TEXTS.t("unknown_command", language, command=command))


async def non_text(update: Update, context: Context) -> None:
    message = update.effective_message
    helper = context.assistant

    async with helper.chat_lock(message.chat_id):
        if not assistant_only(update) and (
                await broadcasts.compose_input(update, context) or await desk.relay_from_manager(update, context)
                or await desk.relay_from_client(update, context)):
            return

        contact = message.contact
        own_number = contact is not None and contact.user_id == update.effective_user.id

        def work(session):
            if recorded(session, update.update_id):
                return None, None  # answered before a crash
            client, _ = register_client(session, profile(update.effective_user))
            record_message(session, client, "in", message.caption or (contact.phone_number if contact else ""),
                           kind=desk.message_kind(message), update_id=update.update_id)
            # A number shared to be called back about a request nobody could take in time.
            callback = request_callback(session, client, contact.phone_number) if own_number else None
            return client.language, callback[1] if callback else None

        language, callback = await helper.db(work)
        if language is None:
            return
        if callback is not None:
            await safe_send(context.bot, message.chat_id, callback, markup=ReplyKeyboardRemove())
            return
        await safe_send(context.bot, message.chat_id, TEXTS.t("non_text", language))


async def seen(update: Update, context: Context) -> None:
    """Any update from a client in their private chat means Telegram delivers to them again: a
    client who had blocked the bot and came back gets messages and broadcasts again."""
    chat, user = update.effective_chat, update.effective_user
    known = route_read(update)
    if known is not None and known.reachable:
        return  # reachable already: nothing to write
    if update.my_chat_member is None and chat is not None and user is not None and chat.type == "private":
        # Beside the handling, not before it: awaiting here would let a client's next message
        # overtake this one on its way to the chat's lock (and to Rasa).
        context.application.create_task(context.assistant.db(lambda s: set_reachable(s, user.id, True)),
                                        update=update)


async def chat_member(update: Update, context: Context) -> None:
    """The client blocked the bot ("kicked") or unblocked it: broadcasts skip or include them."""
    change = update.my_chat_member
    if change.chat.type != "private":
        return
    reachable = change.new_chat_member.status not in ("kicked", "left")
    await context.assistant.db(lambda s: set_reachable(s, change.from_user.id, reachable))


BACKLOG_INTERVAL = 15.0  # longer than a Rasa timeout: one round at a time


async def answer_backlog(context: Context) -> None:
    """The messages that arrived while Rasa was down, answered once it is back."""
    try:
        await context.assistant.answer_backlog(context.bot)
    except Exception:  # the CRM unreachable for a moment, say: next round
        log.exception("could not answer the messages owed")


PROFILE_INTERVAL = 20.0


async def watch_profile(context: Context) -> None:
    """company.yml is read again when it changes; a version refused is told to the admins once."""
    try:
        await context.assistant.db(alert_profile_refused)
    except Exception:  # the file vanished, or the CRM is unreachable for a moment: next round
        log.exception("could not check the company profile")


PURGE_INTERVAL = 3600.0


async def purge(context: Context) -> None:
    """Button payloads past their lifetime, and updates handled over a day ago, are deleted."""
    try:
        await context.assistant.db(purge_buttons)
        await context.assistant.db(inbox.purge)
    except Exception:
        log.exception("could not purge expired buttons and handled updates")


RETENTION_INTERVAL = 600.0


async def daily_retention(context: Context) -> None:
    """Once a day after company.yml retention.run_at (one bot process claims the day): what is
    past its retention period is deleted (crm/retention.py), in a thread, the counts logged."""
    helper = context.assistant
    try:
        if not await helper.db(retention.claim_today):
            return
        counts = await asyncio.to_thread(retention.purge, helper.engine, context.settings.tracker_store_url)
        log.info("retention: deleted %s", ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    except Exception:
        log.exception("the retention job failed; tomorrow's run deletes what is left")


DB_RETRY_DELAY, DB_RETRIES = 2.0, 30


async def on_error(update: object, context: Context) -> None:
    """Log and go on: an error in one update never stops the bot. A message whose handling
    failed because the CRM was unreachable is handled again a little later (up to a minute), the
    client told once that the answer is coming; its handlers skip what they had recorded."""
    error = context.error
    if isinstance(error, DBAPIError) and isinstance(update, Update):
        retries = context.application.db_retries
        attempt = retries.get(update.update_id, 0)
        if attempt < DB_RETRIES:
            retries[update.update_id] = attempt + 1
            log.warning("update %s failed on the CRM (%s): handled again in %.0f s", update.update_id,
                        type(error).__name__, DB_RETRY_DELAY)
            if attempt == 0:
                await tell_crm_down(context.bot, update)
            context.application.handle_again.add(update.update_id)
            context.application.create_task(_again(context.application, update))
            return
        retries.pop(update.update_id, None)
    log.error("error while handling an update", exc_info=error)


async def _again(application: Application, update: Update) -> None:
    await asyncio.sleep(DB_RETRY_DELAY)
    await application.update_queue.put(update)


async def tell_crm_down(bot, update: Update) -> None:
    """The client's message arrived but cannot be handled for a moment: say so, once."""
    user, chat = update.effective_user, update.effective_chat
    if update.message is None or user is None or chat is None or chat.type != "private":
        return
    await safe_send(bot, chat.id, TEXTS.t("crm_down", normalise_language(user.language_code)))


@asynccontextmanager
async def running(application: Application) -> AsyncIterator[None]:
    """The application started as python-telegram-bot's run_polling and run_webhook start it
    (initialize, post_init, start), stopped and shut down the same way on exit, for our own
    receivers (bot/poller.py, bot/webhook.py)."""
    await application.initialize()
    if application.post_init:
        await application.post_init(application)
    await application.start()
    try:
        yield
    finally:
        await application.stop()
        if application.post_stop:
            await application.post_stop(application)
        await application.shutdown()
        if application.post_shutdown:
            await application.post_shutdown(application)


# --- replicas ----------------------------------------------------------------------------------


def private_chat(update: object) -> int | None:
    """The private chat an update belongs to (a client's or a staff member's), or None."""
    chat = update.effective_chat if isinstance(update, Update) else None
    return chat.id if chat is not None and chat.type == "private" else None


def replayable(update: Update) -> bool:
    """Whether an update a dead process left unfinished is handled still: a message yes; a
    command no (a /start or /take minutes later surprises); a button press no (Telegram lets a
    bot answer one for a few seconds only, and the client presses it again)."""
    return update.message is not None and not (update.message.text or "").startswith("/")


async def replay(application: Application) -> int:
    """Queue the updates that a bot process which is no more (a previous run, or a dead replica)
    wrote down and did not finish (handlers skip what they had already recorded). Returns how
    many were queued."""
    helper = application.assistant
    dead = await helper.replicas.dead(await helper.db(inbox.owners))
    queued = 0
    for payload in await helper.db(lambda s: inbox.take_over(s, helper.replicas.me, dead)):
        update = Update.de_json(payload, application.bot)
        if not replayable(update):
            log.warning("update %s was interrupted by a stop and is not replayed (%s)", update.update_id,
                        "a command" if update.message else "not a message")
            await helper.db(lambda s: inbox.done(s, update.update_id))
            continue
        await application.update_queue.put(update)
        queued += 1
    if queued:
        log.warning("%d message(s) interrupted by a stopped bot process are handled again", queued)
    return queued


async def take_over(context: Context) -> None:
    """With replicas: say this process is alive, and handle what a dead one left unfinished."""
    try:
        await context.assistant.replicas.beat()
        await replay(context.application)
    except Exception:  # the CRM unreachable for a moment: next round
        log.exception("could not take over the updates of stopped bot processes")


# --- assembly ------------------------------------------------------------------------------------


async def _post_init(application: Application) -> None:
    for language in languages():
        try:
            await application.bot.set_my_commands(
                [BotCommand(name, description) for name, description in commands(language)],
                language_code=None if language == DEFAULT_LANGUAGE else language,
            )
        except TelegramError as exc:
            log.warning("could not set the command menu: %s", exc)


async def _post_shutdown(application: Application) -> None:
    await application.assistant.rasa.close()
    await application.assistant.replicas.close()
    application.assistant.close()


class AssistantApplication(Application):
    """The Application, with the Assistant and the settings it was built with (handlers reach them
    as `context.assistant` and `context.settings`, bot/shared.py), plus the broadcast sender
    running beside the handlers (unless BROADCAST_SENDER=separate: then `python -m bot sender`)."""

    assistant: Assistant
    settings: Settings

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.handle_again: set[int] = set()   # updates queued again by on_error: not done yet
        self.db_retries: dict[int, int] = {}  # update id -> attempts while the CRM was unreachable
        self.sender_stop = asyncio.Event()
        self.sender_task: asyncio.Task | None = None

    async def start(self) -> None:
        await super().start()
        settings = self.settings
        if settings.run_sender:
            self.sender_stop.clear()
            self.sender_task = asyncio.create_task(run_sender(
                settings.database_url, self.bot.token, settings.telegram_base_url, settings.broadcast_rate,
                self.sender_stop))

    async def process_update(self, update: object) -> None:
        """A client's update is handled under their chat's lock (bot/replicas.py), after the chat's
        earlier updates that another bot process wrote down and has not handled yet (it waits for
        the lock, or died), in the order Telegram numbered them; an update that another process
        handled meanwhile is skipped. So two replicas receiving one client's messages answer each
        once, in order."""
        chat_id = private_chat(update)
        if chat_id is None:
            await self._handle(update)
            return
        helper = self.assistant
        # A text to the assistant (the path of most messages; a newcomer registered) is recorded in the same
        # unit of work as the look-up, when nothing comes before it: text_message would record it
        # next (converse finds it in ROUTE).
        text = typed_text(update) if update.message is not None and update.effective_user is not None else ""
        text = text if not text.startswith("/") else ""

        def look(session):  # the chat's earlier updates, and who is concerned
            mine_only = None if helper.replicas.shared else helper.replicas.me
            earlier, mine = inbox.pending_through(session, chat_id, update.update_id, mine_only)
            route = route_of(session, chat_id)
            recorded = None
            if text and mine and not earlier and route.assistant_only and recorded_id(session, update.update_id) is None:
                client = touch_or_register(session, profile(update.effective_user))
                recorded = record_new(session, client, text, "text", update.update_id)
            return earlier, mine, route, recorded

        async with helper.chat_lock(chat_id):
            try:
                earlier, mine, route, recorded = await helper.db(look, core=True)
            except DBAPIError:  # the handlers meet it too: on_error handles the update again later
                earlier, mine, route, recorded = [], True, None, None
            if not mine:
                return
            # A live process's updates wait for this lock, whatever their age: handled in turn.
            # A dead one's command or button press is not replayed late (as replay() does).
            earlier = [(Update.de_json(payload, self.bot), owner) for payload, owner in earlier]
            unsure = {owner for before, owner in earlier if not replayable(before)}
            dead = set(await helper.replicas.dead(list(unsure))) if unsure else set()
            for before, owner in earlier:
                if owner in dead and not replayable(before):
                    await helper.db(lambda s: inbox.done(s, before.update_id))
                    continue
                await self._handle(before)
            token = ROUTE.set((update.update_id, route, recorded))
            try:
                await self._handle(update)
            finally:
                ROUTE.reset(token)

    async def _handle(self, update: object) -> None:
        """Handle it, then mark it done in the inbox (crm/inbox.py): a crash before this line
        and the update is handled again at the next start, or by another replica."""
        try:
            await super().process_update(update)
        finally:
            retrying = isinstance(update, Update) and update.update_id in self.handle_again
            if retrying:
                self.handle_again.discard(update.update_id)
            elif isinstance(update, Update):
                self.db_retries.pop(update.update_id, None)
            finished = isinstance(update, Update) and update.update_id in self.assistant.finished
            if finished:
                self.assistant.finished.discard(update.update_id)
            if isinstance(update, Update) and not retrying and not finished:
                try:
                    await self.assistant.db(lambda s: inbox.done(s, update.update_id))
                except Exception as exc:  # replayed later; its handlers skip what they recorded
                    log.warning("could not mark update %s done: %s", update.update_id, type(exc).__name__)

    async def stop(self) -> None:
        task, self.sender_task = self.sender_task, None
        if task is not None:
            self.sender_stop.set()
            try:
                await asyncio.wait_for(task, 15)
            except (asyncio.TimeoutError, Exception) as exc:  # a stuck send: cancelled, the row is recovered
                log.warning("broadcast sender stopped abruptly: %r", exc)
        await super().stop()




def build_application(settings: Settings, token: str | None = None) -> Application:
    engine = engine_for(settings.database_url)
    rasa = RasaClient(settings.rasa_url, settings.rasa_timeout, settings.rasa_concurrency, settings.rasa_token)
    application = (
        ApplicationBuilder()
        .application_class(AssistantApplication)
        .context_types(ContextTypes(context=Context))
        .token(token or settings.telegram_token)
        .base_url(settings.telegram_base_url)
        .request(TelegramRequest())
        .get_updates_request(TelegramRequest(connection_pool_size=1))
        .rate_limiter(AIORateLimiter(overall_max_rate=settings.telegram_rate, max_retries=3))
        .concurrent_updates(True)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    application.assistant = Assistant(engine, rasa, f"{settings.action_url.rstrip('/')}/health",
                                      Replicas(settings.redis_url))
    application.settings = settings
    install(settings)  # what crm/ reads (the staff group, claim timeouts, the company profile)
    private = filters.ChatType.PRIVATE
    group = settings.staff_chat
    # The desk's commands also work in the staff forum group (STAFF_CHAT_ID), in a client's topic.
    desk_chats = private | filters.Chat(group[0]) if group else private
    application.add_handler(TypeHandler(Update, seen), group=-1)
    application.add_handler(ChatMemberHandler(chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    application.add_handler(CommandHandler("start", start, filters=private))
    application.add_handler(CommandHandler("help", help_command, filters=private))
    application.add_handler(CommandHandler(["language", "langue"], language_command, filters=private))
    application.add_handler(CommandHandler(["subscribe", "stop"], consent_command, filters=private))
    application.add_handler(CommandHandler(["mydata", "mesdonnees"], privacy.mydata_command, filters=private))
    application.add_handler(CommandHandler(["forget", "oublier"], privacy.forget_command, filters=private))
    application.add_handler(CommandHandler("order", order_command, filters=private))
    application.add_handler(CommandHandler("resolve", resolve_command, filters=private))
    application.add_handler(CommandHandler("queue", desk.queue_command, filters=desk_chats))
    application.add_handler(CommandHandler("take", desk.take_command, filters=desk_chats))
    application.add_handler(CommandHandler("done", desk.done_command, filters=desk_chats))
    application.add_handler(CommandHandler("client", desk.client_command, filters=desk_chats))
    application.add_handler(CommandHandler("note", desk.note_command, filters=desk_chats))
    application.add_handler(CommandHandler("broadcast", broadcasts.broadcast_command, filters=private))
    application.add_handler(CommandHandler("broadcasts", broadcasts.broadcasts_command, filters=private))
    application.add_handler(CommandHandler("leads", leads.leads_command, filters=private))
    application.add_handler(CommandHandler("lead", leads.lead_command, filters=private))
    application.add_handler(CommandHandler("review", review.review_command, filters=private))
    application.add_handler(CommandHandler("retrain", review.retrain_command, filters=private))
    application.add_handler(CommandHandler(["report", "rapport"], reports.report_command, filters=private))
    application.add_handler(CallbackQueryHandler(desk.take_button, pattern=handler_pattern("take")))
    application.add_handler(CallbackQueryHandler(desk.handoff_rating, pattern=handler_pattern("rate_handoff")))
    application.add_handler(CallbackQueryHandler(desk.leave_button, pattern=handler_pattern("leave")))
    application.add_handler(CallbackQueryHandler(leads.meet_button, pattern=handler_pattern("meet")))
    application.add_handler(CallbackQueryHandler(broadcasts.compose_button, pattern=handler_pattern("compose")))
    application.add_handler(CallbackQueryHandler(broadcasts.unsubscribe_button, pattern=handler_pattern("unsubscribe")))
    application.add_handler(CallbackQueryHandler(leads.status_button, pattern=handler_pattern("lead_status")))
    application.add_handler(CallbackQueryHandler(language_chosen, pattern=handler_pattern("language")))
    application.add_handler(CallbackQueryHandler(review.review_button, pattern=handler_pattern("review")))
    application.add_handler(CallbackQueryHandler(rating, pattern=handler_pattern("rate_complaint")))
    application.add_handler(CallbackQueryHandler(privacy.forget_button, pattern=handler_pattern("forget")))
    application.add_handler(CallbackQueryHandler(button))
    if group:
        application.add_handler(MessageHandler(filters.Chat(group[0]) & ~filters.COMMAND & ~filters.StatusUpdate.ALL,
                                               desk.group_message))
    application.add_handler(MessageHandler(private & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(private & filters.TEXT, text_message))
    application.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, non_text))
    application.add_error_handler(on_error)
    if application.assistant.replicas.shared:
        application.job_queue.run_repeating(take_over, interval=HEARTBEAT, first=0, name="replicas")
    application.job_queue.run_repeating(deliver_outbox, interval=INTERVAL, first=0.5, name="outbox")
    application.job_queue.run_repeating(desk.remind, interval=desk.REMINDER_INTERVAL, first=5, name="desk reminders")
    application.job_queue.run_repeating(answer_backlog, interval=BACKLOG_INTERVAL, first=3, name="answers owed")
    application.job_queue.run_repeating(watch_profile, interval=PROFILE_INTERVAL, first=1, name="company profile")
    application.job_queue.run_repeating(purge, interval=PURGE_INTERVAL, first=60, name="purge")
    application.job_queue.run_repeating(review.nightly_retrain, interval=600, first=120, name="nightly retraining")
    application.job_queue.run_repeating(daily_retention, interval=RETENTION_INTERVAL, first=90, name="retention")
    application.job_queue.run_repeating(reports.monthly_report, interval=reports.MONTHLY_INTERVAL, first=100,
                                        name="monthly report")
    return application
