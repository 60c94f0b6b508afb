"""/review in Telegram, for managers and admins: the messages the assistant did not understand
(crm/review.py), one at a time, most frequent first. Buttons offer the three likeliest intents in
business words, "Off topic", "Another intent…" (every intent) and "Skip"; one tap labels it, and
the next message comes. `/review stats`: how the queue stands, the understanding rate, and how it
moved after each retraining."""

from __future__ import annotations

import asyncio
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bot.callbacks import callback_data, parse
from bot.retrain import retrain_and_tell
from bot.shared import Context
from bot.staff import Member, staff_only
from crm import desk_hours, review
from crm.i18n import Texts, format_percent, format_when

log = logging.getLogger(__name__)
TEXTS = Texts("bot.review")
INTENTS = Texts("review.intent")
REASONS = Texts("review.reason")
TEXTS_RETRAIN = Texts("bot.retrain")
RETRAIN_REASONS = Texts("review.retrain.reason")
MORE, BACK = "more", "back"


def intent_name(intent: str, language: str) -> str:
    return INTENTS.t(intent, language) if intent in INTENTS else intent


def item_text(item: review.Item, language: str) -> str:
    guesses = ", ".join(f"{intent_name(i, language)} {format_percent(c, language)}" for i, c in item.predictions
                        if i in review.intents())
    return TEXTS.t("item", language, id=item.id, count=item.count, reason=REASONS.t(item.reason, language),
                   text=item.text, guesses=guesses or TEXTS.t("no_guess", language))


def _button(item_id: int, title: str, choice: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(title, callback_data=callback_data("review", item_id, choice))


def item_buttons(item: review.Item, language: str) -> InlineKeyboardMarkup:
    likely = [i for i, _ in item.predictions if i in review.intents()][:3]
    rows = [[_button(item.id, intent_name(i, language), i)] for i in likely]
    rows.append([_button(item.id, TEXTS.t("off_topic", language), review.OFF_TOPIC),
                 _button(item.id, TEXTS.t("other", language), MORE)])
    rows.append([_button(item.id, TEXTS.t("skip", language), "skip")])
    return InlineKeyboardMarkup(rows)


def every_intent(item_id: int, language: str) -> InlineKeyboardMarkup:
    names = sorted(review.intents(), key=lambda i: intent_name(i, language).casefold())
    rows = [[_button(item_id, intent_name(i, language), i) for i in names[n:n + 2]] for n in range(0, len(names), 2)]
    return InlineKeyboardMarkup(rows + [[_button(item_id, TEXTS.t("back", language), BACK)]])


def stats_text(stats: review.Stats, language: str) -> str:
    """/review stats: the queue, the labels given, the understanding rate over the last week,
    and each recent retraining with its figures and how the rate moved after a swap."""
    def share(value: float | None) -> str:
        return format_percent(value, language) if value is not None else TEXTS.t("no_data", language)

    week = stats.last_week
    lines = [TEXTS.t("stats", language, **stats.counts, labels=stats.labels, since=stats.labels_since_retraining,
                     rate=share(week.rate), understood=week.understood, messages=week.messages)]
    if not stats.retrainings:
        lines.append(TEXTS.t("no_retraining", language))
    else:
        lines.append(TEXTS.t("retrainings", language))
    for swap in stats.retrainings:
        figures = dict(when=format_when(swap.at.astimezone(desk_hours.zone()), language, "date.short"),
                       before_held=share(swap.before_held_out), after_held=share(swap.after_held_out))
        if swap.swapped:
            lines.append(TEXTS.t("swapped", language, week_before=share(swap.week_before.rate),
                                 week_after=share(swap.week_after.rate), **figures))
        else:
            lines.append(TEXTS.t("refused", language, reason=RETRAIN_REASONS.t(swap.reason, language), **figures))
    return "\n".join(lines)


async def _show_next(update: Update, context: Context, member: Member) -> None:
    item = await context.assistant.db(lambda s: review.next_item(s, member.id))
    chat_id = update.effective_chat.id
    if item is None:
        await context.bot.send_message(chat_id, TEXTS.t("empty", member.language))
        return
    await context.bot.send_message(chat_id, item_text(item, member.language),
                                   reply_markup=item_buttons(item, member.language))


@staff_only()
async def review_command(update: Update, context: Context, member: Member) -> None:
    args = context.args or []
    if args == ["stats"]:
        stats = await context.assistant.db(review.stats)
        await update.effective_message.reply_text(stats_text(stats, member.language))
    elif args:
        await update.effective_message.reply_text(TEXTS.t("usage", member.language))
    else:
        await _show_next(update, context, member)


@staff_only()
async def review_button(update: Update, context: Context, member: Member) -> None:
    """A label, "Another intent…", "Back" or "Skip" pressed on a message to review. Only the
    reviewer holding it labels it (crm.review.label says why not, in an alert)."""
    query, language = update.callback_query, member.language
    item_id, choice = parse("review", query.data) or (None, "")
    if item_id is None:
        await query.answer(TEXTS.t("usage", language), show_alert=True)
        return
    if choice in (MORE, BACK):
        await query.answer()
        item = await context.assistant.db(lambda s: review.next_item(s, member.id))
        markup = every_intent(item_id, language) if choice == MORE or item is None or item.id != item_id \
            else item_buttons(item, language)
        try:
            await query.edit_message_reply_markup(markup)
        except TelegramError as exc:
            log.info("could not change the review buttons: %s", exc)
        return
    try:
        item = await context.assistant.db(lambda s: review.label(s, item_id, choice, member.id))
    except review.ReviewError as exc:
        await query.answer(exc.text(language)[:200], show_alert=True)
        return
    await query.answer()
    done = TEXTS.t("skipped", language, text=item.text) if choice == "skip" else \
        TEXTS.t("labelled", language, text=item.text, intent=intent_name(item.label, language))
    try:
        await query.edit_message_text(done)
    except TelegramError as exc:
        log.info("could not mark the review message done: %s", exc)
    await _show_next(update, context, member)


_retraining = asyncio.Lock()  # one retraining at a time in this bot process


@staff_only(("admin",))
async def retrain_command(update: Update, context: Context, member: Member) -> None:
    """/retrain (admins): a candidate model with the labels, in the background; swapped in only
    if it is not worse (bot/retrain.py). Every admin is told the figures."""
    language = member.language
    if _retraining.locked():
        await update.effective_message.reply_text(TEXTS_RETRAIN.t("running", language))
        return
    counts = await context.assistant.db(review.counts)
    labels = counts["labelled"] + counts["off_topic"]
    if not labels:
        await update.effective_message.reply_text(TEXTS_RETRAIN.t("nothing", language))
        return
    await _retraining.acquire()
    await context.assistant.db(review.note_retraining)
    await update.effective_message.reply_text(TEXTS_RETRAIN.t("started", language, labels=labels))
    context.application.create_task(_retrain(context))


async def _retrain(context: Context) -> None:
    """The retraining, in a thread; the caller holds _retraining, released here."""
    settings, engine = context.settings, context.assistant.engine
    try:
        await asyncio.to_thread(retrain_and_tell, engine, settings.rasa_url, settings.rasa_token)
    finally:
        _retraining.release()


async def nightly_retrain(context: Context) -> None:
    """The job that retrains by itself once a night when enough labels were given
    (company.yml review.retrain_after_labels, after review.retrain_at); one bot process claims it."""
    if _retraining.locked():
        return
    await _retraining.acquire()
    try:
        claimed = await context.assistant.db(review.claim_nightly_retraining)
    except BaseException:
        _retraining.release()
        raise
    if not claimed:
        _retraining.release()
        return
    await _retrain(context)
