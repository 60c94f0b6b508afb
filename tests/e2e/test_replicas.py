"""The replica layout end to end (bot/layout.py, what `python -m bot run --replicas 2` starts):
two bot processes in webhook mode behind haproxy, one Rasa server with two Sanic workers (its
locks in Redis, its trackers in PostgreSQL), two action servers behind haproxy, one PostgreSQL
CRM. The emulator plays Telegram and calls haproxy's webhook front end. Skipped with a message
where PostgreSQL, Redis or haproxy is missing (`make replicas-setup` installs haproxy)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text, update

from bot.emulator import BotApiEmulator, User
from bot.layout import Layout, Shape
from bot.cli import prepare_database
from bot.rasa_model import train_if_needed
from crm import clock
from crm.db import engine_for, unit_of_work
from crm.models import ConversationMessage, Handoff
from tests.conftest import PG_URL, postgres_reachable
from tests.faults.harness import wait_until
from tests.harness import always_open_profile, free_block, make_settings, production_stores
from tests.stack import redis_reachable

REDIS_DB = os.environ.get("TEST_REDIS_DB", "0")
GREETING = "Bonjour ! Je suis"
GOODBYE = "Au revoir, et merci"
LATE = "Me revoilà, pardon pour l'attente"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    reason = postgres_reachable() or redis_reachable() or (
        None if shutil.which("haproxy") else "haproxy is not installed (make replicas-setup); the replica layout needs it")
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("replicas")
    schema = f"replicas_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    database_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    emulator = BotApiEmulator().start()
    url = admin.url
    env = {
        **production_stores(url, REDIS_DB), "COMPANY_PROFILE": str(always_open_profile(tmp)),
        # A killed process's claims go stale quickly here (60 s in production).
        "ANSWER_CLAIM_TIMEOUT": "5", "OUTBOX_CLAIM_TIMEOUT": "5", "RASA_TIMEOUT": "30",
    }
    webhook_port, action_port, rasa_port = free_block(2), free_block(2), free_block(0)
    settings = make_settings(
        database_url, f"http://127.0.0.1:{rasa_port}", rasa_port=rasa_port, action_port=action_port,
        action_url=f"http://127.0.0.1:{action_port}", rasa_timeout=30.0, telegram_base_url=emulator.base_url,
        webhook_port=webhook_port, redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}", rasa_db_host=env["RASA_DB_HOST"],
        rasa_db_user=env["RASA_DB_USER"], rasa_db_name=env["RASA_DB_NAME"])
    prepare_database(database_url)
    layout = Layout(settings, train_if_needed(), Shape(bots=2, rasa_workers=2, action_servers=2), env=env,
                    log_dir=tmp / "logs")
    try:
        layout.start()
    except Exception:
        layout.stop()
        for log in (tmp / "logs").glob("*.log"):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        emulator.stop()
        raise
    yield layout, emulator, engine_for(database_url)
    layout.stop()
    emulator.stop()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


def answers_of(emulator: BotApiEmulator, user: User) -> list[str]:
    """What the assistant answered a client, in order. The one repeat allowed is announced: a
    process killed between sending an answer and writing it down leaves the message owed, and
    the process that answers it again first apologises for the late answer; that answer counts
    once. Any other repeat shows."""
    found, announced = [], False
    for sent in emulator.messages_to(user.id):
        body = sent.text or ""
        if body.startswith(LATE):
            announced = True
            continue
        kind = "greeting" if body.startswith(GREETING) else "goodbye" if body.startswith(GOODBYE) else None
        if kind is None:
            continue
        if not (announced and found[-1:] == [kind]):
            found.append(kind)
        announced = False
    return found


def rows_of(engine, telegram_id: int) -> list:
    from crm.models import Client

    with unit_of_work(engine) as s:
        return [(r.direction, r.text[:40], r.answered, r.update_id) for r in s.scalars(
            select(ConversationMessage).join(Client).where(Client.telegram_id == telegram_id)
            .order_by(ConversationMessage.id))]


def test_200_clients_at_once_a_bot_killed_midway_outbox_and_reminders_once(replicas):
    layout, emulator, engine = replicas
    from crm.clients import TelegramProfile, register_client
    from crm.handoffs import open_handoff
    from crm.outbox import enqueue
    from crm.staff import add_staff

    manager, waiting = User(id=880_001, first_name="Marie"), User(id=880_002, first_name="Paul")
    with unit_of_work(engine) as s:
        add_staff(s, manager.id, "manager", "Marie Manager")
        for i in range(40):
            enqueue(s, 881_000 + i, f"note-{881_000 + i}")
        client, _ = register_client(s, TelegramProfile(waiting.id, "Paul", "", None, "fr"))
        handoff, _ = open_handoff(s, client, "request")
        s.flush()
        s.execute(update(Handoff).where(Handoff.id == handoff.id)
                  .values(queued_at=clock.now() - timedelta(minutes=30), opened_at=clock.now() - timedelta(minutes=30)))

    people = [User(id=890_000 + i, first_name=f"Client {i}", language_code="fr") for i in range(200)]
    for user in people:  # each writes twice without waiting, all at once
        emulator.user_says(user, "bonjour")
    for user in people:
        emulator.user_says(user, "au revoir")

    assert wait_until(lambda: sum(1 for u in people if answers_of(emulator, u)) >= 60, 240), "no answers"
    layout.kill("bot1")  # kill -9 in the middle of the load
    time.sleep(3)
    layout.start_bot(1)  # and back
    layout.wait_bots(which=[1])

    def settled():
        with unit_of_work(engine) as s:
            owed = s.scalar(select(func.count()).select_from(ConversationMessage).where(
                ConversationMessage.direction == "in", ConversationMessage.answered.is_(False)))
        return owed == 0 and all(answers_of(emulator, u)[-1:] == ["goodbye"] for u in people)

    if not wait_until(settled, 240, 1.0):
        from crm.models import InboundUpdate

        with unit_of_work(engine) as s:
            owed = s.execute(select(ConversationMessage.client_id, ConversationMessage.text, ConversationMessage.claimed_at)
                             .where(ConversationMessage.direction == "in", ConversationMessage.answered.is_(False))).all()
            unfinished = s.execute(select(InboundUpdate.chat_id, InboundUpdate.owner, InboundUpdate.received_at)
                                   .where(InboundUpdate.done_at.is_(None))).all()
        short = {u.id: answers_of(emulator, u) for u in people if answers_of(emulator, u)[-1:] != ["goodbye"]}
        pytest.fail(f"not answered: {len(owed)} owed {owed[:5]}; {len(unfinished)} updates unfinished "
                    f"{unfinished[:5]}; {len(short)} clients without their goodbye {list(short.items())[:5]}; "
                    f"undelivered {len(emulator.undelivered)}; logs {layout.services.log_dir}")
    time.sleep(3)  # a doubled answer would arrive now

    for user in people:  # each message answered once, in the order written
        assert answers_of(emulator, user) == ["greeting", "goodbye"], (
            user.id, [(m.text or "")[:50] for m in emulator.messages_to(user.id)], rows_of(engine, user.id))
    with unit_of_work(engine) as s:
        written = defaultdict(list)
        for client_id, body in s.execute(select(ConversationMessage.client_id, ConversationMessage.text)
                                         .where(ConversationMessage.direction == "in")
                                         .order_by(ConversationMessage.id)):
            written[client_id].append(body)
    assert sorted(map(tuple, written.values())) == [("bonjour", "au revoir")] * 200  # recorded once each

    notes = [m.text for m in emulator.sent if (m.text or "").startswith("note-")]
    assert sorted(notes) == sorted(f"note-{881_000 + i}" for i in range(40)), "each notification once"
    # The waiting client is told once, the manager got the handoff's notice and one reminder,
    # though both processes run the reminders every 15 s.
    assert wait_until(lambda: len(emulator.messages_to(waiting.id)) >= 1, 40)
    assert wait_until(lambda: len(emulator.messages_to(manager.id)) >= 2, 40)
    time.sleep(16)  # another round of both processes' reminders
    assert len(emulator.messages_to(waiting.id)) == 1, [m.text for m in emulator.messages_to(waiting.id)]
    assert len(emulator.messages_to(manager.id)) == 2, [m.text for m in emulator.messages_to(manager.id)]
