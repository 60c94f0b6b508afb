"""Fault injection: the bot as a real process (`python -m bot serve`) killed with SIGKILL in the
middle of a conversation, a handoff and a broadcast; Rasa down for 30 s; the action server down;
the CRM database unreachable; the Bot API answering 429, 500 and time-outs in bursts; two bot
processes on one database. Each case counts the client messages received, answered, lost and
doubled (tests/faults/conftest.py prints the table) and asserts 0 lost and 0 doubled.

The kills land where it hurts: while Rasa works on a message, while an answer or a relay is on
its way to Telegram (the request never completes), right after Telegram accepted a broadcast
message (before the sender could record it)."""

from __future__ import annotations

import threading
import time
import uuid
from itertools import count

import pytest
from sqlalchemy import create_engine, insert, select, text

from bot.cli import prepare_database
from bot.emulator import BotApiEmulator, User
from crm import broadcasts
from crm.clients import TelegramProfile, register_client
from crm.db import make_engine, unit_of_work
from crm.handoffs import open_handoff, take_handoff
from crm.models import Client, Consent
from crm.staff import add_staff
from tests.conftest import PG_URL, postgres_reachable
from tests.faults.conftest import record
from tests.faults.harness import BotProcess, StubRasa, Tally, TcpProxy, converse, count_answers, echo, wait_until
from tests.harness import free_port
from tests.stack import always_open_profile


class World:
    """The emulator, a stub Rasa, a CRM database and the bot processes of one case."""

    def __init__(self, tmp_path, database_url: str | None = None, rasa_url: str | None = None, **env):
        self.tmp = tmp_path
        self.emulator = BotApiEmulator().start()
        self.rasa = StubRasa(echo)
        self.database_url = database_url or f"sqlite:///{tmp_path / 'crm.db'}"
        prepare_database(self.database_url)
        self.env = {"COMPANY_PROFILE": str(always_open_profile(tmp_path)),
                    "ACTION_SERVER_URL": f"http://127.0.0.1:{free_port()}", **env}
        self.rasa_url = rasa_url or self.rasa.url
        self.bots: list[BotProcess] = []

    def bot(self, **env) -> BotProcess:
        process = BotProcess(self.emulator, self.database_url, self.rasa_url, self.tmp / f"bot{len(self.bots)}.log",
                             **{**self.env, **env})
        self.bots.append(process)
        return self.start(process)

    def start(self, process: BotProcess) -> BotProcess:
        polls = self.polls()
        process.start()
        assert wait_until(lambda: self.polls() > polls or not process.alive(), 60), "the bot never polled"
        assert process.alive(), self.log_tail(process)
        return process

    def polls(self) -> int:
        return sum(1 for method, _ in list(self.emulator.calls) if method == "getUpdates")

    def restart_later(self, process: BotProcess, after: float = 0.5) -> threading.Thread:
        """kill -9 now, start again `after` seconds later (from another thread)."""
        process.kill()

        def again():
            time.sleep(after)
            self.start(process)

        thread = threading.Thread(target=again, daemon=True)
        thread.start()
        return thread

    def engine(self):
        return make_engine(self.database_url)

    @staticmethod
    def log_tail(process: BotProcess) -> str:
        return process.log.read_text(errors="replace")[-4000:] if process.log.exists() else ""

    def close(self) -> None:
        for process in self.bots:
            process.stop()
        self.rasa.close()
        self.emulator.stop()


@pytest.fixture
def world(tmp_path):
    made = []

    def make(**kwargs) -> World:
        made.append(World(tmp_path, **kwargs))
        return made[-1]

    yield make
    for w in made:
        w.close()


def clients(first_id: int, n: int) -> list[User]:
    return [User(id=first_id + i, first_name=f"Client{i}", language_code="fr") for i in range(n)]


def talk(w: World, users: list[User], messages: int, tally: Tally, patience: float = 40.0) -> None:
    """Every client writes `messages` messages, each after the answer to the last, all at once."""
    stop = threading.Event()
    threads = [threading.Thread(target=converse, args=(w.emulator, u, [f"m{u.id}-{n}" for n in range(messages)],
                                                       tally, stop, patience)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def take_turns(w: World, users: list[User], messages: int, tally: Tally, patience: float = 40.0) -> None:
    """The clients write in turn, each after the answer to the one before: when the bot is
    killed, exactly one message is in flight (the one the kill is aimed at)."""
    stop = threading.Event()
    for n in range(messages):
        for user in users:
            converse(w.emulator, user, [f"m{user.id}-{n}"], tally, stop, patience)


def settle(w: World, users: list[User], tally: Tally, timeout: float = 40.0) -> dict:
    """Wait until every message is answered (or `timeout`), then a little more to catch doubles."""
    def all_answered():
        count_answers(w.emulator, users, tally)
        return all(tally.answers[m] >= 1 for m in tally.sent)

    wait_until(all_answered, timeout)
    time.sleep(3)  # a late duplicate would show now (claims go stale after 2 s here)
    count_answers(w.emulator, users, tally)
    row = tally.row()
    record(row)
    return row


def check(row: dict, w: World) -> None:
    logs = "\n".join(w.log_tail(p) for p in w.bots)
    assert (row["lost"], row["doubled"]) == (0, 0), f"{row}\n{logs}"


# --- the bot killed --------------------------------------------------------------------------------


def killed_twice(w: World, bot: BotProcess, first_id: int, case: str) -> None:
    """Six clients taking turns, six messages each, while the hook set up by the case kills the bot."""
    users, tally = clients(first_id, 6), Tally(case)
    take_turns(w, users, 6, tally)
    check(settle(w, users, tally), w)
    assert bot.starts == 3, "killed twice, started again twice"


def test_kill_9_while_rasa_works_on_a_message(world):
    w = world()
    bot = w.bot()
    seen, kills = count(1), {9, 23}

    def rasa(sender, message, metadata):
        if next(seen) in kills:  # the bot dies waiting for this answer
            w.restart_later(bot)
            time.sleep(0.3)
        return echo(sender, message, metadata)

    w.rasa.reply = rasa
    killed_twice(w, bot, 70_000, "bot killed -9 while Rasa answers (x2)")


def test_kill_9_while_an_answer_is_on_its_way_to_telegram(world):
    w = world()
    bot = w.bot()
    answers, kills = count(1), {7, 19}

    def telegram(method, params):
        if method == "sendMessage" and str(params.get("text", "")).startswith("echo: ") and next(answers) in kills:
            w.restart_later(bot)
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}  # it never arrived
        return None

    w.emulator.responder = telegram
    killed_twice(w, bot, 71_000, "bot killed -9 while sending an answer (x2)")


def test_kill_9_in_the_middle_of_a_handoff(world):
    w = world()
    manager = User(id=79_001, first_name="Claire", language_code="fr")
    users = clients(72_000, 3)
    with unit_of_work(w.engine()) as s:
        claire = add_staff(s, manager.id, "manager", "Claire Dubois")
        for user in users:
            client, _ = register_client(s, TelegramProfile(user.id, user.first_name, language_code="fr"))
    bot = w.bot()
    with unit_of_work(w.engine()) as s:  # each conversation is held by Claire
        for user in users:
            client = s.scalar(select(Client).where(Client.telegram_id == user.id))
            take_handoff(s, open_handoff(s, client, "request")[0].id, claire)
    relays, copies = count(1), count(1)

    def telegram(method, params):
        to_manager = method == "sendMessage" and int(params.get("chat_id", 0)) == manager.id and \
            str(params.get("text", "")).startswith("💬")
        to_client = method == "copyMessage" and int(params.get("chat_id", 0)) != manager.id
        if (to_manager and next(relays) == 4) or (to_client and next(copies) == 5):
            w.restart_later(bot)
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        return None

    w.emulator.responder = telegram
    tally = Tally("bot killed -9 mid-handoff, relaying each way")
    for round_ in range(4):
        for user in users:
            said = f"c{user.id}-{round_}"
            tally.sent.append(said)
            w.emulator.user_says(user, said)
            assert wait_until(lambda: any((m.text or "").endswith(f"\n{said}") for m in w.emulator.messages_to(manager.id)),
                              30), w.log_tail(bot)
            answer = f"r{user.id}-{round_}"
            tally.sent.append(answer)
            relayed = next(m for m in w.emulator.messages_to(manager.id) if (m.text or "").endswith(f"\n{said}"))
            w.emulator.user_says(manager, answer, reply_to=relayed)
            assert wait_until(lambda: any(m.method == "copyMessage" for m in w.emulator.messages_to(user.id)
                                          if m.text == answer), 30), w.log_tail(bot)
    time.sleep(3)
    tally.answers.clear()
    for m in w.emulator.messages_to(manager.id):
        if (m.text or "").startswith("💬"):
            tally.answers[(m.text or "").rsplit("\n", 1)[-1]] += 1
    for user in users:
        for m in w.emulator.messages_to(user.id):
            if m.method == "copyMessage":
                tally.answers[m.text] += 1
    row = tally.row()
    record(row)
    check(row, w)
    assert bot.starts == 3, "killed relaying to the manager, and passing a reply on"


def test_kill_9_in_the_middle_of_a_broadcast(world):
    w = world()
    recipients = [90_000 + i for i in range(200)]
    with unit_of_work(w.engine()) as s:
        s.execute(insert(Client), [{"telegram_id": t, "first_name": f"C{t}", "last_name": "", "language": "fr"}
                                   for t in recipients])
        ids = dict(s.execute(select(Client.telegram_id, Client.id)).all())
        s.execute(insert(Consent), [{"client_id": ids[t], "granted": True, "source": "command"} for t in recipients])
        marketer = add_staff(s, 89_001, "marketer", "Hugo")
        broadcasts.schedule(s, broadcasts.create(s, marketer, "Promo {prénom} : -15 %"))
    bot = w.bot()
    promos = count(1)

    def telegram(method, params):
        if method == "sendMessage" and str(params.get("text", "")).startswith("Promo") and next(promos) == 80:
            # Telegram takes this one (the emulator records it after this returns); the sender
            # dies before it hears so, with nothing else in flight (it sends one at a time).
            w.restart_later(bot)
        return None

    w.emulator.responder = telegram
    tally = Tally("bot killed -9 mid-broadcast (200 recipients)")
    tally.sent = [str(t) for t in recipients]

    def delivered():
        tally.answers.clear()
        for sent in list(w.emulator.sent):
            if (sent.text or "").startswith("Promo"):
                tally.answers[str(sent.chat_id)] += 1
        return all(tally.answers[t] >= 1 for t in tally.sent)

    wait_until(delivered, 60)
    time.sleep(4)
    delivered()
    row = tally.row()
    record(row)
    check(row, w)
    assert bot.starts == 2, "killed once mid-send"


# --- services down ---------------------------------------------------------------------------------


def test_rasa_down_for_30_seconds(world):
    w = world()
    w.bot()
    down = threading.Event()
    w.rasa.reply = lambda s, m, md: (503, {"error": "down"}) if down.is_set() else echo(s, m, md)
    users, tally = clients(73_000, 8), Tally("Rasa down for 30 s")
    talk(w, users[:4], 2, tally)
    down.set()
    for user in users:  # each client writes once while Rasa is down, and is told why the wait
        text = f"down{user.id}"
        tally.sent.append(text)
        w.emulator.user_says(user, text)
    assert wait_until(lambda: all(any("problème technique" in (m.text or "") for m in w.emulator.messages_to(u.id))
                                  for u in users), 20)
    time.sleep(30)
    down.clear()
    row = settle(w, users, tally, timeout=45)
    check(row, w)


def test_the_action_server_down_then_back(sqlite_stack, tmp_path):
    services = sqlite_stack.services
    emulator = BotApiEmulator().start()
    process = BotProcess(emulator, sqlite_stack.settings.database_url, sqlite_stack.settings.rasa_url,
                         tmp_path / "bot.log", RASA_TOKEN=sqlite_stack.settings.rasa_token,
                         ACTION_SERVER_URL=sqlite_stack.settings.action_url,
                         COMPANY_PROFILE=str(always_open_profile(tmp_path)), RASA_TIMEOUT="20")
    users = [User(id=74_000 + i, first_name=f"C{i}", language_code="fr") for i in range(3)]
    tally = Tally("action server down, then back")
    try:
        process.start()
        assert wait_until(lambda: any(m == "getUpdates" for m, _ in list(emulator.calls)), 60)
        services.stop("actions")
        for user in users:
            text = f"avez-vous des écrans ? ({user.id})"
            tally.sent.append(text)
            emulator.user_says(user, text)
        assert wait_until(lambda: all(any("problème technique" in (m.text or "") for m in emulator.messages_to(u.id))
                                      for u in users), 60), process.log.read_text(errors="replace")[-3000:]
    finally:
        services.start_actions()
        services.wait_ready(120)

    def answered():
        tally.answers.clear()
        for user, text in zip(users, tally.sent):
            tally.answers[text] = sum(1 for m in emulator.messages_to(user.id)
                                      if (m.text or "").startswith("Voici notre rayon Écrans"))
        return all(tally.answers[t] >= 1 for t in tally.sent)

    try:
        wait_until(answered, 60)
        time.sleep(3)
        answered()
        row = tally.row()
        record(row)
        assert (row["lost"], row["doubled"]) == (0, 0), (row, process.log.read_text(errors="replace")[-3000:])
        for user in users:  # told once, not at every retry while the actions were away
            assert sum("problème technique" in (m.text or "") for m in emulator.messages_to(user.id)) == 1
    finally:
        process.stop()
        emulator.stop()


@pytest.fixture
def pg_behind_a_proxy():
    reason = postgres_reachable()
    if reason:
        pytest.skip(reason)
    admin = create_engine(PG_URL)
    schema = f"faults_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    url = admin.url
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False) + \
        f"?options=-csearch_path%3D{schema}"
    proxy.close()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()


def test_the_crm_database_unreachable_for_a_few_seconds(world, pg_behind_a_proxy):
    proxy, url = pg_behind_a_proxy
    w = world(database_url=url)
    w.bot()
    seen = count(1)

    def rasa(sender, message, metadata):
        if next(seen) == 10:  # cut in the middle of the conversations, for 5 s
            proxy.down()
            threading.Timer(5, proxy.restore).start()
        return echo(sender, message, metadata)

    w.rasa.reply = rasa
    users, tally = clients(75_000, 6), Tally("CRM database (PostgreSQL) unreachable for 5 s")
    talk(w, users, 6, tally)
    row = settle(w, users, tally, timeout=60)
    told = [u for u in users if any("me retarde" in (m.text or "") for m in w.emulator.messages_to(u.id))]
    check(row, w)
    assert next(seen) > 11, "the outage happened mid-conversation"
    assert told, "clients who wrote during the outage were told their answer is coming"


def test_connections_cut_while_idle_are_replaced_before_they_fail_a_message(pg_behind_a_proxy, monkeypatch):
    """The CRM restarted (or a firewall dropped idle connections) while the processes waited: the
    next unit of work gets a new connection, no error; a connection back in use at once is not
    tested first (a round trip less on the path of every message)."""
    import crm.db

    proxy, url = pg_behind_a_proxy
    monkeypatch.setattr(crm.db, "PING_AFTER_IDLE", 0.3)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            first = conn.scalar(text("select pg_backend_pid()"))
        with engine.begin() as conn:  # back at once: the same connection, untested
            assert conn.scalar(text("select pg_backend_pid()")) == first
        proxy.down()
        proxy.restore()
        time.sleep(0.5)
        with engine.begin() as conn:  # idle past PING_AFTER_IDLE and cut: replaced, not an error
            assert conn.scalar(text("select pg_backend_pid()")) != first
    finally:
        engine.dispose()


def test_the_bot_api_answering_429_500_and_time_outs_in_bursts(world):
    w = world()
    w.bot()
    calls, burst = count(1), {"until": time.monotonic() + 8}

    def telegram(method, params):
        if method not in ("sendMessage", "getUpdates") or time.monotonic() > burst["until"]:
            return None
        n = next(calls)
        if n % 5 == 0:
            return 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                         "parameters": {"retry_after": 1}}
        if n % 5 == 1:
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if n % 11 == 3 and method == "sendMessage":
            time.sleep(6)  # past the bot's 5 s read time-out; Telegram still delivers it
        return None

    w.emulator.responder = telegram
    users, tally = clients(76_000, 6), Tally("Bot API: 429, 500 and time-outs in bursts")
    talk(w, users, 5, tally)
    check(settle(w, users, tally, timeout=60), w)
    assert next(calls) > 20, "the bursts hit the bot"


def test_two_bot_processes_on_one_database(world):
    w = world()
    w.bot()
    w.bot()
    with unit_of_work(w.engine()) as s:  # notifications both processes' outboxes see
        from crm.outbox import enqueue

        for i in range(40):
            enqueue(s, 78_000 + i, f"note-{78_000 + i}")
    users, tally = clients(77_000, 8), Tally("two bot processes on one database")
    talk(w, users, 5, tally)
    row = settle(w, users, tally)
    notes = [(m.text or "") for m in list(w.emulator.sent) if (m.text or "").startswith("note-")]
    assert sorted(notes) == sorted(f"note-{78_000 + i}" for i in range(40)), "each notification once"
    check(row, w)
