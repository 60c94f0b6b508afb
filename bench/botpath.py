"""The bot's own cost per message: one `python -m bot serve` in webhook mode, on PostgreSQL and
Redis as in the replica layout, against an instant stand-in for Rasa (so that nothing but the
bot's path is measured), Telegram's pace lifted. The bot process's CPU is read from /proc.

Clients write through the emulator, each the next message once the answer came (closed loop),
at 1 and at 20 clients. The stand-in answers every message at once with the shape of the
assistant's answers: one message, with three buttons for a question (so the buttons are stored).
Baseline, in the same run: the same messages straight to the stand-in's REST webhook at the same
concurrency (its latency is what the bot adds to).

The stand-in is for this measurement only: `python -m bench.botpath --stand-in PORT` serves it.

Needs PostgreSQL and Redis (127.0.0.1); skipped with the reason otherwise."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.e2e import MESSAGES, REPLY_TIMEOUT
from bench.scale import PG_URL, REDIS_DB, closed_loop, fresh_schema, services_unavailable
from bot.emulator import BotApiEmulator

LOADS = ((1, 200), (20, 50))  # (clients, messages each)
WARM_UP = (10, 5)


def answer(sender: str, message: str) -> list[dict]:
    """What the stand-in answers: the assistant's shape, at no cost. One message an answer (as the
    assistant answers the bench's messages): a second one would be taken for the answer to the
    client's next message."""
    text = f"Bonjour ! Vous avez écrit : {message[:40]}"
    if "?" not in message:
        return [{"recipient_id": sender, "text": text}]
    return [{"recipient_id": sender, "text": f"{text}\nVoici ce que j'ai trouvé :\n- Imprimante laser : 129,90 €\n"
                                              "- Imprimante jet d'encre : 89,00 €",
             "buttons": [{"title": "Imprimante laser", "payload": "/product_details"},
                         {"title": "Jet d'encre", "payload": "/product_details"},
                         {"title": "Parler à un conseiller", "payload": "/human_handoff"}]}]


def serve_stand_in(port: int) -> None:
    import tornado.ioloop
    import tornado.web

    class Webhook(tornado.web.RequestHandler):
        def post(self):
            body = json.loads(self.request.body)
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(answer(str(body.get("sender")), str(body.get("message")))))

    class Health(tornado.web.RequestHandler):
        def get(self):
            self.write({"status": "ok"})

    application = tornado.web.Application([(r"/webhooks/rest/webhook", Webhook), (r"/health", Health)])
    application.listen(port, "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


def wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout:.0f} s")
        time.sleep(0.1)


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def straight(url: str, first_id: int, clients: int, each: int) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=REPLY_TIMEOUT) as http:
        async def client(number: int) -> None:
            for i in range(each):
                started = time.perf_counter()
                response = await http.post(f"{url}/webhooks/rest/webhook", json={
                    "sender": str(first_id + number), "message": MESSAGES[(number + i) % len(MESSAGES)]})
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def run() -> dict:
    from bot.cli import prepare_database
    from bot.layout import Layout, Shape
    from tests.harness import always_open_profile, free_block, make_settings, production_stores

    reason = services_unavailable()
    if reason:
        return {"benchmark": "botpath", "skipped": reason}
    admin = create_engine(PG_URL)
    schema, database_url = fresh_schema(admin, "bench_botpath")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        bot_port, rasa_port = free_block(1), free_block(0)
        rasa_url = f"http://127.0.0.1:{rasa_port}"
        env = {**production_stores(admin.url, REDIS_DB), "COMPANY_PROFILE": str(always_open_profile(tmp))}
        emulator = BotApiEmulator().start()
        settings = make_settings(database_url, rasa_url, rasa_port=rasa_port, action_url=rasa_url,
                                 telegram_base_url=emulator.base_url, webhook_port=bot_port,
                                 redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}", rasa_db_host=env["RASA_DB_HOST"],
                                 telegram_rate=1000.0)  # the most TELEGRAM_RATE allows: Telegram's pace lifted
        # The bot is called straight (no haproxy): bot 1 listens on WEBHOOK_PORT + 1.
        layout = Layout(settings, Path("unused"), Shape(bots=1, rasa_workers=1, action_servers=1), env=env,
                        log_dir=tmp / "logs", webhook_url=f"http://127.0.0.1:{bot_port + 1}/telegram")
        stand_in = None
        try:
            prepare_database(database_url, demo=True)
            stand_in = subprocess.Popen([sys.executable, "-m", "bench.botpath", "--stand-in", str(rasa_port)],
                                        stdout=subprocess.DEVNULL)
            wait_for(f"{rasa_url}/health")
            layout.start_bot(1)
            layout.wait_bots(60)
            pid = layout.services.processes["bot1"].pid
            ids = itertools.count(8_000_000, 10_000)
            asyncio.run(closed_loop(emulator, next(ids), *WARM_UP))
            for clients, each in LOADS:
                before = cpu_of(pid)
                (latencies, _, seconds), check = asyncio.run(closed_loop(emulator, next(ids), clients, each))
                spent = cpu_of(pid) - before
                raw = asyncio.run(straight(rasa_url, next(ids), clients, each))
                messages = clients * each
                rows.append({"clients": clients, "messages": messages, "answered": len(latencies),
                             "doubled": check["doubled"],
                             "bot_cpu_ms_per_message": spent * 1000 / max(1, len(latencies)),
                             "messages_per_s": len(latencies) / seconds,
                             "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
                             "straight_median_ms": statistics.median(raw) * 1000 if raw else float("nan")})
        finally:
            layout.stop()
            if stand_in is not None:
                stand_in.terminate()
                stand_in.wait()
            emulator.stop()
    with admin.begin() as conn:
        conn.execute(text(f'drop schema "{schema}" cascade'))
    admin.dispose()
    return {"benchmark": "botpath", "rows": rows}


if __name__ == "__main__" and sys.argv[1:2] == ["--stand-in"]:
    serve_stand_in(int(sys.argv[2]))
