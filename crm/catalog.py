"""The assortment: search tolerant of typos, accents, plurals and English words; CSV import.

Search runs on the CRM, not on the trained model, so products added after training are found.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import threading
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.models import Product
from crm.text import fold, query_words, typo_budget, within_edits, words

CSV_HEADER = ["sku", "name", "category", "description", "price", "stock"]
MAX_RESULTS = 8

# How much a matching word counts, by where it is found.
FIELD_WEIGHTS = {"sku": 4.0, "name": 3.0, "category": 2.5, "description": 1.0}
MATCH_QUALITY = {"exact": 1.0, "prefix": 0.8, "typo": 0.7}
# A name, model, category or reference word matched (a typo in a name still counts); a word
# found only in descriptions does not, so it never picks a product alone.
STRONG_MATCH = 2.0


@dataclass
class SearchResult:
    products: list[Product]
    total: int = 0
    category: str | None = None  # set when the question named a whole category
    understood: list[str] = field(default_factory=list)  # the query words that matched something
    score: float = 0.0  # the best product's score: below STRONG_MATCH only weak words matched

    @property
    def strong(self) -> bool:
        return self.score >= STRONG_MATCH


class SearchIndex:
    """Words of the active catalogue -> products, rebuilt when the catalogue changes."""

    def __init__(self, products: list[Product]):
        self.postings: dict[str, dict[int, float]] = defaultdict(dict)
        self.categories: dict[int, str] = {}
        for p in products:
            self.categories[p.id] = p.category
            fields = {
                "sku": [fold(p.sku)],
                "name": words(p.name),
                "category": words(p.category),
                "description": words(p.description),
            }
            for name, field_words in fields.items():
                weight = FIELD_WEIGHTS[name]
                for w in field_words:
                    if weight > self.postings[w].get(p.id, 0.0):
                        self.postings[w][p.id] = weight
        self.category_words = {w for c in set(self.categories.values()) for w in words(c)}
        self._sorted = sorted(self.postings)  # prefixes by bisection
        # Bigrams of "^word$" -> words: a word within k edits of another shares all but 3k of its
        # bigrams with it, so only words sharing enough bigrams are compared letter by letter.
        self._bigrams: dict[str, list[str]] = defaultdict(list)
        for w in self._sorted:
            for gram in set(_bigrams(w)):
                self._bigrams[gram].append(w)

    def matches(self, word: str) -> list[tuple[str, float]]:
        """Vocabulary words a query word may mean, with the quality of each match."""
        if word in self.postings:
            return [(word, MATCH_QUALITY["exact"])]
        found: list[tuple[str, float]] = []
        if len(word) >= 4:
            start = bisect_left(self._sorted, word)
            for w in itertools.islice(self._sorted, start, None):
                if not w.startswith(word):
                    break
                if len(w) <= len(word) + 11:
                    found.append((w, MATCH_QUALITY["prefix"]))
        budget = typo_budget(word)
        if not found and budget:
            grams = set(_bigrams(word))
            shared = Counter(itertools.chain.from_iterable(self._bigrams.get(g, ()) for g in grams))
            least = len(grams) - 3 * budget
            found = [(w, MATCH_QUALITY["typo"]) for w, n in shared.items()
                     if n >= least and abs(len(w) - len(word)) <= budget and within_edits(word, w, budget)]
        return found

    def search(self, text: str) -> tuple[list[tuple[int, float]], list[str], bool]:
        scores: dict[int, float] = defaultdict(float)
        understood, named_category = [], False
        for word in query_words(text):
            best: dict[int, float] = {}
            for vocab_word, quality in self.matches(word):
                named_category |= vocab_word in self.category_words
                for product_id, weight in self.postings[vocab_word].items():
                    best[product_id] = max(best.get(product_id, 0.0), weight * quality)
            if best:
                understood.append(word)
            for product_id, score in best.items():
                scores[product_id] += score
        if not scores:
            return [], understood, False
        top = max(scores.values())
        ranked = sorted(
            ((pid, s) for pid, s in scores.items() if s >= top * 0.6), key=lambda x: -x[1]
        )
        return ranked, understood, named_category


def _bigrams(word: str) -> list[str]:
    padded = f"^{word}$"
    return [padded[i:i + 2] for i in range(len(padded) - 1)]


_index_lock = threading.Lock()
_index_cache: dict[str, tuple[tuple, SearchIndex]] = {}


def _catalogue_version(session: Session) -> tuple:
    count, latest, id_sum = session.execute(
        select(func.count(Product.id), func.max(Product.updated_at), func.sum(Product.id)).where(
            Product.active.is_(True)
        )
    ).one()
    return (count, str(latest), id_sum)


def search_index(session: Session) -> SearchIndex:
    key = str(session.get_bind().url)
    version = _catalogue_version(session)
    with _index_lock:
        cached = _index_cache.get(key)
        if cached and cached[0] == version:
            return cached[1]
    products = list(session.scalars(select(Product).where(Product.active.is_(True))))
    index = SearchIndex(products)
    with _index_lock:
        _index_cache[key] = (version, index)
    return index


SKU_LIKE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")


def search_products(session: Session, text: str, limit: int = MAX_RESULTS) -> SearchResult:
    """Products matching a question, best first; in-stock before out-of-stock at equal score.
    A reference (SKU) written in the question names that product alone."""
    references = {token.upper() for token in SKU_LIKE.findall(text or "")}
    if references:
        exact = list(session.scalars(select(Product).where(
            func.upper(Product.sku).in_(references), Product.active.is_(True))))
        if exact:
            return SearchResult(exact[:limit], len(exact), None, [p.sku for p in exact], FIELD_WEIGHTS["sku"])
    index = search_index(session)
    ranked, understood, named_category = index.search(text)
    if not ranked:
        return SearchResult([], 0, None, understood)
    ids = [pid for pid, _ in ranked]
    rows = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    score = dict(ranked)
    found = [rows[i] for i in ids if i in rows]
    categories = {p.category for p in found}
    category = categories.pop() if named_category and len(categories) == 1 else None
    best = ranked[0][1]
    if category:  # a whole range: what can be delivered first
        products = sorted(found, key=lambda p: (p.stock <= 0, -score[p.id], p.name))
    else:
        products = sorted(found, key=lambda p: (-score[p.id], p.stock <= 0, p.name))
    return SearchResult(products[:limit], len(products), category, understood, best)


def products_in_category(session: Session, category: str, limit: int = MAX_RESULTS) -> SearchResult:
    wanted = fold(category).strip()
    exact = next((c for c in categories(session) if fold(c) == wanted), None)
    if exact is None:
        return SearchResult([], 0, None)
    query = select(Product).where(Product.active.is_(True), Product.category == exact)
    products = sorted(session.scalars(query), key=lambda p: (p.stock <= 0, p.name))
    return SearchResult(products[:limit], len(products), products[0].category if products else None,
                        score=STRONG_MATCH if products else 0.0)


def product_by_sku(session: Session, sku: str | None, *, active_only: bool = True) -> Product | None:
    if not sku:
        return None
    query = select(Product).where(Product.sku == sku.strip())
    if active_only:
        query = query.where(Product.active.is_(True))
    return session.scalar(query)


def categories(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(Product.category)
            .where(Product.active.is_(True))
            .group_by(Product.category)
            .order_by(Product.category)
        )
    )


def format_money(amount: Decimal, currency: str, language: str) -> str:
    symbol = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}.get(currency, currency)
    whole = f"{amount:,.2f}"
    if language == "fr":
        return whole.replace(",", "\u202f").replace(".", ",") + f" {symbol}"
    return f"{symbol}{whole}" if symbol in "€$£" else f"{whole} {symbol}"


# --- CSV import ---------------------------------------------------------------------------------


class CatalogImportError(ValueError):
    """The file was rejected whole; `errors` lists every problem with its line number."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class ImportReport:
    created: int
    updated: int


def _parse_rows(text: str) -> tuple[list[dict], list[str]]:
    errors: list[str] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return [], ["line 1: the file is empty (expected the header " + ",".join(CSV_HEADER) + ")"]
    if header != CSV_HEADER:
        return [], [f"line 1: the header must be {','.join(CSV_HEADER)} (got {','.join(header)})"]
    rows, seen = [], {}
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(CSV_HEADER):
            errors.append(f"line {line_no}: expected {len(CSV_HEADER)} columns, got {len(cells)}")
            continue
        row = dict(zip(CSV_HEADER, (c.strip() for c in cells)))
        problems = []
        for name in ("sku", "name", "category"):
            if not row[name]:
                problems.append(f"{name} is empty")
        if len(row["sku"]) > 64 or len(row["name"]) > 255 or len(row["category"]) > 128:
            problems.append("sku, name or category is too long (64, 255, 128 characters at most)")
        try:
            price = Decimal(row["price"].replace(",", "."))
            if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
                raise InvalidOperation
            row["price"] = price.quantize(Decimal("0.01"))
        except InvalidOperation:
            problems.append(f"price {row['price']!r} is not a non-negative amount")
        raw_stock = row["stock"]
        try:
            row["stock"] = int(raw_stock)
            if not 0 <= row["stock"] <= 2_000_000_000:
                raise ValueError
        except ValueError:
            problems.append(f"stock {raw_stock!r} is not a whole number of 0 or more")
        if row["sku"] in seen:
            problems.append(f"sku {row['sku']!r} already appears on line {seen[row['sku']]}")
        seen.setdefault(row["sku"], line_no)
        if problems:
            errors.append(f"line {line_no}: " + "; ".join(problems))
        else:
            rows.append(row)
    return rows, errors


def import_catalog(session: Session, source: str | Path) -> ImportReport:
    """Upsert products by SKU from CSV text or a file. Any bad row rejects the whole file."""
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise CatalogImportError(["the file is not UTF-8 text"]) from None
    rows, errors = _parse_rows(source)
    if errors:
        raise CatalogImportError(errors)
    existing = {
        p.sku: p
        for p in session.scalars(select(Product).where(Product.sku.in_([r["sku"] for r in rows])))
    }
    created = updated = 0
    for row in rows:
        product = existing.get(row["sku"])
        if product is None:
            session.add(Product(**row, currency="EUR", active=True))
            created += 1
        else:
            for key, value in row.items():
                setattr(product, key, value)
            product.active = True
            updated += 1
    session.flush()
    return ImportReport(created, updated)
