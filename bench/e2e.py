"""End-to-end answers and running cost. Simulated Telegram clients (10, 50 and 200 at once) send
realistic messages through the Bot API emulator, the bot (its own process), Rasa, the action
server and the CRM (SQLite); the time from each message to its reply is measured. Baseline in
the same run: the same messages sent straight to Rasa's REST webhook, at the same concurrency.
Both paths are warmed up first, then each load runs ROUNDS times through each, alternating, so
that neither meets Rasa cold or a slow moment of the machine alone. Also measured: the CPU each
process spends a message through the bot, how long each takes from start to ready, and its
resident memory after the load (from /proc)."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx

from bot.emulator import BotApiEmulator, User
from bot.rasa_model import train_if_needed
from bot.services import Services
from bot.settings import Settings
from crm.settings import ROOT

TOKEN = "123456789:bench-token-for-the-bot-api-emulator"
# Each has one answer, as a client would write them.
MESSAGES = [
    "bonjour", "avez-vous des imprimantes ?", "quels sont vos délais de livraison ?", "où en est ma commande ?",
    "merci beaucoup", "hello", "do you have laptops?", "how can I pay?", "combien coûte la souris MX Master ?",
    "quelles sont vos conditions de retour ?",
]
REPLY_TIMEOUT = 60.0
ROUNDS = 2  # rounds of each load through each path, alternating
WARM_UP = (10, 2)  # clients, messages each: through both paths before the loads (not counted)


def rasa_http(token: str, connections: int) -> httpx.AsyncClient:
    """A client of Rasa's REST channel as the bot is one: the token it asks of every call, and a
    new connection for each message (bot/rasa_client.py). Rasa's workers share one listening
    socket and keep a connection with the worker that accepted it: on kept-open connections some
    clients' messages queue behind one busy worker while others have one to themselves, which
    lowered the baseline's median and raised its p95 (2 workers, 60 clients: 2,446 / 5,403 ms,
    the bots 3,167 / 3,806 at 98 % of its messages a second)."""
    return httpx.AsyncClient(timeout=REPLY_TIMEOUT, headers={"Authorization": f"Bearer {token}"},
                             limits=httpx.Limits(max_connections=connections, max_keepalive_connections=0))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (Rasa forks none; the action server neither)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """CPU time so far of each process group (name: its leader's pid; Rasa's forked workers count
    with Rasa), by kind (a name's trailing digits dropped), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = defaultdict(float)
    kinds = {pid: name.rstrip("0123456789") for name, pid in groups.items()}
    for _, _, fields in processes():
        kind = kinds.get(int(fields[2]))
        if kind is not None:
            found[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(found)


def processes() -> Iterator[tuple[int, str, list[str]]]:
    """Each process of the machine: its pid, its name, and the fields of /proc/<pid>/stat after
    the name (state first: the process group is fields[2])."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, tail = (entry / "stat").read_text().rpartition(")")
        except OSError:  # gone meanwhile
            continue
        yield int(entry.name), head.partition("(")[2], tail.split()


def combined(parts: list[tuple[list[float], int, float]]) -> dict:
    """One summary of several rounds of (latencies, messages sent, seconds)."""
    return summary([x for latencies, _, _ in parts for x in latencies], sum(p[1] for p in parts),
                   sum(p[2] for p in parts))


def summary(latencies: list[float], expected: int, seconds: float) -> dict:
    return {"messages": expected, "answered": len(latencies), "lost": expected - len(latencies),
            "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p95_ms": percentile(latencies, 0.95) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
            "messages_per_s": len(latencies) / seconds if seconds else 0.0}


class Replies:
    """Wakes the simulated client when the bot's reply to it reaches the emulator."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.waiting: dict[int, asyncio.Future] = {}
        self.lock = threading.Lock()

    def expect(self, chat_id: int) -> asyncio.Future:
        future = self.loop.create_future()
        with self.lock:
            self.waiting[chat_id] = future
        return future

    def __call__(self, sent) -> None:  # called in the emulator's threads
        with self.lock:
            future = self.waiting.pop(sent.chat_id, None)
        if future is not None:
            self.loop.call_soon_threadsafe(lambda: future.done() or future.set_result(time.perf_counter()))


async def through_telegram(emulator: BotApiEmulator, clients: int, per_client: int,
                           first_id: int) -> tuple[list[float], int, float]:
    replies = Replies(asyncio.get_running_loop())
    emulator.listeners.append(replies)
    latencies: list[float] = []

    async def client(number: int) -> None:
        user = User(id=first_id + number, first_name=f"Bench{number}", language_code="fr")
        for i in range(per_client):
            text = MESSAGES[(number + i) % len(MESSAGES)]
            future = replies.expect(user.id)
            started = time.perf_counter()
            emulator.user_says(user, text)
            try:
                latencies.append(await asyncio.wait_for(future, REPLY_TIMEOUT) - started)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.2)  # a second answer (rare) lands before the next question

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    emulator.listeners.remove(replies)
    return latencies, clients * per_client, time.perf_counter() - started - 0.2 * per_client


async def straight_to_rasa(settings: Settings, clients: int, per_client: int,
                           first_id: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    url = f"{settings.rasa_url}/webhooks/rest/webhook"
    async with rasa_http(settings.rasa_token, clients) as http:
        async def client(number: int) -> None:
            sender = str(first_id + number)
            for i in range(per_client):
                text = MESSAGES[(number + i) % len(MESSAGES)]
                started = time.perf_counter()
                try:
                    response = await http.post(url, json={"sender": sender, "message": text,
                                                          "metadata": {"language": "fr", "first_name": "Bench"}})
                    if response.status_code == 200 and response.json():
                        latencies.append(time.perf_counter() - started)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, clients * per_client, time.perf_counter() - started - 0.2 * per_client


def start_bot(settings: Settings, emulator: BotApiEmulator, env: dict, log: Path) -> tuple[subprocess.Popen, float]:
    """The bot in its own process, polling the emulator; ready when it first asks for updates."""
    calls_before = len(emulator.calls)
    started = time.perf_counter()
    process = subprocess.Popen(  # a process group of its own, as the services' (cpu_seconds)
        [sys.executable, "-m", "bench.run_bot"], cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**env, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_BASE_URL": emulator.base_url,
             "DATABASE_URL": settings.database_url, "RASA_URL": settings.rasa_url, "RASA_TOKEN": settings.rasa_token,
             "RASA_TIMEOUT": "60"})
    while not any(method == "getUpdates" for method, _ in emulator.calls[calls_before:]):
        if process.poll() is not None or time.perf_counter() - started > 120:
            raise RuntimeError(f"the bot did not start; see {log}")
        time.sleep(0.05)
    return process, time.perf_counter() - started


def run(concurrency: tuple[int, ...] = (10, 50, 200), per_client: int = 3) -> dict:
    from bot.cli import prepare_database

    model = train_if_needed()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        database_url = f"sqlite:///{tmp / 'crm.db'}"
        prepare_database(database_url)
        rasa_port, action_port = free_port(), free_port()
        settings = Settings(
            telegram_token=TOKEN, telegram_base_url="http://127.0.0.1:1/bot", database_url=database_url,
            rasa_url=f"http://127.0.0.1:{rasa_port}", rasa_port=rasa_port, action_port=action_port,
            action_url=f"http://127.0.0.1:{action_port}", rasa_token="bench-token-for-rasa-01234",
            action_token="bench-token-for-actions-0123", rasa_timeout=60.0, webhook_url=None, webhook_secret=None, webhook_listen="127.0.0.1", webhook_port=8443)
        env = {**os.environ, "RASA_TRACKER_DB": str(tmp / "tracker.db"), "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
        services = Services(settings, model, env=env, log_dir=tmp / "logs")
        emulator = BotApiEmulator().start()
        bot = None
        ready: dict[str, float] = {}
        try:
            for name in ("actions", "rasa"):
                started = time.perf_counter()
                getattr(services, f"start_{name}")()
                services.wait_ready(300)
                ready[name] = time.perf_counter() - started
            bot, ready["bot"] = start_bot(settings, emulator, env, tmp / "logs" / "bot.log")
            ids = itertools.count(5_000_000, 10_000)
            groups = {**{name: process.pid for name, process in services.processes.items()}, "bot": bot.pid}
            asyncio.run(through_telegram(emulator, *WARM_UP, next(ids)))
            asyncio.run(straight_to_rasa(settings, *WARM_UP, next(ids)))
            rows = []
            for clients in concurrency:
                ours_parts, base_parts, spent = [], [], defaultdict(float)
                for _ in range(ROUNDS):
                    before, mine = cpu_seconds(groups), os.times()
                    ours_parts.append(asyncio.run(through_telegram(emulator, clients, per_client, next(ids))))
                    after, mine_after = cpu_seconds(groups), os.times()
                    for name in after:
                        spent[name] += after[name] - before.get(name, 0.0)
                    spent["bench process (emulator, clients)"] += \
                        (mine_after.user + mine_after.system) - (mine.user + mine.system)
                    base_parts.append(asyncio.run(straight_to_rasa(settings, clients, per_client, next(ids))))
                ours, base = combined(ours_parts), combined(base_parts)
                rows.append({"clients": clients, "rounds": ROUNDS, "ours": ours, "rasa_only": base,
                             "cpu_ms_per_message": {name: seconds * 1000 / max(1, ours["answered"])
                                                    for name, seconds in spent.items()},
                             "ratio_median": ours["median_ms"] / base["median_ms"] if base["median_ms"] else None})
            memory = {"rasa": rss_mb(services.processes["rasa"].pid),
                      "actions": rss_mb(services.processes["actions"].pid), "bot": rss_mb(bot.pid)}
        finally:
            if bot is not None:
                bot.terminate()
                try:
                    bot.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    bot.kill()
            services.stop()
            emulator.stop()
    return {"benchmark": "e2e", "per_client": per_client, "rows": rows, "ready_s": ready, "rss_mb": memory}
