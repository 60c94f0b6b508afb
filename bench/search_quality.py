"""Product search quality on a catalogue nobody trained or tuned on (bench/catalogue/office.csv,
60 office-supply products, and 80 client questions about it): how often the product a question
names comes first in the assistant's answer, and how often a question about a product the company
does not sell gets an honest "we do not sell that" instead of an unrelated product.

The answer is decided as the catalogue action decides it (crm.catalog.search_products): the first
product shown, or none.

The demo catalogue's development questions (tests/catalogue/demo_questions.yml: English words,
paraphrases, products not sold), on which the search-by-meaning thresholds were chosen, are
measured the same way, with and without search by meaning."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from crm import meaning
from crm.catalog import _index_cache, import_catalog, search_products
from crm.db import make_engine, unit_of_work
from crm.migrate import upgrade

FOLDER = Path(__file__).resolve().parent / "catalogue"
ROOT = Path(__file__).resolve().parent.parent
DEV_CATALOGUE = ROOT / "crm" / "demo_catalog.csv"
DEV_QUESTIONS = ROOT / "tests" / "catalogue" / "demo_questions.yml"


def questions(path: Path = FOLDER / "office_questions.yml") -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["questions"]


@contextmanager
def without_meaning():
    saved = meaning.encode, meaning.passage_vectors
    meaning.encode = meaning.passage_vectors = lambda texts: None
    _index_cache.clear()
    try:
        yield
    finally:
        meaning.encode, meaning.passage_vectors = saved
        _index_cache.clear()


def judge(first_sku: str | None, expect) -> bool:
    if expect == "not_sold":
        return first_sku is None
    return first_sku in expect


def run(catalogue: Path = FOLDER / "office.csv", strict: bool = True,
        questions_file: Path = FOLDER / "office_questions.yml", by_meaning: bool = True) -> dict:
    """strict=False is the baseline: every product matching some word of the question, best first
    (the search before it looked for the thing asked for). by_meaning=False: words alone."""
    if not by_meaning:
        with without_meaning():
            return run(catalogue, strict, questions_file)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'quality.db'}")
        upgrade(engine)
        with unit_of_work(engine) as session:
            import_catalog(session, catalogue)
        rows = []
        with unit_of_work(engine) as session:
            for q in questions(questions_file):
                started = time.perf_counter()
                result = search_products(session, q["text"], strict=strict)
                ms = (time.perf_counter() - started) * 1000
                first = result.products[0].sku if result.products else None
                rows.append({"text": q["text"], "expect": q["expect"], "first": first, "shown": result.total,
                             "right": judge(first, q["expect"]), "ms": round(ms, 2)})
        engine.dispose()
    named = [r for r in rows if r["expect"] != "not_sold"]
    absent = [r for r in rows if r["expect"] == "not_sold"]
    return {
        "catalogue": catalogue.name, "questions": len(rows), "strict": strict,
        "named_first": round(sum(r["right"] for r in named) / len(named), 3), "named": len(named),
        "honest_not_sold": round(sum(r["right"] for r in absent) / len(absent), 3), "not_sold": len(absent),
        "wrong": [r for r in rows if not r["right"]],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, ensure_ascii=False))
