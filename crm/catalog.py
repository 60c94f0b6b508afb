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

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm import meaning
from crm.models import OrderLine, Product
from crm.text import NUMBER_WORDS, fold, model_codes, query_words, typo_budget, within_edits, words

CSV_HEADER = ["sku", "name", "category", "description", "price", "stock"]
# Optional columns, after the required ones: the category's English label (product names stay as
# the company wrote them).
CSV_OPTIONAL = ["category_en"]
MAX_RESULTS = 8

# How much a matching word counts, by where it is found.
FIELD_WEIGHTS = {"sku": 4.0, "name": 3.0, "category": 2.5, "name_tail": 1.5, "description": 1.0}
MATCH_QUALITY = {"exact": 1.0, "prefix": 0.8, "typo": 0.7}
# A name, model, category or reference word matched (a typo in a name still counts); a word
# found only in descriptions does not, so it never picks a product alone.
STRONG_MATCH = 2.0
# Search by meaning (crm/meaning.py), measured as the cosine of the question's and the product's
# sentence vectors. Among products the words found, it adds MEANING_WEIGHT x cosine to their score:
# enough to order near ties, never enough to outrank a product named by one more word (3.0). When
# the words found nothing that is the thing asked for ("ink bottles for ecotank", "mac laptop"),
# the closest product by meaning is the answer only if it is close (MEANING_CLOSE), clearly closer
# than the next (MEANING_MARGIN), and some word of the question matches it somewhere: meaning alone
# cannot tell "a tablet" from "a laptop", and a wrong product is worse than an honest "we don't
# sell that". Chosen on the demo catalogue's questions (tests/catalogue/demo_questions.yml),
# never on the benchmark's.
MEANING_WEIGHT = 1.0
MEANING_CLOSE = 0.30
MEANING_MARGIN = 0.04


_AMOUNT = r"(\d+(?:[.,]\d{1,2})?)\s*(?:€|euros?\b|eur\b|e\b|\$|dollars?\b)"
_PRICE_CAP = re.compile(r"(?:moins de|en dessous de|sous|maxi(?:mum)?|max|jusqu'?a|pas plus de|under|below|"
                        r"less than|up to|at most|cheaper than|no more than|<)\s*" + _AMOUNT)
_PRICE_FLOOR = re.compile(r"(?:plus de|au-dessus de|au moins|minimum|over|above|more than|at least|>)\s*" + _AMOUNT)
_IN_STOCK = re.compile(r"\b(?:en stock|dispo(?:nibles?)? (?:tout de suite|immediatement|de suite)|in stock|"
                       r"available (?:now|right away)|ready to ship)\b")


@dataclass(frozen=True)
class Filters:
    """Conditions a question sets besides the product: "à moins de 300 €", "under 700 euros",
    "en stock". Prices are what the client would pay (running promotions applied)."""

    max_price: Decimal | None = None
    min_price: Decimal | None = None
    in_stock: bool = False

    def __bool__(self) -> bool:
        return self.max_price is not None or self.min_price is not None or self.in_stock


def parse_filters(text: str) -> Filters:
    folded = fold(text or "")

    def amount(match) -> Decimal | None:
        return Decimal(match.group(1).replace(",", ".")) if match else None

    return Filters(amount(_PRICE_CAP.search(folded)), amount(_PRICE_FLOOR.search(folded)),
                   bool(_IN_STOCK.search(folded)))


@dataclass
class SearchResult:
    products: list[Product]
    total: int = 0
    category: str | None = None  # set when the question named a whole category
    understood: list[str] = field(default_factory=list)  # the query words that matched something
    score: float = 0.0  # the best product's score: below STRONG_MATCH only weak words matched
    filters: Filters | None = None  # price or stock conditions the question set
    nearest: Product | None = None  # when the conditions left nothing: the closest product to them

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
            head, tail = split_head(p.name)
            fields = {
                "sku": [fold(p.sku)] + model_codes(p.sku),
                "name": words(head) + model_codes(head),
                "name_tail": words(tail) + model_codes(tail),
                "category": words(p.category) + words(p.category_en or ""),
                "description": words(p.description),
            }
            for name, field_words in fields.items():
                weight = FIELD_WEIGHTS[name]
                for w in field_words:
                    if weight > self.postings[w].get(p.id, 0.0):
                        self.postings[w][p.id] = weight
        self.category_words = {w for p in products for c in (p.category, p.category_en or "") for w in words(c)}
        self._vectors(products)
        self._sorted = sorted(self.postings)  # prefixes by bisection
        # Bigrams of "^word$" -> words: a word within k edits of another shares all but 3k of its
        # bigrams with it, so only words sharing enough bigrams are compared letter by letter.
        self._bigrams: dict[str, list[str]] = defaultdict(list)
        for w in self._sorted:
            for gram in set(_bigrams(w)):
                self._bigrams[gram].append(w)

    def _vectors(self, products: list[Product]) -> None:
        """The products' sentence vectors, as stored at import; those missing or computed from
        another text or encoder (products added before search by meaning, or by hand) are encoded
        here, in memory."""
        self.vector_ids: list[int] = []
        self.vector_row: dict[int, int] = {}
        self.vectors: np.ndarray | None = None
        if not products:
            return
        texts = [meaning.passage(p.name, p.category, p.category_en, p.description) for p in products]
        rows = [meaning.unpack(p.embedding) if p.embedding_key == meaning.fingerprint(t) else None
                for p, t in zip(products, texts)]
        stale = [i for i, row in enumerate(rows) if row is None]
        if stale:
            fresh = meaning.passage_vectors([texts[i] for i in stale])
            if fresh is None:  # no encoder: letters alone
                return
            for i, row in zip(stale, fresh):
                rows[i] = row
        self.vector_ids = [p.id for p in products]
        self.vector_row = {pid: row for row, pid in enumerate(self.vector_ids)}
        self.vectors = np.vstack(rows).astype(np.float32)

    def closeness(self, text: str) -> Closeness | None:
        """Product id -> cosine between the question and the product, by meaning (a mapping
        computed once per question, read per product); None without an encoder."""
        if self.vectors is None:
            return None
        query = meaning.encode([text])
        if query is None:
            return None
        return Closeness(self, self.vectors @ query[0])

    def by_meaning(self, text: str, close: Closeness) -> int | None:
        """The one product a question means when its words named nothing that is the thing
        asked for: close enough, clearly the closest, and matched by some word of the question."""
        cosines = close.cosines
        if len(cosines) < 2:
            return None
        two = np.argpartition(-cosines, 1)[:2]
        best, runner_up = sorted(two, key=lambda row: -cosines[row])
        if cosines[best] < MEANING_CLOSE or cosines[best] - cosines[runner_up] < MEANING_MARGIN:
            return None
        loose, _, _ = self.search(text, strict=False)
        chosen = self.vector_ids[best]
        return chosen if chosen in dict(loose) else None

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

    def search(self, text: str, strict: bool = True) -> tuple[list[tuple[int, float]], list[str], bool]:
        """Products matching the text, scored. `strict`: only those that are the thing asked for
        (asked_for), not one of its details or purposes."""
        scores: dict[int, float] = defaultdict(float)
        strongly: dict[int, set[str]] = defaultdict(set)  # product -> query words it matches by name, model, range
        named: dict[int, set[str]] = defaultdict(set)  # ... or anywhere in its name
        understood, named_category = [], False
        for word in dict.fromkeys(query_words(text) + model_codes(text)):
            best: dict[int, float] = {}
            for vocab_word, quality in self.matches(word):
                named_category |= vocab_word in self.category_words
                for product_id, weight in self.postings[vocab_word].items():
                    best[product_id] = max(best.get(product_id, 0.0), weight * quality)
            if best:
                understood.append(word)
            for product_id, score in best.items():
                scores[product_id] += score
                if score >= STRONG_MATCH:
                    strongly[product_id].add(word)
                if score >= FIELD_WEIGHTS["name_tail"] * MATCH_QUALITY["typo"]:
                    named[product_id].add(word)
        if not scores:
            return [], understood, False
        asked = asked_for(text, set(understood)) if strict else None
        if asked is not None:  # only products that are the thing asked for, not one of its details
            head, segment = asked
            model = any(c.isdigit() for c in head) and any(c.isalpha() for c in head)  # "TK1160" says it all
            scores = {pid: score for pid, score in scores.items() if head in strongly[pid]
                      and (model or 2 * len(named[pid] & segment) > len(segment))}
            if not scores:
                return [], understood, False
        top = max(scores.values())
        ranked = sorted(
            ((pid, s) for pid, s in scores.items() if s >= top * 0.6), key=lambda x: -x[1]
        )
        return ranked, understood, named_category


@dataclass(frozen=True)
class Closeness:
    """The cosines of one question with every product, looked up by product id."""

    index: SearchIndex
    cosines: np.ndarray

    def get(self, product_id: int, default: float = 0.0) -> float:
        row = self.index.vector_row.get(product_id)
        return default if row is None else float(self.cosines[row])

    def __bool__(self) -> bool:
        return len(self.cosines) > 0


# Where the thing asked for ends and its purpose or details begin: "un vidéoprojecteur | pour la
# salle de réunion", "standing desk | with electric motor", "écran 27 pouces | à moins de 300 €".
_SEGMENT_END = re.compile(r"\b(?:pour|for|avec|with|dans|in|chez|at|under|sous|moins|less|cheaper|max|maximum|"
                          r"qui|que|qu|dont|that|which)\b|[,;:!?(]")
_ENGLISH = frozenset("the do does you have sell any need want looking for with under of an is are i my please "
                     "what which how much".split())
_MEASURE = re.compile(r"^\d+[a-z]{0,3}$")  # 20cl, 27, 500g: a detail, not the thing


def split_head(name: str) -> tuple[str, str]:
    """A product name's own thing, and what it is for: "Marqueurs pour tableau blanc Edding 360" ->
    ("Marqueurs", "tableau blanc Edding 360")."""
    match = re.search(r"\s(?:pour|for|avec|with)\s", name, re.IGNORECASE)
    return (name[:match.start()], name[match.end():]) if match else (name, "")


def asked_for(text: str, known: set[str]) -> tuple[str, set[str]] | None:
    """(the head word, the words naming the thing asked for) of a question: the words before its
    purpose or details; the head is the first of them the catalogue knows in French ("imprimante
    laser couleur"), the last in English ("laser printer"). None when the question names nothing
    the catalogue knows (then the answer is "we do not sell that" anyway)."""
    folded = fold(text or "")
    first = _SEGMENT_END.split(folded, maxsplit=1)[0]
    segment = [w for w in query_words(first) if not _MEASURE.match(w) and w not in NUMBER_WORDS] or \
        [w for w in query_words(folded) if not _MEASURE.match(w) and w not in NUMBER_WORDS]
    if not segment:
        return None
    candidates = [w for w in segment if w in known]
    if not candidates:
        return segment[0], set(segment)  # the thing asked for is unknown: nothing qualifies
    english = bool(_ENGLISH & set(re.findall(r"[a-z]+", folded)))
    return (candidates[-1] if english else candidates[0]), set(segment)


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


def search_products(session: Session, text: str, limit: int = MAX_RESULTS, strict: bool = True) -> SearchResult:
    """Products matching a question, best first; in-stock before out-of-stock at equal score.
    A reference (SKU) written in the question names that product alone. `strict` (catalogue
    questions): a product must be the thing asked for, so "un vidéoprojecteur pour la salle de
    réunion" finds no meeting table; a sentence about something else (a complaint, a status
    question) searches with strict=False."""
    references = {token.upper() for token in SKU_LIKE.findall(text or "")}
    if references:
        exact = list(session.scalars(select(Product).where(
            func.upper(Product.sku).in_(references), Product.active.is_(True))))
        if exact:
            return SearchResult(exact[:limit], len(exact), None, [p.sku for p in exact], FIELD_WEIGHTS["sku"])
    index = search_index(session)
    ranked, understood, named_category = index.search(text, strict)
    # Meaning is needed to order several products, or to find one the words missed; not for one.
    close = index.closeness(text) if strict and len(ranked) != 1 else None
    if not ranked and close:
        chosen = index.by_meaning(text, close)
        ranked = [(chosen, STRONG_MATCH)] if chosen is not None else []
    if not ranked:
        return SearchResult([], 0, None, understood)
    score = {pid: s + MEANING_WEIGHT * (close or {}).get(pid, 0.0) for pid, s in ranked}
    ids = [pid for pid, _ in ranked]
    rows = {p.id: p for p in session.scalars(select(Product).where(Product.id.in_(ids)))}
    found = [rows[i] for i in ids if i in rows]
    categories = {p.category for p in found}
    category = categories.pop() if named_category and len(categories) == 1 else None
    best = ranked[0][1]
    if category:  # a whole range: what can be delivered first
        products = sorted(found, key=lambda p: (p.stock <= 0, -score[p.id], p.name))
    else:
        products = sorted(found, key=lambda p: (-score[p.id], p.stock <= 0, p.name))
    filters = parse_filters(text)
    if filters:
        kept, nearest = _apply(session, products, filters)
        return SearchResult(kept[:limit], len(kept), category, understood, best, filters, None if kept else nearest)
    return SearchResult(products[:limit], len(products), category, understood, best)


def _apply(session: Session, products: list[Product], filters: Filters) -> tuple[list[Product], Product | None]:
    """The products meeting the conditions, in the same order; and, when none does, the one
    closest to them (the cheapest for a ceiling, the dearest for a floor, else the first)."""
    from crm.promotions import price_of, running_promotions

    promotions = running_promotions(session)
    price = {p.id: price_of(p, promotions).unit for p in products}
    kept = [p for p in products
            if (filters.max_price is None or price[p.id] <= filters.max_price)
            and (filters.min_price is None or price[p.id] >= filters.min_price)
            and (not filters.in_stock or p.stock > 0)]
    if kept or not products:
        return kept, None
    if filters.max_price is not None:
        return kept, min(products, key=lambda p: price[p.id])
    if filters.min_price is not None:
        return kept, max(products, key=lambda p: price[p.id])
    return kept, products[0]


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


def category_labels(session: Session) -> dict[str, str]:
    """Category -> its English label, for the categories that have one."""
    rows = session.execute(select(Product.category, func.max(Product.category_en))
                           .where(Product.active.is_(True)).group_by(Product.category))
    return {category: label for category, label in rows if label}


def category_label(category: str, labels: dict[str, str], language: str) -> str:
    """What a client reads: the English label for an English speaker when there is one."""
    return labels.get(category, category) if language == "en" else category




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
    withdrawn: int = 0  # with replace: products no longer in the file, no longer offered


def _parse_rows(text: str) -> tuple[list[dict], list[str]]:
    errors: list[str] = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return [], ["line 1: the file is empty (expected the header " + ",".join(CSV_HEADER) + ")"]
    optional = header[len(CSV_HEADER):]
    if header[:len(CSV_HEADER)] != CSV_HEADER or optional not in ([], CSV_OPTIONAL):
        return [], [f"line 1: the header must be {','.join(CSV_HEADER)}, optionally followed by "
                    f"{','.join(CSV_OPTIONAL)} (got {','.join(header)})"]
    columns = CSV_HEADER + optional
    rows, seen = [], {}
    labels: dict[str, tuple[str | None, int]] = {}  # category -> (English label, first line)
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            errors.append(f"line {line_no}: expected {len(columns)} columns, got {len(cells)}")
            continue
        row = dict(zip(columns, (c.strip() for c in cells)))
        problems = []
        if optional:
            row["category_en"] = row["category_en"] or None
            label = row["category_en"]
            if label and len(label) > 128:
                problems.append("category_en is too long (128 characters at most)")
            first = labels.setdefault(row["category"], (label, line_no))
            if first[0] != label:
                problems.append(f"category {row['category']!r} has the English label {first[0]!r} on line "
                                f"{first[1]} and {label!r} here: one label per category")
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


def import_catalog(session: Session, source: str | Path, replace: bool = False) -> ImportReport:
    """Upsert products by SKU from CSV text or a file. Any bad row rejects the whole file.
    `replace`: the file is the whole catalogue; products missing from it stop being offered
    (inactive: past orders keep them), and so do the promotions left without a product."""
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
    embed_products(session, [r["sku"] for r in rows])
    withdrawn = _withdraw_missing(session, {r["sku"] for r in rows}) if replace else 0
    return ImportReport(created, updated, withdrawn)


def embed_products(session: Session, skus: list[str]) -> int:
    """Store the sentence vector of each product whose name, category or description changed
    (or that has none). Without an encoder, nothing is stored: search encodes them in memory
    once one is available. Returns how many were encoded."""
    products = []
    for start in range(0, len(skus), 1000):
        products += session.scalars(select(Product).where(Product.sku.in_(skus[start:start + 1000])))
    texts = {p.id: meaning.passage(p.name, p.category, p.category_en, p.description) for p in products}
    stale = [p for p in products if p.embedding_key != meaning.fingerprint(texts[p.id])]
    if not stale:
        return 0
    vectors = meaning.passage_vectors([texts[p.id] for p in stale])
    if vectors is None:
        return 0
    for product, vector in zip(stale, vectors):
        product.embedding = meaning.pack(vector)
        product.embedding_key = meaning.fingerprint(texts[product.id])
    session.flush()
    return len(stale)


def _withdraw_missing(session: Session, kept: set[str]) -> int:
    from crm.models import Promotion

    gone = list(session.scalars(select(Product).where(Product.active.is_(True), Product.sku.not_in(kept))))
    for product in gone:
        product.active = False
    session.flush()
    offered = set(categories(session))
    for promotion in session.scalars(select(Promotion).where(Promotion.active.is_(True))):
        product = session.get(Product, promotion.product_id) if promotion.product_id else None
        if (product is not None and not product.active) or (promotion.category and promotion.category not in offered):
            promotion.active = False
    session.flush()
    return len(gone)


def related_products(session: Session, product: Product, limit: int = 3) -> list[Product]:
    """Bought together in past orders first, then the same range; in stock only."""
    orders_with_it = select(OrderLine.order_id).where(OrderLine.product_id == product.id)
    together = session.execute(
        select(Product, func.count(OrderLine.id).label("n"))
        .join(OrderLine, OrderLine.product_id == Product.id)
        .where(OrderLine.order_id.in_(orders_with_it), Product.id != product.id,
               Product.active.is_(True), Product.stock > 0)
        .group_by(Product.id).order_by(func.count(OrderLine.id).desc()).limit(limit)
    ).scalars().all()
    related = list(together)
    if len(related) < limit:
        same_range = session.scalars(
            select(Product).where(Product.category == product.category, Product.id != product.id,
                                  Product.active.is_(True), Product.stock > 0)
            .order_by(Product.name)
        ).all()
        related += [p for p in same_range if p not in related][: limit - len(related)]
    return related
