"""`python -m bot`: run the assistant, chat locally, train, evaluate, manage the catalogue and staff."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from crm.i18n import DEFAULT_LANGUAGE, languages
from crm.settings import SettingError


_loaded = None  # this process's settings, read once


def _settings():
    """The settings of this command, read and checked once, and installed for crm/."""
    from bot.settings import load_settings
    from crm.company import ProfileError, company_profile
    from crm.settings import install

    global _loaded
    try:
        if _loaded is None:
            _loaded = install(load_settings())
        company_profile()  # the whole company.yml, checked before anything starts
        return _loaded
    except SettingError as exc:
        sys.exit(f"Configuration error: {exc}")
    except ProfileError as exc:
        sys.exit(f"Configuration error in the company profile: {exc}")


def prepare_database(url: str, demo: bool = True) -> None:
    """Migrate, then load the demo catalogue into an empty database (unless `demo` is False, or
    DEMO_DATA=off: a company starting with its own catalogue)."""
    from crm.db import engine_for, unit_of_work
    from crm.demo import load_demo_if_empty
    from crm.migrate import upgrade
    from crm.settings import current

    engine = engine_for(url)
    upgrade(engine)
    if not demo or not current().demo_data:
        return
    with unit_of_work(engine) as session:
        if load_demo_if_empty(session):
            print("Empty database: the demo catalogue was loaded (DEMO_DATA=off, or import your own "
                  "catalogue first, to start without it).")


def cmd_run(args) -> None:
    from bot.console import chat
    from bot.services import ServiceError, Services

    settings = _settings()
    if args.replicas:
        run_replicas(settings, args)
        return
    prepare_database(settings.database_url)
    model = model_to_serve(settings)
    services = Services(settings, model, endpoints=args.endpoints)
    print("Starting the action server and Rasa (about 30 s)...", flush=True)
    try:
        services.start()
        if settings.local_chat:
            print("No TELEGRAM_BOT_TOKEN: opening the local chat.")
            asyncio.run(chat(settings, args.language))
            return
        serve_telegram(settings)
    except ServiceError as exc:
        sys.exit(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping Rasa and the action server...", flush=True)
        services.stop()


def run_replicas(settings, args) -> None:
    """The replica layout on this machine (bot/layout.py): K bots behind haproxy, N Rasa workers,
    M action servers. With no TELEGRAM_BOT_TOKEN the emulator plays Telegram, calls haproxy's
    webhook front end, and the terminal is the client."""
    import signal

    from bot.console import LOCAL_TOKEN, chat
    from bot.emulator import BotApiEmulator
    from bot.layout import Layout, Shape, missing
    from bot.services import ServiceError

    shape = Shape(bots=args.replicas, rasa_workers=args.rasa_workers, action_servers=args.action_servers)
    emulator = None
    if settings.local_chat:
        emulator = BotApiEmulator().start()
        settings = settings.model_copy(update={"telegram_token": LOCAL_TOKEN, "telegram_base_url": emulator.base_url})
    problems = missing(settings, shape)
    if problems:
        sys.exit("The replica layout cannot start:\n  - " + "\n  - ".join(problems))
    prepare_database(settings.database_url)
    layout = Layout(settings, model_to_serve(settings), shape)
    print(f"Starting {shape.action_servers} action server(s), Rasa with {shape.rasa_workers} worker(s), haproxy "
          f"and {shape.bots} bot process(es) (about a minute)...", flush=True)
    try:
        layout.start()
        print(f"Telegram's webhook calls: {layout.webhook_url} (haproxy, port {settings.webhook_port}); "
              f"logs in {layout.services.log_dir}", flush=True)
        if emulator is not None:
            print("No TELEGRAM_BOT_TOKEN: opening the local chat, answered by the replicas.")
            asyncio.run(chat(settings, args.language, emulator=emulator))
            return
        stop = asyncio.Event()

        async def wait() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()

        asyncio.run(wait())
    except ServiceError as exc:
        sys.exit(str(exc))
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping the bots, haproxy, Rasa and the action servers...", flush=True)
        layout.stop()
        if emulator is not None:
            emulator.stop()


def serve_telegram(settings) -> None:
    """The Telegram bot until SIGINT/SIGTERM: webhook mode (bot/webhook.py, any number of
    replicas), or long polling through the inbox (bot/poller.py, one process)."""
    import signal

    from bot import poller, webhook
    from bot.app import build_application

    application = build_application(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if settings.webhook_url:
            await webhook.run(application, settings, stop)
        else:
            await poller.run(application, stop)

    asyncio.run(main())


def cmd_serve(args) -> None:
    """The bot alone: Rasa (and the action server behind it) run elsewhere, at RASA_URL."""
    settings = _settings()
    if settings.telegram_token is None:
        sys.exit("Error: serve needs TELEGRAM_BOT_TOKEN (the local chat without a token is `python -m bot console`)")
    prepare_database(settings.database_url)
    serve_telegram(settings)


def cmd_console(args) -> None:
    from bot.console import chat

    settings = _settings()
    prepare_database(settings.database_url)
    try:
        asyncio.run(chat(settings, args.language))
    except KeyboardInterrupt:
        pass


def export_labels(settings) -> Path | None:
    """The managers' labelled examples (the review queue) written as training data, outside the
    repository (REVIEW_DATA); None when there are none, or no CRM yet to read them from."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from crm.db import engine_for, unit_of_work
    from crm.migrate import upgrade
    from crm.review import write_training_data

    url = settings.database_url
    if url.startswith("sqlite") and not Path(make_url(url).database or "").exists():
        return None
    try:
        engine = engine_for(url)
        upgrade(engine)
        with unit_of_work(engine) as session:
            count = write_training_data(session, settings.review_data)
    except SQLAlchemyError as exc:
        print(f"The CRM cannot be read ({type(exc).__name__}): training without the review queue's labels.")
        return None
    if count:
        print(f"{count} labelled examples of the review queue are trained on ({settings.review_data}).")
    return settings.review_data if count else None


def model_to_serve(settings) -> Path:
    """The repository's model, or the one trained with the managers' labels when the gate finds
    it not worse (bot/retrain.startup_model)."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.rasa_model import train_if_needed
    from bot.retrain import startup_model
    from crm.db import engine_for, unit_of_work
    from crm.settings import VAR

    engine = engine_for(settings.database_url)
    try:
        model, why = startup_model(lambda: unit_of_work(engine), VAR / "review" / "candidate.yml")
    except SQLAlchemyError as exc:
        print(f"The CRM cannot be read ({type(exc).__name__}): starting without the review queue's labels.")
        return train_if_needed(None)
    if why == "not_worse":
        print(f"Serving {model.name}, trained with the review queue's labels (not worse on the held-out set).")
    elif why != "no_labels":
        print(f"The model trained with the review queue's labels is refused ({why}): serving the "
              f"repository's model {model.name}. See python -m bot review, and models/refused/ after a /retrain.")
    return model


def cmd_train(args) -> None:
    from bot.rasa_model import train_if_needed

    train_if_needed(None if args.base else export_labels(_settings()))


def cmd_nlu_eval(args) -> None:
    from bot.nlu_eval import RESULTS, evaluate

    scores = evaluate(Path(args.file), Path(args.out) if args.out else RESULTS)
    print(f"{args.file}: {scores['examples']} examples, accuracy {scores['accuracy']:.3f}, "
          f"macro-F1 {scores['macro_f1']:.3f} (nlu_fallback counted as out_of_scope)")


def cmd_migrate(args) -> None:
    prepare_database(_settings().database_url)
    print("Database up to date.")


def cmd_import_catalog(args) -> None:
    from crm.catalog import CatalogImportError, import_catalog
    from crm.db import engine_for, unit_of_work

    settings = _settings()
    prepare_database(settings.database_url, demo=False)  # the company's own catalogue: no demo beside it
    path = Path(args.file)
    if not path.is_file():
        sys.exit(f"File not found: {path}")
    try:
        with unit_of_work(engine_for(settings.database_url)) as session:
            report = import_catalog(session, path, replace=args.replace)
    except CatalogImportError as exc:
        print(f"{path}: rejected, nothing was imported ({len(exc.errors)} error(s)):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        sys.exit(1)
    withdrawn = (f", {report.withdrawn} no longer offered (not in the file; past orders keep them)"
                 if args.replace else "")
    print(f"{path}: {report.created} product(s) created, {report.updated} updated{withdrawn}.")


def cmd_staff(args) -> None:
    from crm.db import engine_for, unit_of_work
    from crm.handoffs import dismiss_staff, update_staff
    from crm.staff import StaffError, list_staff

    settings = _settings()
    prepare_database(settings.database_url)

    def released(count: int) -> str:
        return f" {count} conversation(s) they held went back to the queue." if count else ""

    try:
        with unit_of_work(engine_for(settings.database_url)) as session:
            if args.staff_command == "add":
                member, moved = update_staff(session, args.telegram_id, args.role, args.name)
                print(f"{member.name} ({member.telegram_id}) is now {member.role}.{released(len(moved))}")
            elif args.staff_command == "remove":
                member, moved = dismiss_staff(session, args.telegram_id)
                print(f"{member.name} ({member.telegram_id}) no longer has staff access.{released(len(moved))}")
            else:
                members = list_staff(session)
                if not members:
                    print("No staff yet. Add one: python -m bot staff add TELEGRAM_ID --role manager --name NAME")
                for m in members:
                    state = "active" if m.active else "removed"
                    print(f"{m.telegram_id}\t{m.role}\t{state}\t{m.name}")
    except StaffError as exc:
        sys.exit(f"Error: {exc}")


def _crm_command(work, error_types) -> None:
    """Run `work(session)` on the configured CRM; print its result, or the error and exit 1."""
    from crm.db import engine_for, unit_of_work

    settings = _settings()
    prepare_database(settings.database_url)
    try:
        with unit_of_work(engine_for(settings.database_url)) as session:
            message = work(session)
    except error_types as exc:
        sys.exit(f"Error: {exc}")
    print(message)


def _number(text: str, parse, example: str) -> int:
    """The number in an order's or complaint's reference as typed, or exit saying what one is."""
    number = parse(text)
    if number is None:
        sys.exit(f"Error: {text!r} is not {example}")
    return number


def cmd_order(args) -> None:
    from crm.orders import OrderError, parse_order_number, set_order_status

    number = _number(args.number, parse_order_number, "an order number (CMD-000123)")
    _crm_command(lambda session: "{0.number} is now {0.status}; the client will be told.".format(
        set_order_status(session, number, args.status)), OrderError)


def cmd_complaint(args) -> None:
    from crm.complaints import ComplaintError, parse_complaint_number, resolve_complaint

    number = _number(args.number, parse_complaint_number, "a complaint number (REC-000045)")
    _crm_command(lambda session: "{0.number} resolved; the client will be told and asked for a score.".format(
        resolve_complaint(session, number, args.resolution)), ComplaintError)


def cmd_review(args) -> None:
    """The review queue from the command line: what the assistant did not understand, most
    frequent first; label one with an intent, off_topic, or skip."""
    from crm import review

    if args.review_command == "list":
        def work(session):
            items = review.pending(session, args.limit)
            lines = [f"{i.id}\t×{i.count}\t{i.reason}\t{', '.join(f'{n} {c:.2f}' for n, c in i.predictions)}\t{i.text}"
                     for i in items]
            return "\n".join(lines) or "Nothing to review."

        _crm_command(work, review.ReviewError)
    elif args.review_command == "stats":
        from bot.review import stats_text

        _crm_command(lambda s: stats_text(review.stats(s), args.language), review.ReviewError)
    else:
        _crm_command(lambda s: "Message {0.id} labelled {0.label}.".format(review.label(s, args.id, args.intent, None))
                     if args.intent != "skip" else f"Message {args.id} skipped.", review.ReviewError)


def cmd_retrain(args) -> None:
    """A candidate model with the review queue's labels, swapped into the running Rasa only if
    it is not worse (bot/retrain.py); the admins are told through the outbox."""
    from bot.retrain import outcome_text, retrain_and_tell
    from crm.db import engine_for

    from crm.db import unit_of_work
    from crm.review import note_retraining

    settings = _settings()
    prepare_database(settings.database_url)
    with unit_of_work(engine_for(settings.database_url)) as session:
        note_retraining(session)
    outcome = retrain_and_tell(engine_for(settings.database_url), settings.rasa_url, settings.rasa_token)
    if outcome is None:
        sys.exit("Error: retraining failed (see the log above); the current model stays in service.")
    print(outcome_text(outcome, "en"))


def cmd_promotion(args) -> None:
    from datetime import date
    from decimal import Decimal, InvalidOperation

    from crm.promotions import add_promotion, running_promotions

    if args.promotion_command == "list":
        def work(session):
            rows = running_promotions(session)
            return "\n".join(f"{p.id}\t-{p.discount_percent}%\t{p.starts_on}..{p.ends_on}\t"
                             f"{p.category or ''}\t{p.title_fr}" for p in rows) or "No running promotion."

        _crm_command(work, ValueError)
        return
    try:
        discount = Decimal(args.discount)
        starts, ends = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except (InvalidOperation, ValueError) as exc:
        sys.exit(f"Error: discount must be a number and dates YYYY-MM-DD ({exc})")

    def work(session):
        promotion = add_promotion(
            session, title_fr=args.title_fr, title_en=args.title_en or args.title_fr,
            text_fr=args.text_fr or "", text_en=args.text_en or args.text_fr or "",
            discount_percent=discount, starts_on=starts, ends_on=ends,
            product_sku=args.sku, category=args.category)
        return f"Promotion {promotion.id} added."

    _crm_command(work, ValueError)


def _forget_in_turn(engine, telegram_id: int, settings):
    """The erasure under the client's chat lock in Redis when bot processes share one
    (REDIS_URL): a message of theirs being answered is finished first, and none is handled
    half-erased. Without Redis the bot's locks are its process's own, out of reach here."""
    from crm import privacy

    if not settings.redis_url:
        return privacy.forget(engine, telegram_id, "cli", settings.tracker_store_url)
    from bot.replicas import Replicas

    async def locked():
        replicas = Replicas(settings.redis_url)
        try:
            async with replicas.hold(telegram_id):
                return await asyncio.to_thread(privacy.forget, engine, telegram_id, "cli", settings.tracker_store_url)
        finally:
            await replicas.close()

    return asyncio.run(locked())


def cmd_client_data(args) -> None:
    """A client's data: `client export ID` (the JSON document of crm/privacy.py) and `client
    forget ID --yes` (the erasure; without --yes, what it would do)."""
    import json

    from crm import privacy
    from crm.clients import ClientError, client_by_telegram_id
    from crm.db import engine_for, unit_of_work

    settings = _settings()
    prepare_database(settings.database_url)
    engine = engine_for(settings.database_url)
    try:
        if args.client_command == "export":
            with unit_of_work(engine) as session:
                document = privacy.export_client(session, client_by_telegram_id(session, args.telegram_id))
            data = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
            if not args.output:
                sys.stdout.write(data)
                return
            try:
                Path(args.output).write_text(data, encoding="utf-8")
                os.chmod(args.output, 0o600)  # a client's whole file: ours alone
            except OSError as exc:
                sys.exit(f"Error: cannot write {args.output}: {exc.strerror}")
            print(f"The data of client {args.telegram_id} written to {args.output}")
            return
        if not args.yes:
            with unit_of_work(engine) as session:
                client = client_by_telegram_id(session, args.telegram_id)
                print(f"This erases {client.display_name}'s data for good: messages, notes, leads, meetings, tags, "
                      "complaints, handoffs, consents (but the proof of withdrawal) and their conversation in Rasa. "
                      "Orders stay for accounting, without name, address or Telegram id. Add --yes to do it.")
            sys.exit(1)
        erased = _forget_in_turn(engine, args.telegram_id, settings)
    except (ClientError, privacy.PrivacyError) as exc:
        sys.exit(f"Error: {exc}")
    done = ", ".join(f"{name.replace('_', ' ')} {count}" for name, count in erased.counts.items() if count)
    print(f"Client {args.telegram_id} erased ({done or 'nothing but the profile'}); kept as client no. "
          f"{erased.client_id}, pseudonymous.")
    for chat, thread in erased.topics:  # the bot deletes them when the erasure comes from Telegram
        print(f"Delete their topic in the staff group by hand: chat {chat}, topic {thread}.")


def cmd_report(args) -> None:
    """A report (crm/reports.py) as text, CSV (one row per figure) or PDF (the monthly one)."""
    from bot import report_render
    from crm import periods, reports
    from crm.db import engine_for, unit_of_work
    from crm.i18n import t

    settings = _settings()
    prepare_database(settings.database_url)
    if args.month and (args.start or args.end):
        sys.exit("Error: give --month, or --from and --to, not both")
    words = [args.month] if args.month else [w for w in (args.start, args.end) if w]
    if (args.start is None) != (args.end is None):
        sys.exit("Error: --from and --to go together")
    try:
        period = periods.parse_period(words)
    except periods.PeriodError as exc:
        sys.exit("Error: " + t(f"report.period_error.{exc.key}", "en", **exc.values))
    sections = tuple(args.part) if args.part else reports.SECTIONS
    with unit_of_work(engine_for(settings.database_url)) as session:
        report = reports.build_report(session, period, sections)
    if args.format == "pdf":
        if not args.output:
            sys.exit("Error: a PDF needs a file: -o report.pdf")
        Path(args.output).write_bytes(report_render.pdf_bytes(report, args.language))
    else:
        text = report_render.csv_text(report) if args.format == "csv" else \
            report_render.summary_text(report, args.language) + "\n"
        if not args.output:
            sys.stdout.write(text)
            return
        Path(args.output).write_text(text, encoding="utf-8")
    print(f"Report of {period.first} to {period.last} written to {args.output} ({args.format}).")


def cmd_retention(args) -> None:
    """Retention (crm/retention.py): `report` is a dry run (what would be deleted now, and the
    latest runs); `run` deletes it now, as the bot's daily job does."""
    from crm import retention, trackers
    from crm.company import company_profile
    from crm.db import engine_for, unit_of_work

    settings = _settings()
    prepare_database(settings.database_url)
    engine = engine_for(settings.database_url)
    if args.retention_command == "run":
        counts = retention.purge(engine, settings.tracker_store_url)
        print("Deleted: " + ", ".join(f"{kind.replace('_', ' ')} {count}" for kind, count in counts.items()))
        return
    rules = company_profile()["retention"]
    with unit_of_work(engine) as session:
        counts = retention.report(session, trackers.tracker_engine(settings.tracker_store_url))
        runs = retention.latest_runs(session)
    print("Past their period now (the next run deletes them; nothing is deleted by this report):")
    print(f"  {'kind':<22}{'kept for':<12}{'rows':>8}")
    for kind, count in counts.items():
        print(f"  {kind.replace('_', ' '):<22}{retention.kept_for(kind):<12}{count:>8}")
    print(f"Daily run after {rules['run_at']} (desk time). Latest runs:" if runs else
          f"Daily run after {rules['run_at']} (desk time). No run yet.")
    for at, done in runs:
        print(f"  {at:%Y-%m-%d %H:%M} UTC: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items() if v)
              if any(done.values()) else f"  {at:%Y-%m-%d %H:%M} UTC: nothing past its period")


def cmd_client(args) -> None:
    from crm.clients import ClientError, assign_account_manager, client_by_telegram_id, set_vip, tag_client
    from crm.client_file import client_card

    if args.client_command in ("export", "forget"):
        cmd_client_data(args)
        return

    def work(session):
        client = client_by_telegram_id(session, args.telegram_id)
        if args.client_command == "vip":
            set_vip(session, client, args.state == "on")
            return f"{client.display_name} is {'now' if client.vip else 'no longer'} VIP."
        if args.client_command in ("tag", "untag"):
            tag = tag_client(session, client, args.tag, present=args.client_command == "tag")
            return f"{client.display_name}: tag {tag} {'added' if args.client_command == 'tag' else 'removed'}."
        if args.client_command == "assign":
            manager = None if args.manager == "none" else _telegram_id(args.manager)
            assign_account_manager(session, client, manager)
            return (f"{client.display_name} has no account manager." if manager is None
                    else f"{client.display_name}'s account manager is now {manager}.")
        return client_card(session, client, args.language)

    _crm_command(work, ClientError)


def cmd_export(args) -> None:
    from crm.db import engine_for, unit_of_work
    from crm.leads import export_leads_csv

    settings = _settings()
    prepare_database(settings.database_url)
    with unit_of_work(engine_for(settings.database_url)) as session:
        data = export_leads_csv(session)
    if args.output:
        try:
            Path(args.output).write_text(data, encoding="utf-8")
        except OSError as exc:
            sys.exit(f"Error: cannot write {args.output}: {exc.strerror}")
        print(f"{data.count(chr(10)) - 1} lead(s) written to {args.output}")
    else:
        sys.stdout.write(data)


def cmd_sender(args) -> None:
    from bot.broadcaster import run_sender

    settings = _settings()
    if settings.telegram_token is None:
        sys.exit("Error: the sender needs TELEGRAM_BOT_TOKEN (and TELEGRAM_BASE_URL for a local Bot API)")
    prepare_database(settings.database_url)
    try:
        asyncio.run(run_sender(settings.database_url, settings.telegram_token, settings.telegram_base_url,
                               settings.broadcast_rate))
    except KeyboardInterrupt:
        pass


def cmd_broadcast(args) -> None:
    from crm import broadcasts, clock, desk_hours

    if args.broadcast_command == "list":
        def work(session):
            lines = []
            for b in broadcasts.listing(session, limit=50):
                numbers = broadcasts.counts(session, b.id)
                when = clock.aware(b.scheduled_at or b.created_at).astimezone(desk_hours.zone())
                lines.append(f"{b.id}\t{b.state}\t{when:%Y-%m-%d %H:%M}\t"
                             f"{numbers['sent']}/{numbers['total']} sent\t{b.segment or 'all'}")
            return "\n".join(lines) or "No broadcast yet."

        _crm_command(work, broadcasts.BroadcastError)
        return
    if args.broadcast_command == "cancel":
        _crm_command(lambda s: f"Broadcast {broadcasts.cancel(s, args.id).id} cancelled.", broadcasts.BroadcastError)
        return
    if args.broadcast_command == "count":
        _crm_command(lambda s: f"{len(broadcasts.segment_client_ids(s, args.segment))} recipient(s)",
                     broadcasts.BroadcastError)
        return
    when = None
    if args.at:
        try:
            when = broadcasts.send_time(args.at)
        except broadcasts.BroadcastError as exc:
            sys.exit(f"Error: --at must be 'YYYY-MM-DD HH:MM' on the desk's clock (company.yml desk.timezone): {exc}")

    def work(session):
        broadcast = broadcasts.create(session, None, args.text_fr, args.text_en or "", args.segment, args.photo)
        count = len(broadcasts.segment_client_ids(session, args.segment))
        preview = _broadcast_preview(broadcasts, broadcast)
        if not args.yes:
            session.delete(broadcast)
            return (f"{preview}\n{count} recipient(s) (segment: {args.segment or 'all'}). Nothing sent: add --yes to "
                    f"{'schedule' if when else 'send'} it.")
        broadcasts.schedule(session, broadcast, when)
        return (f"{preview}\nBroadcast {broadcast.id} {'scheduled for ' + args.at if when else 'queued'}: "
                f"{count} recipient(s).")

    _crm_command(work, broadcasts.BroadcastError)


def _broadcast_preview(broadcasts, broadcast) -> str:
    """Each version as a client reads it (Telegram HTML, a sample first name), with its length."""
    limit = broadcasts.CAPTION_LIMIT if broadcast.photo else broadcasts.TEXT_LIMIT
    versions = [("fr", broadcast.text_fr)] + ([("en", broadcast.text_en)] if broadcast.text_en else [])
    parts = []
    for language, text in versions:
        parts.append(f"--- {language}: as Élodie reads it (at most {broadcasts.longest(text)} of {limit} characters "
                     f"with the longest first names) ---\n{broadcasts.render(broadcast, language, 'Élodie')}")
    if not broadcast.text_en:
        parts.append("--- en: no English version, English-speaking clients get the French text ---")
    if broadcast.photo:
        parts.append(f"--- photo: {broadcast.photo} (the text is its caption) ---")
    return "\n".join(parts)


def _telegram_id(value: str) -> int:
    if not value.lstrip("-").isdigit():
        sys.exit(f"Error: {value!r} is not a Telegram id (a number) nor 'none'")
    return int(value)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="migrate, train if needed, start Rasa, the action server and the bot "
                                     "(the local chat when there is no TELEGRAM_BOT_TOKEN)")
    run.add_argument("--language", choices=languages(), default=DEFAULT_LANGUAGE, help="local chat client's language")
    run.add_argument("--endpoints", default="endpoints.yml", help="Rasa endpoints file (default endpoints.yml)")
    run.add_argument("--replicas", type=int, metavar="K", help="the production layout on this machine: K bot processes "
                     "in webhook mode behind haproxy (needs PostgreSQL, Redis and haproxy; see README Replicas)")
    run.add_argument("--rasa-workers", type=int, default=2, metavar="N", help="with --replicas: Rasa's Sanic workers (2)")
    run.add_argument("--action-servers", type=int, default=2, metavar="M", help="with --replicas: action servers (2)")
    run.set_defaults(func=cmd_run)

    sub.add_parser("serve", help="the Telegram bot alone, with Rasa and the action server running elsewhere "
                   "(RASA_URL): another host, or a second bot process").set_defaults(func=cmd_serve)
    console = sub.add_parser("console", help="the local chat, against Rasa already running at RASA_URL")
    console.add_argument("--language", choices=languages(), default=DEFAULT_LANGUAGE)
    console.set_defaults(func=cmd_console)

    train = sub.add_parser("train", help="train the model unless it is up to date (with the managers' labels)")
    train.add_argument("--base", action="store_true",
                       help="the repository's training data alone, without the review queue's labels (the tests' model)")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("nlu-eval", help="evaluate the model on a Rasa NLU file (writes results/)")
    ev.add_argument("file")
    ev.add_argument("--out", help="output folder (default results/)")
    ev.set_defaults(func=cmd_nlu_eval)

    sub.add_parser("migrate", help="apply migrations and load the demo catalogue into an empty database "
                   "(not with DEMO_DATA=off)").set_defaults(func=cmd_migrate)

    imp = sub.add_parser("import-catalog", help="upsert products by SKU from a CSV file "
                                                "(sku,name,category,description,price,stock)")
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true",
                     help="the file is the whole catalogue: products missing from it stop being offered")
    imp.set_defaults(func=cmd_import_catalog)

    staff = sub.add_parser("staff", help="manage staff members (managers, marketers, admins)")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    add = staff_sub.add_parser("add", help="add a staff member or change their role")
    add.add_argument("telegram_id", type=int)
    add.add_argument("--role", required=True, choices=["manager", "marketer", "admin"])
    add.add_argument("--name", required=True)
    staff_sub.add_parser("list", help="list staff members")
    rm = staff_sub.add_parser("remove", help="remove a staff member's access")
    rm.add_argument("telegram_id", type=int)
    staff.set_defaults(func=cmd_staff)

    order = sub.add_parser("order", help="change an order's status (the client is told)")
    order.add_argument("number", help="CMD-000123")
    order.add_argument("status", choices=["confirmed", "preparing", "shipped", "delivered", "cancelled"])
    order.set_defaults(func=cmd_order)

    complaint = sub.add_parser("resolve-complaint", help="resolve a complaint (the client is told and asked for a score)")
    complaint.add_argument("number", help="REC-000045")
    complaint.add_argument("resolution", help="what was done; the client reads it")
    complaint.set_defaults(func=cmd_complaint)

    rv = sub.add_parser("review", help="what the assistant did not understand: list, label, stats")
    rv_sub = rv.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    rv_list = rv_sub.add_parser("list", help="the messages to review, most frequent first (masked)")
    rv_list.add_argument("--limit", type=int, default=20)
    rv_label = rv_sub.add_parser("label", help="label one: an intent of domain.yml, off_topic, or skip")
    rv_label.add_argument("id", type=int)
    rv_label.add_argument("intent")
    rv_stats = rv_sub.add_parser("stats", help="the queue, labels given, the understanding rate and the latest "
                                               "retrainings")
    rv_stats.add_argument("--language", choices=languages(), default="en", help="language of the text (en)")
    rv.set_defaults(func=cmd_review)

    sub.add_parser("retrain", help="train a candidate with the labels; swap it into the running Rasa if not worse"
                   ).set_defaults(func=cmd_retrain)

    promo = sub.add_parser("promotion", help="add or list promotions")
    promo_sub = promo.add_subparsers(dest="promotion_command", required=True, metavar="ACTION")
    add_p = promo_sub.add_parser("add", help="add a promotion (on a product, a category, or everything)")
    add_p.add_argument("--title-fr", required=True)
    add_p.add_argument("--title-en")
    add_p.add_argument("--text-fr")
    add_p.add_argument("--text-en")
    add_p.add_argument("--discount", required=True, help="percent, e.g. 15")
    add_p.add_argument("--start", required=True, help="YYYY-MM-DD")
    add_p.add_argument("--end", required=True, help="YYYY-MM-DD (inclusive)")
    scope = add_p.add_mutually_exclusive_group()
    scope.add_argument("--sku", help="only this product")
    scope.add_argument("--category", help="only this category")
    promo_sub.add_parser("list", help="running promotions")
    promo.set_defaults(func=cmd_promotion)

    client = sub.add_parser("client", help="a client's file, VIP mark, account manager, tags; export, erasure")
    client_sub = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    show = client_sub.add_parser("show", help="print the client card managers see")
    show.add_argument("telegram_id", type=int)
    show.add_argument("--language", choices=languages(), default=DEFAULT_LANGUAGE)
    vip = client_sub.add_parser("vip", help="mark or unmark a client as VIP")
    vip.add_argument("telegram_id", type=int)
    vip.add_argument("state", choices=["on", "off"])
    assign = client_sub.add_parser("assign", help="give a client an account manager (their requests go to them first)")
    assign.add_argument("telegram_id", type=int)
    assign.add_argument("manager", help="the manager's Telegram id, or 'none'")
    for action, text in (("tag", "put a tag on a client (for broadcast segments: tag:NAME)"), ("untag", "take a tag off")):
        tagging = client_sub.add_parser(action, help=text)
        tagging.add_argument("telegram_id", type=int)
        tagging.add_argument("tag")
    exporting = client_sub.add_parser("export", help="everything held about a client, as JSON (RGPD access)")
    exporting.add_argument("telegram_id", type=int)
    exporting.add_argument("-o", "--output", help="write to this file (0600) instead of standard output")
    forgetting = client_sub.add_parser("forget", help="erase a client's data (RGPD); orders stay, pseudonymous")
    forgetting.add_argument("telegram_id", type=int)
    forgetting.add_argument("--yes", action="store_true", help="confirm: erase for good")
    client.set_defaults(func=cmd_client)

    keep = sub.add_parser("retention", help="personal data past its retention period (company.yml retention)")
    keep_sub = keep.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
    keep_sub.add_parser("report", help="a dry run: what would be deleted now, and the latest runs")
    keep_sub.add_parser("run", help="delete it now (the bot does it once a day)")
    keep.set_defaults(func=cmd_retention)

    from crm.reports import SECTIONS

    rep = sub.add_parser("report", help="the managers' report of a period: text, CSV (one row per figure) or PDF")
    rep.add_argument("--month", help="YYYY-MM (default: this month so far)")
    rep.add_argument("--from", dest="start", help="YYYY-MM-DD, with --to: a range of days (both included)")
    rep.add_argument("--to", dest="end", help="YYYY-MM-DD")
    rep.add_argument("--format", choices=["text", "csv", "pdf"], default="text")
    rep.add_argument("--language", choices=list(languages()), default=DEFAULT_LANGUAGE,
                     help="the language of the text and the PDF")
    rep.add_argument("--part", action="append", choices=list(SECTIONS),
                     help="only this part (repeatable; default: all)")
    rep.add_argument("-o", "--output", help="write to this file (needed for a PDF)")
    rep.set_defaults(func=cmd_report)

    sub.add_parser("sender", help="run the broadcast sender alone (with BROADCAST_SENDER=separate for the bot)"
                   ).set_defaults(func=cmd_sender)

    bc = sub.add_parser("broadcast", help="promotional broadcasts to the clients who agreed")
    bc_sub = bc.add_subparsers(dest="broadcast_command", required=True, metavar="ACTION")
    create = bc_sub.add_parser("create", help="compose one; shows the recipients, sends only with --yes")
    create.add_argument("--text-fr", required=True, help="Telegram HTML (<b>, <i>, <a href>...); {first_name} allowed")
    create.add_argument("--text-en", help="the English version (default: the French text for everyone)")
    create.add_argument("--segment", default="", help="e.g. 'lang:fr category:Écrans last_order>90 vip tag:salon'")
    create.add_argument("--photo", help="an https URL or a Telegram file id (the text becomes its caption)")
    create.add_argument("--at", help="'YYYY-MM-DD HH:MM' on the desk's clock, company.yml desk.timezone "
                        "(default: now)")
    create.add_argument("--yes", action="store_true", help="confirm: schedule it")
    count = bc_sub.add_parser("count", help="how many clients a segment reaches now")
    count.add_argument("segment")
    bc_sub.add_parser("list", help="broadcasts and their state")
    cancel_bc = bc_sub.add_parser("cancel", help="cancel a scheduled or running broadcast")
    cancel_bc.add_argument("id", type=int)
    bc.set_defaults(func=cmd_broadcast)

    export = sub.add_parser("export", help="export CRM data for an import elsewhere")
    export.add_argument("what", choices=["leads"])
    export.add_argument("--format", choices=["csv"], default="csv")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> None:
    # Databases, logs and secrets we (and the Rasa processes we start) create are ours alone.
    os.umask(0o077)
    # Libraries at WARNING (httpx would log every Bot API URL, the token in it, at INFO); our own
    # code at INFO (what the daily jobs did). No log line of ours holds a message's text.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for ours in ("bot", "crm"):
        logging.getLogger(ours).setLevel(logging.INFO)
    args = parser().parse_args(argv)
    args.func(args)
