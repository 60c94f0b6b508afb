"""1,000 recipients with a mix of consents, a fake Bot API that answers some requests with 429
(retry_after) and some with 403, and the sender process killed half way then restarted: every
consenting reachable recipient receives exactly one message, nobody else any, and the report's
numbers are right. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import insert, select

from bot.emulator import BotApiEmulator
from crm import broadcasts
from crm.db import unit_of_work
from crm.models import Broadcast, Client, Consent, Notification
from crm.settings import ROOT
from crm.staff import add_staff
from tests.harness import TOKEN

RECIPIENTS = 1000
MARKETER = 9_000_001


def seed(engine) -> tuple[set[int], set[int]]:
    """Clients 1..1000: i % 10 in 0-5 agreed, 6-7 agreed then stopped, 8-9 never agreed.
    Returns (chat ids that should receive it, chat ids that blocked the bot)."""
    should, blocked = set(), set()
    with unit_of_work(engine) as s:
        s.execute(insert(Client), [{"telegram_id": 10_000 + i, "first_name": f"C{i}", "last_name": "",
                                    "language": "fr" if i % 3 else "en"} for i in range(1, RECIPIENTS + 1)])
        ids = dict(s.execute(select(Client.telegram_id, Client.id)).all())
        rows = []
        for i in range(1, RECIPIENTS + 1):
            kind = i % 10
            if kind <= 7:
                rows.append({"client_id": ids[10_000 + i], "granted": True, "source": "command"})
            if kind in (6, 7):
                rows.append({"client_id": ids[10_000 + i], "granted": False, "source": "button"})
            if kind <= 5:
                (blocked if i % 50 == 0 else should).add(10_000 + i)
        s.execute(insert(Consent), rows)
        add_staff(s, MARKETER, "marketer", "Hugo Leroy")
        marketer = s.scalar(select(broadcasts.Staff).where(broadcasts.Staff.telegram_id == MARKETER))
        broadcast = broadcasts.create(s, marketer, "Bonjour {prénom} : <b>-15 %</b> cette semaine",
                                      "Hello {first_name}: <b>15% off</b> this week")
        broadcasts.schedule(s, broadcast)
    return should, blocked


def sender(engine, emulator) -> subprocess.Popen:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": emulator.base_url,
           "DATABASE_URL": engine.url.render_as_string(hide_password=False), "RASA_TOKEN": "a-test-token-of-24-chars", "ACTION_SERVER_TOKEN": "an-action-token-of-24-ch",
           "BROADCAST_RATE": "400", "BROADCAST_CLAIM_TIMEOUT": "2"}
    return subprocess.Popen([sys.executable, "-m", "bot", "sender"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_and_restart_the_sender_half_way(engine):
    should, blocked = seed(engine)
    emulator = BotApiEmulator().start()
    state = {"calls": 0, "limited": set(), "429": 0, "process": None, "killed": False}

    def responder(method, params):
        if method != "sendMessage" or int(params["chat_id"]) == MARKETER:
            return None
        chat = int(params["chat_id"])
        state["calls"] += 1
        if chat in blocked:
            return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
        if state["calls"] % 97 == 0 and chat not in state["limited"]:
            state["limited"].add(chat)
            state["429"] += 1
            return 429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                         "parameters": {"retry_after": 1}}
        if state["calls"] == 300 and not state["killed"]:
            # Killed while this request is in flight: Telegram (here) gets it, the sender never
            # learns. Its row stays claimed; after the restart it is unconfirmed, never resent.
            state["killed"] = True
            state["process"].send_signal(signal.SIGKILL)
        return None

    emulator.responder = responder
    try:
        state["process"] = sender(engine, emulator)
        state["process"].wait(timeout=120)
        assert state["killed"], state["process"].stderr.read().decode()[-2000:]
        with unit_of_work(engine) as s:
            half = broadcasts.counts(s, s.scalar(select(Broadcast.id)))
        assert 0 < half["sent"] < len(should) and half["sending"] == 1

        restarted = sender(engine, emulator)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with unit_of_work(engine) as s:
                if s.scalar(select(Broadcast.state)) == "done":
                    break
            time.sleep(0.5)
        restarted.send_signal(signal.SIGINT)
        restarted.wait(timeout=30)
    finally:
        emulator.stop()
        for process in (state["process"], locals().get("restarted")):
            if process is not None and process.poll() is None:
                process.kill()

    received = Counter(m.chat_id for m in emulator.sent if m.method == "sendMessage" and m.chat_id != MARKETER)
    assert set(received) == should, "every consenting reachable client, and nobody else"
    assert set(received.values()) == {1}, "exactly one message each, kill and 429s included"
    assert state["429"] > 0
    with unit_of_work(engine) as s:
        broadcast_id = s.scalar(select(Broadcast.id))
        numbers = broadcasts.counts(s, broadcast_id)
        assert s.scalar(select(Broadcast.state)) == "done"
        assert (numbers["sent"] + numbers["unconfirmed"], numbers["unconfirmed"]) == (len(should), 1)
        assert (numbers["blocked"], numbers["failed"], numbers["total"]) == (len(blocked), 0, len(should) + len(blocked))
        assert all(s.scalar(select(Client.unreachable).where(Client.telegram_id == chat)) for chat in blocked)
        report = s.scalars(select(Notification.text).where(Notification.chat_id == MARKETER)
                           .order_by(Notification.id)).all()[-1]
    assert report == (f"📣 Diffusion n° {broadcast_id} terminée : {numbers['sent']} envoyés, 0 en échec, "
                      f"{len(blocked)} bloqués (bot bloqué), 1 non confirmés (envoi interrompu), 0 désabonnés "
                      f"depuis, sur {len(should) + len(blocked)}.")
    french = next(m for m in emulator.sent if m.chat_id == 10_001)
    assert french.text == "Bonjour C1 : <b>-15 %</b> cette semaine" and french.params["parse_mode"] == "HTML"
    assert french.button_titles == ["Se désabonner"]
