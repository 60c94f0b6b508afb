"""Reading what clients type into form answers: quantities, yes/no-like skips, categories."""

from __future__ import annotations

import re

from crm.text import fold

NUMBER_WORDS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "quinze": 15, "vingt": 20, "trente": 30,
    "cinquante": 50, "cent": 100, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100, "dozen": 12, "douzaine": 12,
}
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


NONE_ANSWERS = {"non", "aucune", "aucun", "pas de commande", "sans commande", "no", "none", "nope",
                "no order", "not about an order", "pas concerne", "rien", "nan"}


def means_none(text: str) -> bool:
    folded = fold(text or "").strip(" .!")
    return folded in NONE_ANSWERS or folded.startswith(("non ", "no ", "aucune ", "pas de commande"))


CATEGORY_WORDS = {
    "delivery": ["livraison", "livre", "livreur", "colis", "retard", "transporteur", "delivery", "parcel",
                 "late", "shipping", "courier", "driver"],
    "invoice": ["facture", "facturation", "facture", "paiement", "prelevement", "invoice", "billing",
                "charged", "payment"],
    "product": ["produit", "casse", "defectueux", "panne", "marche pas", "fonctionne pas", "abime",
                "product", "broken", "faulty", "defective", "damaged", "doesn't work"],
    "service": ["service", "accueil", "conseiller", "telephone", "repond", "politesse", "staff", "rude",
                "support", "answer"],
    "other": ["autre", "other"],
}


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
