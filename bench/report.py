"""The managers' report on generated CRMs (1,000 and 100,000 clients, 10 messages each over two
months, and orders, complaints, handoffs, leads, meetings, consents and a broadcast in
proportion): the time to build November's report (every section, with October beside it), and
to render it (text, charts, PDF), against one plain COUNT(*) over the messages table measured in
the same run. On SQLite, and on PostgreSQL when it is reachable (DATABASE_URL_PG or the project's
127.0.0.1:5432 database `test`, in a schema of its own dropped afterwards)."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text

from bot import report_render
from crm import periods, reports
from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade
from crm.models import (
    Broadcast,
    BroadcastDelivery,
    Client,
    Complaint,
    Consent,
    ConversationMessage,
    Handoff,
    Lead,
    LeadEvent,
    Meeting,
    Order,
    OrderLine,
    Product,
    Staff,
)

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=61)  # October and November
NOVEMBER = date(2026, 11, 1)
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
CHUNK = 20_000
PHRASES = [f"je cherche le modèle {n} qui va avec le reste" for n in range(150)] + \
          ["c'est quoi le truc", "vous avez des trucs pour le bureau", "bonjour", "je veux un humain"]


def _at(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.random() * SPAN.total_seconds())


def _insert(session, model, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(model), rows[start:start + CHUNK])


def generate(engine, clients: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with unit_of_work(engine) as s:
        _insert(s, Staff, [{"id": i, "telegram_id": 9_000 + i, "name": f"Manager {i}", "role": "manager",
                            "language": "fr"} for i in range(1, 6)])
        _insert(s, Product, [{"id": i, "sku": f"P{i}", "name": f"Produit {i}", "category": "Bureau",
                              "price": Decimal(rng.randint(5, 500)), "stock": 100} for i in range(1, 51)])
        _insert(s, Client, [{"id": i, "telegram_id": 1_000_000 + i, "first_name": f"C{i}", "last_name": "",
                             "language": "fr", "first_seen": START - timedelta(days=30) + (SPAN + timedelta(days=30)) * rng.random(),
                             "last_seen": START + SPAN} for i in range(1, clients + 1)])
        messages = []
        for client in range(1, clients + 1):
            for n in range(10):
                inbound = n % 5 < 3
                messages.append({"client_id": client, "direction": "in" if inbound else "out",
                                 "text": rng.choice(PHRASES), "created_at": _at(rng),
                                 "understood": (rng.random() > 0.15) if inbound else None})
        _insert(s, ConversationMessage, messages)
        del messages
        orders, lines = [], []
        for i in range(1, clients * 3 // 10 + 1):
            orders.append({"id": i, "client_id": rng.randint(1, clients), "delivery_address": "1 rue",
                           "status": "cancelled" if rng.random() < 0.05 else "delivered",
                           "total": Decimal(0), "created_at": _at(rng)})
            for _ in range(rng.randint(1, 3)):
                lines.append({"order_id": i, "product_id": rng.randint(1, 50), "quantity": rng.randint(1, 4),
                              "unit_price": Decimal(20)})
        for order in orders:
            order["total"] = Decimal(60)
        _insert(s, Order, orders)
        _insert(s, OrderLine, lines)
        complaints = []
        for i in range(clients // 20):
            created = _at(rng)
            resolved = created + timedelta(hours=rng.randint(1, 96)) if rng.random() < 0.7 else None
            complaints.append({"client_id": rng.randint(1, clients), "category": rng.choice(("product", "delivery", "invoice")),
                               "severity": rng.choice(("normal", "high")), "description": "x", "created_at": created,
                               "resolved_at": resolved, "status": "resolved" if resolved else "open",
                               "satisfaction": rng.randint(1, 5) if resolved and rng.random() < 0.5 else None})
        _insert(s, Complaint, complaints)
        handoffs = []
        for client in rng.sample(range(1, clients + 1), clients // 10):
            opened = _at(rng)
            taken = opened + timedelta(minutes=rng.randint(1, 60)) if rng.random() < 0.9 else None
            handoffs.append({"client_id": client, "reason": rng.choice(("request", "fallback", "complaint", "lead")),
                             "status": "closed", "opened_at": opened, "queued_at": opened, "taken_at": taken,
                             "manager_id": rng.randint(1, 5) if taken else None,
                             "first_reply_at": taken + timedelta(minutes=2) if taken else None,
                             "closed_at": (taken or opened) + timedelta(minutes=rng.randint(5, 90)),
                             "closed_by": "manager" if taken else "expired",
                             "satisfaction": rng.randint(1, 5) if taken and rng.random() < 0.6 else None})
        _insert(s, Handoff, handoffs)
        leads, events = [], []
        for i in range(1, clients // 20 + 1):
            created = _at(rng)
            status = rng.choice(("new", "qualified", "hot", "won", "lost"))
            leads.append({"id": i, "client_id": rng.randint(1, clients), "status": status, "score": rng.randint(0, 100),
                          "created_at": created, "updated_at": created})
            events += [{"lead_id": i, "status": "new", "at": created},
                       {"lead_id": i, "status": status, "at": created + timedelta(days=rng.randint(0, 10))}]
        _insert(s, Lead, leads)
        _insert(s, LeadEvent, events)
        _insert(s, Meeting, [{"client_id": rng.randint(1, clients), "manager_id": rng.randint(1, 5),
                              "starts_at": START + SPAN, "ends_at": START + SPAN + timedelta(minutes=30),
                              "status": rng.choice(("booked", "booked", "cancelled")), "created_at": _at(rng)}
                             for _ in range(clients // 50)])
        _insert(s, Consent, [{"client_id": c, "granted": rng.random() < 0.8, "source": "command",
                              "created_at": START - timedelta(days=1)} for c in range(1, clients + 1)]
                + [{"client_id": c, "granted": False, "source": "button", "created_at": _at(rng)}
                   for c in rng.sample(range(1, clients + 1), clients // 20)])
        _insert(s, Broadcast, [{"id": 1, "text_fr": "Promo", "state": "done", "started_at": datetime(2026, 11, 10, 9, tzinfo=timezone.utc)}])
        _insert(s, BroadcastDelivery, [{"broadcast_id": 1, "client_id": c, "status": "sent",
                                        "sent_at": datetime(2026, 11, 10, 9, tzinfo=timezone.utc)}
                                       for c in range(1, clients + 1, 2)])


def _median_seconds(work, times: int) -> float:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        work()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def measure(engine, clients: int, database: str) -> dict:
    started = time.perf_counter()
    generate(engine, clients)
    generated = time.perf_counter() - started
    if database == "PostgreSQL":  # what autovacuum does on a live database: statistics, visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    period = periods.month_period(NOVEMBER)

    def count():
        with unit_of_work(engine) as s:
            s.scalar(select(func.count()).select_from(ConversationMessage))

    built: list = []

    def build():
        with unit_of_work(engine) as s:
            built.append(reports.build_report(s, period))

    count_s = _median_seconds(count, 5)
    build_s = _median_seconds(build, 3)
    report = built[-1]
    started = time.perf_counter()
    report_render.summary_text(report, "fr")
    report_render.charts(report, "fr")
    report_render.pdf_bytes(report, "fr")
    render_s = time.perf_counter() - started
    return {"clients": clients, "database": database, "messages": clients * 10, "generate_s": round(generated, 1),
            "count_ms": count_s * 1000, "report_ms": build_s * 1000, "render_ms": render_s * 1000,
            "ratio": build_s / count_s if count_s else None,
            "active_clients": report.figure("clients.active").value}


def _postgres():
    import uuid

    try:
        probe = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with probe.connect():
            pass
    except Exception:
        return None, None
    schema = f"bench_report_{uuid.uuid4().hex[:8]}"
    with probe.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return probe, schema


def run(sizes=(1_000, 100_000), postgres: bool = True) -> list[dict]:
    results = []
    for clients in sizes:
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'crm.db'}")
            upgrade(engine)
            results.append(measure(engine, clients, "SQLite"))
            engine.dispose()
        probe, schema = _postgres() if postgres else (None, None)
        if probe is None:
            continue
        try:
            engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
            upgrade(engine)
            results.append(measure(engine, clients, "PostgreSQL"))
            engine.dispose()
        finally:
            with probe.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            probe.dispose()
    return results
