"""Product search on generated catalogues: how long a misspelled product name takes to find, and
how that grows with the catalogue, against a baseline measured in the same run (a plain SQL
substring match, which finds nothing when the name is misspelled).

Every product gets its sentence vector as an import would store it (crm/meaning.py), so each
search includes encoding the question and comparing it with every product by meaning; the time
to encode the catalogue and the memory its vectors take are reported too."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert, select

from crm import meaning
from crm.catalog import search_products
from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade
from crm.models import Product

BRANDS = ["Dell", "Lenovo", "HP", "Brother", "Canon", "Epson", "Logitech", "Samsung", "LG", "Asus",
          "Acer", "Fellowes", "Leitz", "Rapid", "Kensington", "Synology", "Jabra", "Xerox", "Iiyama"]
KINDS = [("Imprimante laser", "Imprimantes"), ("Écran", "Écrans"), ("Ordinateur portable", "Ordinateurs portables"),
         ("Clavier sans fil", "Périphériques"), ("Souris ergonomique", "Périphériques"),
         ("Chaise de bureau", "Mobilier de bureau"), ("Toner", "Consommables"), ("Classeur", "Fournitures de bureau"),
         ("Disque dur externe", "Réseau et stockage"), ("Casque audio", "Périphériques")]


def catalogue(size: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(size):
        kind, category = rng.choice(KINDS)
        brand = rng.choice(BRANDS)
        model = f"{rng.choice('ABCDEFGHKLMPRSTX')}{rng.randint(100, 9999)}"
        rows.append({"sku": f"GEN-{i:06d}", "name": f"{kind} {brand} {model}", "category": category,
                     "description": f"{kind} {brand}, modèle {model}.", "price": Decimal(rng.randint(5, 2000)),
                     "currency": "EUR", "stock": rng.randint(0, 50), "warranty_months": 24, "active": True})
    return rows


def embed(rows: list[dict]) -> bool:
    """The vectors import_catalog would store (crm.catalog.embed_products); False without an encoder."""
    texts = [meaning.passage(r["name"], r["category"], None, r["description"]) for r in rows]
    vectors = meaning.encode(texts)
    if vectors is None:
        return False
    for row, text, vector in zip(rows, texts, vectors):
        row["embedding"], row["embedding_key"] = meaning.pack(vector), meaning.fingerprint(text)
    return True


def misspell(name: str, rng: random.Random) -> str:
    """Drop accents and swap two letters of the longest word, as a hurried client would."""
    words = name.replace("É", "E").replace("é", "e").lower().split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    w = words[longest]
    i = rng.randint(1, len(w) - 3)
    words[longest] = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return " ".join(words)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def run(sizes=(1_000, 10_000), queries: int = 40, seed: int = 7) -> list[dict]:
    results = []
    for size in sizes:
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
            upgrade(engine)
            rows = catalogue(size, rng)
            start = time.perf_counter()
            encoded = embed(rows)
            encode_ms = (time.perf_counter() - start) * 1000 / size if encoded else None
            with unit_of_work(engine) as session:
                session.execute(insert(Product), rows)
            targets = rng.sample(rows, queries)
            ours, baseline, found = [], [], 0
            with unit_of_work(engine) as session:
                search_products(session, "warm-up")  # builds the index once, as a server would
                for row in targets:
                    query = misspell(row["name"], rng)
                    start = time.perf_counter()
                    result = search_products(session, query)
                    ours.append(time.perf_counter() - start)
                    found += row["sku"] in {p.sku for p in result.products}
                    start = time.perf_counter()
                    session.scalars(select(Product).where(func.lower(Product.name).like(f"%{query}%")).limit(8)).all()
                    baseline.append(time.perf_counter() - start)
            engine.dispose()
        results.append({
            "benchmark": "search", "catalogue": size, "queries": queries,
            "median_ms": statistics.median(ours) * 1000, "p95_ms": percentile(ours, 0.95) * 1000,
            "baseline_median_ms": statistics.median(baseline) * 1000,
            "ratio_to_baseline": statistics.median(ours) / statistics.median(baseline),
            "found_in_top8": found / queries,
            "encode_ms_per_product": encode_ms,
            "vectors_mb": size * meaning.DIMENSIONS * 4 / 2**20 if encoded else None,
        })
    return results
