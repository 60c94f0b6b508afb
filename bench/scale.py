"""Scale: the replica layout (bot/layout.py) with 1 and 2 Rasa workers and 1 and 2 bot processes,
on PostgreSQL and Redis, on this machine.

For each shape: a closed-loop load (CLIENTS clients, each writing PER_CLIENT messages, the next
once the answer came) through the emulator, haproxy and the bots; the same messages sent straight
to Rasa's REST webhook, at the same concurrency (the baseline, in the same run, on the same Rasa).
The two loads alternate, ROUNDS times each, so that a slow moment of the machine weighs on both.
Checked for every message: answered, once, and each client's messages recorded in the order
written. Then, on the largest shape, an open-loop load:
clients writing every 5 to 15 s (independent arrivals, near Poisson), at 25 %, 50 % and 90 % of
the capacity just measured, through the bots and, on the same schedule, straight to Rasa; the
latency at each is what clients feel in practice; ROUNDS rounds of each, alternating too. Last,
Rasa apart (pin_apart): 1 worker on a core of its own, everything else on the others, the closed
and the open loop again: what the bots cost Rasa's clients when they take none of Rasa's CPU.

Needs PostgreSQL, Redis (127.0.0.1) and haproxy; skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text

from bench.e2e import MESSAGES, REPLY_TIMEOUT, cpu_seconds, percentile, processes, rasa_http
from bot.emulator import BotApiEmulator, User

CLIENTS, PER_CLIENT = 60, 4
ROUNDS = 2  # closed-loop rounds of each load, alternating
# Not counted, through both paths: the first messages after the layout starts (connections and
# pools opened, Rasa's first inferences), which the first load would pay for alone.
WARM_UP = (10, 2)  # clients, messages each
SHAPES = ((1, 1), (2, 1), (1, 2), (2, 2))  # (Rasa workers, bot processes)
OPEN_LOOP = (0.25, 0.5, 0.9)
OPEN_SECONDS = 30.0
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_DB = os.environ.get("BENCH_REDIS_DB", "0")


def fresh_schema(admin, prefix: str) -> tuple[str, str]:
    """A PostgreSQL schema of its own for one run (dropped by the caller): its name, and the
    database URL whose connections use it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def unavailable() -> str | None:
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (make replicas-setup)"
    return services_unavailable()


def services_unavailable() -> str | None:
    """Why PostgreSQL or Redis cannot be used here, or None."""
    import redis

    try:
        with create_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except Exception as exc:  # reported, not raised: the other benchmarks go on
        return f"PostgreSQL or Redis unreachable on 127.0.0.1 ({type(exc).__name__})"
    return None


class Replies:
    """Each client's outstanding messages, oldest first: a reply answers the oldest (open loop:
    a client may write again before the answer came)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: dict[int, deque] = defaultdict(deque)
        self.counts: dict[int, int] = defaultdict(int)
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def sent(self, chat_id: int) -> asyncio.Future:
        future = self.loop.create_future()
        with self.lock:
            self.pending[chat_id].append((time.perf_counter(), future))
        return future

    def __call__(self, sent) -> None:  # the emulator's threads
        with self.lock:
            self.counts[sent.chat_id] += 1
            queue = self.pending.get(sent.chat_id)
            if not queue:
                return
            started, future = queue.popleft()
            self.latencies.append(time.perf_counter() - started)
        self.loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))


def combine(parts: list[tuple[list[float], int, float]]) -> dict:
    """One row from several rounds of (latencies, messages sent, seconds)."""
    return row([x for latencies, _, _ in parts for x in latencies], sum(p[1] for p in parts), sum(p[2] for p in parts))


def row(latencies: list[float], expected: int, seconds: float) -> dict:
    return {"messages": expected, "answered": len(latencies), "lost": expected - len(latencies),
            "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p95_ms": percentile(latencies, 0.95) * 1000, "messages_per_s": len(latencies) / seconds}


async def closed_loop(emulator: BotApiEmulator, first_id: int, clients: int = CLIENTS,
                      per_client: int = PER_CLIENT) -> tuple[tuple[list[float], int, float], dict]:
    replies = Replies(asyncio.get_running_loop())
    emulator.listeners.append(replies)
    written: dict[int, list[str]] = {}

    async def client(number: int) -> None:
        user = User(id=first_id + number, first_name=f"Scale{number}", language_code="fr")
        written[user.id] = []
        for i in range(per_client):
            said = MESSAGES[(number + i) % len(MESSAGES)]
            written[user.id].append(said)
            future = replies.sent(user.id)
            emulator.user_says(user, said)
            try:
                await asyncio.wait_for(future, REPLY_TIMEOUT)
            except asyncio.TimeoutError:
                pass

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)  # a doubled answer lands now
    emulator.listeners.remove(replies)
    doubled = sum(max(0, replies.counts[chat] - len(said)) for chat, said in written.items())
    return (replies.latencies, clients * per_client, seconds), {"written": written, "doubled": doubled}


async def straight_to_rasa(rasa_url: str, token: str, first_id: int, clients: int = CLIENTS,
                           per_client: int = PER_CLIENT) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    async with rasa_http(token, clients) as http:
        async def client(number: int) -> None:
            for i in range(per_client):
                await rasa_message(http, rasa_url, first_id + number, MESSAGES[(number + i) % len(MESSAGES)], latencies)

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, clients * per_client, time.perf_counter() - started


async def rasa_message(http: httpx.AsyncClient, rasa_url: str, sender: int, said: str, latencies: list[float]) -> None:
    started = time.perf_counter()
    try:
        response = await http.post(f"{rasa_url}/webhooks/rest/webhook", json={
            "sender": str(sender), "message": said, "metadata": {"language": "fr", "first_name": "Scale"}})
        if response.status_code == 200 and response.json():
            latencies.append(time.perf_counter() - started)
    except httpx.HTTPError:
        pass


async def open_loop(emulator: BotApiEmulator, rate: float, first_id: int,
                    seed: int) -> tuple[list[float], int, float]:
    """Clients writing every 5-15 s (10 s on average), as many as make `rate` messages a second."""
    replies = Replies(asyncio.get_running_loop())
    emulator.listeners.append(replies)
    clients = max(1, round(rate * 10))
    sent = 0
    deadline = time.perf_counter() + OPEN_SECONDS
    rng = random.Random(seed)

    async def client(number: int) -> None:
        nonlocal sent
        user = User(id=first_id + number, first_name=f"Open{number}", language_code="fr")
        await asyncio.sleep(rng.uniform(0, 10))
        i = 0
        while time.perf_counter() < deadline:
            replies.sent(user.id)
            emulator.user_says(user, MESSAGES[(number + i) % len(MESSAGES)])
            sent += 1
            i += 1
            await asyncio.sleep(rng.uniform(5, 15))

    await asyncio.gather(*(client(n) for n in range(clients)))
    waited = time.perf_counter() + REPLY_TIMEOUT
    while len(replies.latencies) < sent and time.perf_counter() < waited:
        await asyncio.sleep(0.2)
    emulator.listeners.remove(replies)
    return replies.latencies, sent, OPEN_SECONDS


async def open_loop_rasa(rasa_url: str, token: str, rate: float, first_id: int,
                         seed: int) -> tuple[list[float], int, float]:
    """The same schedule as open_loop (same seed), straight to Rasa's REST webhook."""
    latencies: list[float] = []
    clients = max(1, round(rate * 10))
    deadline = time.perf_counter() + OPEN_SECONDS
    rng = random.Random(seed)
    asked: list[asyncio.Task] = []
    async with rasa_http(token, clients + 10) as http:
        async def client(number: int) -> None:
            await asyncio.sleep(rng.uniform(0, 10))
            i = 0
            while time.perf_counter() < deadline:
                asked.append(asyncio.create_task(rasa_message(
                    http, rasa_url, first_id + number, MESSAGES[(number + i) % len(MESSAGES)], latencies)))
                i += 1
                await asyncio.sleep(rng.uniform(5, 15))

        await asyncio.gather(*(client(n) for n in range(clients)))
        await asyncio.gather(*asked)
    return latencies, len(asked), OPEN_SECONDS


def in_order(engine, written: dict[int, list[str]]) -> bool:
    """Each client's messages recorded once, in the order written."""
    from crm.db import unit_of_work
    from crm.models import Client, ConversationMessage

    found: dict[int, list[str]] = defaultdict(list)
    with unit_of_work(engine) as s:
        for telegram_id, said in s.execute(
                select(Client.telegram_id, ConversationMessage.text).join(Client)
                .where(ConversationMessage.direction == "in", Client.telegram_id.in_(list(written)))
                .order_by(ConversationMessage.id)):
            found[telegram_id].append(said)
    return all(found[chat] == said for chat, said in written.items())


def run() -> dict:
    from bot.rasa_model import train_if_needed

    reason = unavailable()
    if reason:
        return {"benchmark": "scale", "skipped": reason}
    model = train_if_needed()
    ids = itertools.count(7_000_000, 10_000)
    rows, open_rows = [], []
    admin = create_engine(PG_URL)
    for workers, bots in SHAPES:
        found, opened = measure(admin, model, ids, workers, bots, with_open_loop=(workers, bots) == SHAPES[-1])
        rows.append(found)
        open_rows += opened
    apart = pinning_unavailable()
    if apart is None:
        found, opened = measure(admin, model, ids, 1, 1, with_open_loop=True, apart=True)
        rows.append(found)
        open_rows += opened
    admin.dispose()
    by_shape = {(r["rasa_workers"], r["bots"]): r for r in rows if not r["apart"]}
    one, two = by_shape.get((1, 1)), by_shape.get((2, 1))
    ratio = two["ours"]["messages_per_s"] / one["ours"]["messages_per_s"] if one and two else None
    raw_ratio = two["rasa_only"]["messages_per_s"] / one["rasa_only"]["messages_per_s"] if one and two else None
    return {"benchmark": "scale", "clients": CLIENTS, "per_client": PER_CLIENT, "rows": rows, "open_loop": open_rows,
            "apart_skipped": apart, "workers_2_over_1": ratio, "workers_2_over_1_rasa_only": raw_ratio}


def measure(admin, model, ids, workers: int, bots: int, with_open_loop: bool = False,
            apart: bool = False) -> tuple[dict, list[dict]]:
    """One shape: its closed-loop row, and its open-loop rows when asked. `apart`: Rasa on a core
    of its own, everything else on the other (pin_apart)."""
    from bot.cli import prepare_database
    from bot.layout import Layout, Shape
    from crm.db import engine_for
    from tests.harness import always_open_profile, free_block, make_settings, production_stores

    schema, database_url = fresh_schema(admin, "bench_scale")
    open_rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        emulator = BotApiEmulator().start()
        url = admin.url
        env = {**production_stores(url, REDIS_DB), "COMPANY_PROFILE": str(always_open_profile(tmp)),
               "RASA_TIMEOUT": "60"}
        webhook_port, action_port, rasa_port = free_block(bots), free_block(2), free_block(0)
        settings = make_settings(database_url, f"http://127.0.0.1:{rasa_port}", rasa_port=rasa_port,
                                 action_port=action_port, action_url=f"http://127.0.0.1:{action_port}",
                                 rasa_timeout=60.0, telegram_base_url=emulator.base_url, webhook_port=webhook_port,
                                 redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}", rasa_db_host=env["RASA_DB_HOST"])
        prepare_database(database_url, demo=True)
        layout = Layout(settings, model, Shape(bots=bots, rasa_workers=workers, action_servers=2), env=env,
                        log_dir=tmp / "logs")
        undo = None
        try:
            layout.start()
            if apart:
                undo = pin_apart(layout)
            asyncio.run(closed_loop(emulator, next(ids), *WARM_UP))
            asyncio.run(straight_to_rasa(settings.rasa_url, settings.rasa_token, next(ids), *WARM_UP))
            spent: dict[str, float] = defaultdict(float)
            groups = {name: process.pid for name, process in layout.services.processes.items()}
            ours_parts, raw_parts, written, doubled = [], [], {}, 0
            for _ in range(ROUNDS):
                before, mine = cpu_seconds(groups), os.times()
                part, check = asyncio.run(closed_loop(emulator, next(ids)))
                after, mine_after = cpu_seconds(groups), os.times()
                for name in after:
                    spent[name] += after[name] - before.get(name, 0.0)
                spent["bench process (emulator, clients)"] += \
                    (mine_after.user + mine_after.system) - (mine.user + mine.system)
                ours_parts.append(part)
                written.update(check["written"])
                doubled += check["doubled"]
                raw_parts.append(asyncio.run(straight_to_rasa(settings.rasa_url, settings.rasa_token, next(ids))))
            ours, raw = combine(ours_parts), combine(raw_parts)
            answered = max(1, ours["answered"])
            found = {"rasa_workers": workers, "bots": bots, "apart": apart, "ours": ours, "rasa_only": raw,
                     "doubled": doubled, "cpu_ms_per_message": {name: seconds * 1000 / answered
                                                                for name, seconds in spent.items()},
                     "in_order": in_order(engine_for(database_url), written),
                     "overhead_median": ours["median_ms"] / raw["median_ms"] - 1 if raw["median_ms"] else None}
            if with_open_loop:
                capacity = ours["messages_per_s"]
                for share in OPEN_LOOP:
                    rate, ours_parts, raw_parts = share * capacity, [], []
                    for _ in range(ROUNDS):  # alternating, each pair on the same schedule
                        seed = next(ids)
                        ours_parts.append(asyncio.run(open_loop(emulator, rate, next(ids), seed)))
                        raw_parts.append(asyncio.run(open_loop_rasa(
                            settings.rasa_url, settings.rasa_token, rate, next(ids), seed)))
                    open_rows.append({**combine(ours_parts), "rasa_only": combine(raw_parts), "share": share,
                                      "clients": max(1, round(rate * 10)), "offered_per_s": rate,
                                      "rasa_workers": workers, "bots": bots, "apart": apart})
        finally:
            if undo is not None:
                undo()
            layout.stop()
            emulator.stop()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    return found, open_rows


# Rasa apart: what the layout on several hosts gives Rasa (the cores of its own hosts), on one
# machine. Rasa's process on one core; on the other the bots, haproxy, the action servers,
# PostgreSQL, Redis and the bench itself. Both loads (through the bots, straight to Rasa) run on
# that arrangement; the bots then add their milliseconds to each message, not their CPU to Rasa's.
SHARED_SERVICES = ("postgres", "redis-server")


def pinning_unavailable() -> str | None:
    """Why Rasa cannot be given a core apart here, or None."""
    if not hasattr(os, "sched_setaffinity"):
        return "this system cannot pin processes to cores"
    if len(os.sched_getaffinity(0)) < 2:
        return "one core only"
    return None


def pin_apart(layout) -> Callable[[], None]:
    """Pin Rasa (its process group, every thread) to the first core this process may use, and the
    rest of the path (the layout's other processes, PostgreSQL's and Redis's, this process) to the
    others. Returns what puts every one of them back on all the cores (PostgreSQL's backends
    started meanwhile included: they inherit the postmaster's cores)."""
    cores = sorted(os.sched_getaffinity(0))
    rasa_core, others = {cores[0]}, set(cores[1:])
    groups = {name.rstrip("0123456789"): process.pid for name, process in layout.services.processes.items()}
    rasa_group = groups.pop("rasa")

    def concerned() -> dict[int, str]:
        found = {}
        for pid, name, fields in processes():
            pgid = int(fields[2])
            if pgid == rasa_group:
                found[pid] = "rasa"
            elif pgid in groups.values() or name in SHARED_SERVICES or pid == os.getpid():
                found[pid] = "other"
        return found

    def pin(pid: int, where: set[int]) -> None:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                os.sched_setaffinity(int(task.name), where)
        except (OSError, ValueError):  # gone meanwhile, or not ours to pin: left where it is
            pass

    for pid, role in concerned().items():
        pin(pid, rasa_core if role == "rasa" else others)

    def undo() -> None:
        for pid in concerned():
            pin(pid, set(cores))

    return undo
