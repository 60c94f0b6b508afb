"""Bot replicas (bot/replicas.py, bot/webhook.py): two bot processes in webhook mode behind a
round-robin balancer, on one CRM (SQLite and PostgreSQL) and one Redis, with a stub Rasa. The
end-to-end version with real processes, haproxy and Rasa workers is tests/e2e/test_replicas.py."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import defaultdict
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from bot.emulator import BotApiEmulator, User
from bot.replicas import ALIVE_PREFIX, PREFIX, Replicas
from crm import clock, inbox
from crm.db import unit_of_work
from crm.models import ConversationMessage, InboundUpdate
from tests.harness import StubRasa
from tests.stack import redis_reachable
from tests.test_telegram_edge import WebhookBot

REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('TEST_REDIS_DB', '0')}"


@pytest.fixture
def redis_url():
    reason = redis_reachable()
    if reason:
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
def database_url(engine):
    return engine.url.render_as_string(hide_password=False)


def slow_echo(sender, message, metadata):
    time.sleep(random.uniform(0, 0.02))  # answers overtake each other unless the bot keeps order
    return [{"recipient_id": sender, "text": f"echo {message}"}]


@pytest.fixture
def stub():
    rasa = StubRasa(slow_echo)
    yield rasa
    rasa.close()


def clients(count: int) -> list[User]:
    base = random.randint(10**6, 10**7)  # the Redis keys of one run never meet another's
    return [User(id=base + i, first_name=f"Client {i}", language_code="fr") for i in range(count)]


def dump_tasks() -> str:
    """Every asyncio task's stack, for a test that timed out."""
    import io

    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=12, file=out)
    return out.getvalue()


async def test_two_replicas_answer_each_message_once_in_order_per_client(database_url, stub, redis_url):
    # Bounded: a deadlock fails the test with every task's stack instead of stalling the suite.
    task = asyncio.create_task(two_replicas_in_order(database_url, stub, redis_url))
    done, _ = await asyncio.wait({task}, timeout=240)
    if not done:
        stacks = dump_tasks()
        task.cancel()
        await asyncio.wait({task}, timeout=90)
        pytest.fail(f"two replicas hung; the tasks:\n{stacks}")
    task.result()


async def two_replicas_in_order(database_url, stub, redis_url):
    emulator = BotApiEmulator().start()
    try:
        async with WebhookBot(database_url, stub.url, emulator, redis_url=redis_url) as first, \
                WebhookBot(database_url, stub.url, emulator, redis_url=redis_url) as second:
            emulator.balance([first.url, second.url])  # one client's messages alternate replicas
            people, count = clients(30), 6
            for i in range(count):
                for user in people:
                    emulator.user_says(user, f"message {i}")
            for user in people:
                await asyncio.to_thread(emulator.wait_for_messages, user.id, count, 90)
            await asyncio.sleep(0.3)  # a doubled answer would arrive now
            expected = [f"echo message {i}" for i in range(count)]
            for user in people:
                assert [m.text for m in emulator.messages_to(user.id)] == expected
            to_rasa = defaultdict(list)
            for call in stub.received:
                to_rasa[call["sender"]].append(call["message"])
            assert all(to_rasa[str(user.id)] == [f"message {i}" for i in range(count)] for user in people)
            with unit_of_work(first.application.assistant.engine) as s:
                owners = set(s.scalars(select(InboundUpdate.owner)))
                assert s.scalar(select(func.count()).where(InboundUpdate.done_at.is_(None))) == 0
                inbound = s.scalar(select(func.count()).where(ConversationMessage.direction == "in"))
            assert owners == {first.application.assistant.replicas.me, second.application.assistant.replicas.me}
            assert inbound == len(people) * count
            assert emulator.undelivered == []
    finally:
        emulator.stop()


async def test_what_a_dead_replica_left_is_answered_once_by_the_live_ones(database_url, stub, redis_url):
    """Updates written down by a process that died (no heartbeat) are answered, once, by one of
    two live replicas; a command is not replayed late; a live process's updates are left to it."""
    emulator = BotApiEmulator().start()
    dead, alive_user, command_user, live = clients(4)[:4]
    live_owner = f"another-live-process-{random.randint(0, 10**9)}"
    client = redis.Redis.from_url(redis_url)
    client.set(ALIVE_PREFIX + live_owner, "1", ex=60)
    try:
        async with WebhookBot(database_url, stub.url, emulator, redis_url=redis_url) as first:
            engine = first.application.assistant.engine
            base = random.randint(10**8, 9 * 10**8)
            rows = [(dead, "laissé par un mort", "ghost:1:abc"), (alive_user, "aussi", "ghost:1:abc"),
                    (command_user, "/start", "ghost:1:abc"), (live, "en cours ailleurs", live_owner)]
            with unit_of_work(engine) as s:
                for i, (user, text, owner) in enumerate(rows):
                    payload = {"update_id": base + i, "message": {
                        "message_id": 5000 + i, "date": int(time.time()), "text": text,
                        "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                        "from": user.as_json(),
                        **({"entities": [{"type": "bot_command", "offset": 0, "length": 6}]} if text == "/start" else {})}}
                    inbox.keep(s, base + i, user.id, payload, owner)
            async with WebhookBot(database_url, stub.url, emulator, redis_url=redis_url):
                await asyncio.to_thread(emulator.wait_for_messages, dead.id, 1, 30)
                await asyncio.to_thread(emulator.wait_for_messages, alive_user.id, 1, 30)
                await asyncio.sleep(6)  # both replicas' take-over rounds have run at least once more
            assert [m.text for m in emulator.messages_to(dead.id)] == ["echo laissé par un mort"]
            assert [m.text for m in emulator.messages_to(alive_user.id)] == ["echo aussi"]
            assert emulator.messages_to(command_user.id) == [] and emulator.messages_to(live.id) == []
            with unit_of_work(engine) as s:
                left = s.execute(select(InboundUpdate.chat_id, InboundUpdate.owner)
                                 .where(InboundUpdate.done_at.is_(None))).all()
            assert left == [(live.id, live_owner)]
    finally:
        client.delete(ALIVE_PREFIX + live_owner)
        client.close()
        emulator.stop()


async def test_with_redis_down_messages_are_still_answered(database_url, stub):
    async with WebhookBot(database_url, stub.url, redis_url="redis://127.0.0.1:1/0") as bot:
        [user] = clients(1)
        for i in range(3):
            bot.emulator.user_says(user, f"m{i}")
        answers = await asyncio.to_thread(bot.emulator.wait_for_messages, user.id, 3, 30)
        assert [a.text for a in answers] == ["echo m0", "echo m1", "echo m2"]
        assert bot.application.assistant.replicas.unshared >= 3
    bot.emulator.stop()


async def test_the_lock_holder_handles_a_chats_earlier_updates_first(database_url, stub, redis_url):
    """Updates other processes wrote down and have not handled yet are handled before a later one
    of the same chat, then skipped by those processes: a live process's (it waits for the chat's
    lock), however long it has waited, commands included; a dead process's command is not
    replayed late, its message is."""
    alive = f"busy-replica-{random.randint(0, 10**9)}"
    client = redis.Redis.from_url(redis_url)
    client.set(ALIVE_PREFIX + alive, "1", ex=60)
    try:
        async with WebhookBot(database_url, stub.url, redis_url=redis_url) as bot:
            [user] = clients(1)
            engine = bot.application.assistant.engine

            def message(number: int, text: str) -> dict:
                return {"message_id": number, "date": int(time.time()), "text": text,
                        "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                        "from": user.as_json(),
                        **({"entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}
                           if text.startswith("/") else {})}

            first_id = random.randint(10**8, 9 * 10**8)
            waiting = [("/start", "dead-replica"), ("/start", alive), ("premier", "dead-replica"), ("encore", alive)]
            with unit_of_work(engine) as s:
                for i, (text, owner) in enumerate(waiting):
                    inbox.keep(s, first_id + i, user.id, {"update_id": first_id + i, "message": message(7000 + i, text)},
                               owner)
                # The live process's command has waited over a minute for the lock.
                s.execute(update(InboundUpdate).where(InboundUpdate.update_id == first_id + 1)
                          .values(received_at=clock.now() - timedelta(minutes=2)))
            from telegram import Update

            app = bot.application
            later = len(waiting)
            await app.process_update(Update.de_json({"update_id": first_id + later, "message": message(7100, "deuxième")},
                                                    app.bot))
            for i, (text, _) in enumerate(waiting):  # the other processes get the lock in turn: nothing left
                await app.process_update(Update.de_json({"update_id": first_id + i, "message": message(7000 + i, text)},
                                                        app.bot))
            assert [r["message"] for r in stub.received] == ["/greet", "premier", "encore", "deuxième"]
            with unit_of_work(engine) as s:
                assert s.scalar(select(func.count()).select_from(InboundUpdate).where(
                    InboundUpdate.chat_id == user.id, InboundUpdate.done_at.is_(None))) == 0
    finally:
        client.delete(ALIVE_PREFIX + alive)
        client.close()


async def test_the_chat_lock_is_shared_by_two_processes_and_reentrant_in_a_task(redis_url):
    one, two = Replicas(redis_url), Replicas(redis_url)
    order = []

    async def hold(replicas, name, seconds):
        async with replicas.hold(("test", name)):
            async with replicas.hold(("test", name)):  # the same task again: no wait on itself
                order.append(f"{name} in")
                await asyncio.sleep(seconds)
                order.append(f"{name} out")

    key = f"k{random.randint(0, 10**9)}"
    first = asyncio.create_task(hold(one, key, 0.3))
    await asyncio.sleep(0.05)
    # Who holds a chat, for an operator (`redis-cli get assistant:chat:…`): the holder process.
    holder = await one._client().get(f"{PREFIX}test:{key}")
    await hold(two, key, 0)
    await first
    assert order == [f"{key} in", f"{key} out", f"{key} in", f"{key} out"]
    assert holder.decode().startswith(f"{one.me}:")
    assert await one._client().get(f"{PREFIX}test:{key}") is None  # released
    await one.beat()
    assert await two.dead([one.me, "never-seen", None]) == ["never-seen", None]
    await one.close()
    await two.close()


async def test_bot_processes_share_telegrams_pace(database_url, stub, tmp_path):
    """K bot processes send for one bot, whose pace Telegram limits (about 30 messages a second):
    the layout gives each process its share, and a process keeps to it."""
    from bot.layout import Layout, Shape
    from tests.harness import make_settings

    layout = Layout(make_settings(database_url, stub.url), tmp_path / "model",
                    Shape(bots=3, rasa_workers=1, action_servers=1), log_dir=tmp_path)
    assert [(layout.bot_env(i)["TELEGRAM_RATE"], layout.bot_env(i)["BROADCAST_RATE"]) for i in (1, 2, 3)] == \
        [("10.0", "10.0")] * 3
    async with WebhookBot(database_url, stub.url, telegram_rate=10.0) as bot:
        started = time.monotonic()
        await asyncio.gather(*(bot.application.bot.send_message(1000 + i, "x") for i in range(30)))
        spent = time.monotonic() - started
        assert len(bot.emulator.sent) == 30
    assert spent >= 1.5  # 30 messages at 10 a second (unpaced, they all go within milliseconds)


async def test_an_erasure_from_the_command_line_waits_for_the_chats_lock(engine, database_url, redis_url, tmp_path):
    """`python -m bot client forget` beside running bot processes: a message of the client being
    answered (its chat's lock held) is finished before the erasure starts."""
    import subprocess
    import sys

    from crm.clients import TelegramProfile, record_message, register_client
    from crm.settings import ROOT
    from tests.test_privacy import rasa_tracker_store

    telegram_id = random.randint(10**8, 10**9)
    with unit_of_work(engine) as s:
        client, _ = register_client(s, TelegramProfile(telegram_id, "Ana", None, None, "fr"))
        record_message(s, client, "in", "bonjour")
    tracker = tmp_path / "tracker.db"
    rasa_tracker_store(tracker, {str(telegram_id): [time.time()]})
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "RASA_TRACKER_DB": str(tracker),
           "RASA_TOKEN": "a-test-token-of-24-chars", "ACTION_SERVER_TOKEN": "an-action-token-of-24-ch",
           "DEMO_DATA": "off"}

    def messages() -> int:
        with unit_of_work(engine) as s:
            return s.scalar(select(func.count()).select_from(ConversationMessage))

    bot_process = Replicas(redis_url)
    async with bot_process.hold(telegram_id):  # the bot answering one of the client's messages
        erasure = subprocess.Popen([sys.executable, "-m", "bot", "client", "forget", str(telegram_id), "--yes"],
                                   cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        await asyncio.sleep(4)
        assert erasure.poll() is None and messages() == 1  # waiting for the lock, nothing erased yet
    out, err = await asyncio.to_thread(erasure.communicate, timeout=120)
    assert erasure.returncode == 0, err
    assert out.startswith(f"Client {telegram_id} erased (messages 1") and messages() == 0
    await bot_process.close()


async def test_a_hold_longer_than_its_lease_keeps_the_chat(redis_url):
    """A long answer (Rasa slow, many sends) outlives the lease: the lease is renewed while the
    holder lives, so another process never handles the chat meanwhile."""
    one, two = Replicas(redis_url, lease=0.6), Replicas(redis_url, lease=0.6)
    order = []
    key = f"k{random.randint(0, 10**9)}"

    async def hold(replicas, name, seconds):
        async with replicas.hold(("test", key)):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    first = asyncio.create_task(hold(one, "one", 2.0))  # over three leases
    await asyncio.sleep(0.1)
    await hold(two, "two", 0)
    await first
    assert order == ["one in", "one out", "two in", "two out"]
    await one.close()
    await two.close()


async def test_a_message_recorded_by_a_killed_process_is_answered_in_its_turn(database_url, stub, redis_url):
    """Killed after recording a message and before answering it: the process that takes its
    update over (at restart, or a live replica) answers it at once, before the client's later
    message, instead of waiting for the dead process's claim to go stale, with the apology of a
    late answer (the dead process may have sent its answer just before it died)."""
    from crm.clients import TelegramProfile, record_message, register_client

    [user] = clients(1)
    first_id = random.randint(10**8, 9 * 10**8)

    def update(update_id: int, text: str) -> dict:
        return {"update_id": update_id, "message": {
            "message_id": update_id % 10**6, "date": int(time.time()), "text": text,
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name}, "from": user.as_json()}}

    from crm.db import engine_for

    with unit_of_work(engine_for(database_url)) as s:
        client, _ = register_client(s, TelegramProfile(user.id, user.first_name, "", None, "fr"))
        record_message(s, client, "in", "bonjour", answered=False, update_id=first_id)  # claimed by the dead
        inbox.keep(s, first_id, user.id, update(first_id, "bonjour"), "killed-process")
        inbox.keep(s, first_id + 1, user.id, update(first_id + 1, "au revoir"), "killed-process")
    async with WebhookBot(database_url, stub.url, redis_url=redis_url) as bot:
        answers = await asyncio.to_thread(bot.emulator.wait_for_messages, user.id, 3, 20)
        await asyncio.sleep(0.5)
        assert [a.text for a in bot.emulator.messages_to(user.id)] == [
            "Me revoilà, pardon pour l'attente ! Votre message « bonjour » :", "echo bonjour", "echo au revoir"]
        with unit_of_work(bot.application.assistant.engine) as s:
            rows = s.execute(select(ConversationMessage.direction, ConversationMessage.text,
                                    ConversationMessage.answered).order_by(ConversationMessage.id)).all()
    assert answers and rows == [("in", "bonjour", True), ("out", "echo bonjour", True),
                                ("in", "au revoir", True), ("out", "echo au revoir", True)]
