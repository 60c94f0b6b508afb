"""Reading what clients type into form answers: quantities, yes/no-like skips, categories."""

from __future__ import annotations

import re

from crm.complaints import CATEGORY_WORDS
from crm.text import NUMBER_WORDS, fold

_INTEGER = re.compile(r"(?<![\w.,])([-−]?\d[\d\s\u202f.,]*)(?![\w])")


def parse_quantity(text: str) -> int | None:
    """The whole number a client means ('3', 'trois', '10 unités', '-3', '1e9' -> 1000000000);
    None when there is none ('beaucoup') or several different ones."""
    folded = fold(text or "").strip()
    if not folded:
        return None
    scientific = re.fullmatch(r"(\d+)\s*(?:e|\*\s*10\s*\^|x\s*10\s*\^|10\^)\s*(\d+)", folded)
    if scientific:
        return int(scientific.group(1)) * 10 ** min(int(scientific.group(2)), 30)
    power = re.fullmatch(r"10\s*\^\s*(\d+)", folded)
    if power:
        return 10 ** min(int(power.group(1)), 30)
    numbers = set()
    for match in _INTEGER.finditer(folded):
        raw = re.sub(r"[\s\u202f]", "", match.group(1)).replace("−", "-")
        if re.fullmatch(r"-?\d+([.,]\d{3})*", raw):
            numbers.add(int(re.sub(r"[.,]", "", raw)))
        elif re.fullmatch(r"-?\d+[.,]\d+", raw):
            return None  # 2.5 is not a whole number
    for word in re.findall(r"[a-z]+", folded):
        if word in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[word])
    if len(numbers) == 1:
        return numbers.pop()
    return None


# After a number, these words make it a size or a price, not how many: "écran 27 pouces", "500 Go".
_MEASURES = {"pouce", "pouces", "po", "inch", "inches", "cm", "mm", "m", "go", "gb", "to", "tb", "mo", "mb", "w",
             "v", "hz", "ppm", "ghz", "euro", "euros", "eur", "e", "dollars", "usd", "k", "p", "cl", "ml",
             "l", "g", "kg", "feuilles", "pages", "ports", "tiroirs", "places", "mois", "ans", "months", "years",
             "pct", "pourcent", "percent", "h", "heures", "jours", "days", "min"}
_ARTICLES = {"un", "une", "one", "a", "an"}  # "une imprimante" names a product, not a quantity
_BEFORE_A_SIZE = {"par", "by", "x", "\u00d7", "n", "no", "numero", "number", "cmd", "rec"}
_PACKS = {"lot", "lots", "pack", "paquet", "boite", "box", "carton", "pochette"}


# Words that make a message an order rather than a question about a product: "je commande le
# MacBook", "I'd like two monitors", "il me faut une ramette". Without them (and without a count),
# "ramette Clairefontaine Clairalfa" is a product named, answered with its card and an Order button.
_ORDER_WORDING = re.compile(
    r"\b(?:command\w*|achet\w*|achat|prend\w*|pris|voudr\w*|veux|veut|souhait\w*|aimerai\w*|faut|"
    r"besoin|reserv\w*|ajout\w*|order\w*|buy\w*|bought|purchas\w*|want\w*|"
    r"would like|i'?d like|need\w*|take|get|add)\b")


def asks_to_order(text: str) -> bool:
    """Whether a message asks to order, not only names a product: order wording or a count."""
    folded = fold(text or "")
    return bool(_ORDER_WORDING.search(folded)) or quantity_in_request(text) is not None


def quantity_in_request(text: str) -> int | None:
    """How many a client asks for in a sentence that also names the product: "je voudrais acheter
    3 souris sans fil" -> 3, "I want to buy two monitors" -> 2, "un écran 27 pouces" -> None (a
    size, and an article). None when no count, or two different ones, are given."""
    # Model numbers ("P2423D", "TK-1160", "1To") are single tokens, never counts.
    tokens = re.findall(r"[a-z0-9]+|[\"\u2033\u00d7€%]", fold(text or ""))
    found = set()
    for i, token in enumerate(tokens):
        if token.isdigit():
            value = int(token)
        elif token in NUMBER_WORDS and token not in _ARTICLES:
            value = NUMBER_WORDS[token]
        else:
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if following in ("x", "\u00d7"):  # "5 x écran"
            following = tokens[i + 2] if i + 2 < len(tokens) else ""
        before = tokens[max(0, i - 2):i]
        if not following or following in _MEASURES or following in ('"', "\u2033", "€", "%") \
                or (before and before[-1] in _BEFORE_A_SIZE) or any(w in _PACKS for w in before):
            continue
        if 0 < value <= 100_000:
            found.add(value)
    return found.pop() if len(found) == 1 else None


NONE_ANSWERS = {"non", "aucune", "aucun", "pas de commande", "sans commande", "no", "none", "nope",
                "no order", "not about an order", "pas concerne", "rien", "nan"}


def means_none(text: str) -> bool:
    folded = fold(text or "").strip(" .!")
    return folded in NONE_ANSWERS or folded.startswith(("non ", "no ", "aucune ", "pas de commande"))


def guess_category(text: str) -> str | None:
    """A category when exactly one kind of problem is named; None otherwise (ask the client)."""
    folded = fold(text or "")
    found = {cat for cat, words in CATEGORY_WORDS.items() if any(w in folded for w in words)}
    return found.pop() if len(found) == 1 else None


_COMPLAINT_REQUEST = re.compile(
    r"\b(je (veux|voudrais|souhaite|aimerais|vais)|j ai|i (want|would like|d like|have)|i ?m)?\s*"
    r"(faire|deposer|porter|deposer|to make|to file|to lodge|make|file)?\s*(une |a )?"
    r"(reclamation|plainte|complaint|me plaindre|complain)( a faire| to make)?\b")


def describes_a_problem(text: str) -> bool:
    """Whether a first complaint message already says what went wrong (not just "I want to
    complain"): what is left once the request itself is removed is a few words long."""
    rest = _COMPLAINT_REQUEST.sub(" ", fold(text or "").replace("'", " "))
    return len(re.findall(r"[a-z0-9]+", rest)) >= 4
