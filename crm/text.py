"""Text normalisation shared by catalogue search: accents, case, plurals, typos."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    """
    a au aux avec avez avoir c ca ce ces cette chez combien comme d dans de des du elle en est et
    etes il ils j je l la le les leur lui m ma mais me mes moi mon n ne nos notre nous on ou par pas
    pour qu que quel quelle quelles quels qui s sa se ses si son sur t ta te tes toi ton tu un une vos
    votre vous y svp stp merci bonjour salut cherche cherchez recherche vendez vend vends proposez
    propose avezvous auriez aurais voudrais veux voulez faut besoin montrer montrez voir liste
    catalogue assortiment produit produits article articles quoi disponible dispo dispos tarif prix
    genre type sorte modele modeles commander commande commandes passer acheter achat prendre prends
    aimerais souhaite souhaiterais desire faire fais infos info information informations details
    caracteristiques garantie combien coute coutent cout reste restent encore ici mettez envoyez
    the an and any are at do does for from have has i in is it me my of on or please show some
    that to want we what which with you your need looking look sell stock available products list
    order buy purchase like would take get place much cost costs price details specs about tell more
    """.split()
)

# Counts in words, French and English: "trois souris", "two monitors".
NUMBER_WORDS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "quinze": 15, "vingt": 20, "trente": 30,
    "cinquante": 50, "cent": 100, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100, "dozen": 12, "douzaine": 12,
}

# English words for the French assortment, so an English client finds the same products.
SYNONYMS = {
    "printer": "imprimante",
    "printers": "imprimante",
    "laptop": "portable",
    "laptops": "portable",
    "notebook": "portable",
    "computer": "ordinateur",
    "computers": "ordinateur",
    "pc": "ordinateur",
    "desktop": "ordinateur",
    "screen": "ecran",
    "screens": "ecran",
    "monitor": "ecran",
    "monitors": "ecran",
    "display": "ecran",
    "keyboard": "clavier",
    "keyboards": "clavier",
    "mouse": "souris",
    "mice": "souris",
    "chair": "chaise",
    "chairs": "chaise",
    "seat": "siege",
    "desk": "bureau",
    "desks": "bureau",
    "paper": "papier",
    "ink": "encre",
    "cartridge": "cartouche",
    "cartridges": "cartouche",
    "toner": "toner",
    "pen": "stylo",
    "pens": "stylo",
    "notepad": "bloc",
    "headset": "casque",
    "headsets": "casque",
    "headphones": "casque",
    "cable": "cable",
    "cables": "cable",
    "storage": "stockage",
    "drive": "disque",
    "disk": "disque",
    "furniture": "mobilier",
    "lamp": "lampe",
    "shredder": "destructeur",
    "stapler": "agrafeuse",
    "supplies": "fourniture",
    "binder": "classeur",
    "binders": "classeur",
    "network": "reseau",
    "router": "routeur",
    "switch": "switch",
    "tablet": "tablette",
    "phone": "telephone",
    "scanner": "scanner",
    "cleaning": "entretien",
    "coffee": "cafe",
    "envelope": "enveloppe",
    "envelopes": "enveloppe",
}


def fold(text: str) -> str:
    """Lower case without accents: 'Écran' -> 'ecran'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """A light French/English singular: 'imprimantes' -> 'imprimante', 'bureaux' -> 'bureau'."""
    if len(word) > 4 and word.endswith("aux"):
        return word[:-3] + "al"
    if len(word) > 3 and word[-1] in "sx" and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Folded, stemmed words, with English synonyms mapped to French."""
    out = []
    for raw in _WORD.findall(fold(text)):
        raw = SYNONYMS.get(raw, raw)
        out.append(stem(raw))
    return out


def query_words(text: str) -> list[str]:
    """The words of a question that can name a product: no stop words, no lone letters."""
    out = []
    for raw in _WORD.findall(fold(text)):
        if raw in STOPWORDS or (len(raw) < 2 and not raw.isdigit()):
            continue
        word = stem(SYNONYMS.get(raw, raw))
        if word not in STOPWORDS and word not in out:
            out.append(word)
    return out


_CODE_CHUNK = re.compile(r"[a-z0-9]+(?:[-./_][a-z0-9]+)+")


def model_codes(text: str) -> list[str]:
    """References and model numbers written without spaces, hyphens or dots, so that "TK1160",
    "tk 1160" and "TK-1160" meet: "Toner Kyocera TK-1160" -> ["tk1160"]. Only codes holding a
    digit: "Wi-Fi" is not a model."""
    folded = fold(text or "")
    codes = [re.sub(r"[-./_]", "", chunk) for chunk in _CODE_CHUNK.findall(folded)]
    tokens = _WORD.findall(folded)
    for a, b in zip(tokens, tokens[1:]):  # "TK 1160", "P 2423D", "ThinkPad T14"
        if (a.isalpha() and len(a) <= 4 and b[0].isdigit()) or (a.isdigit() and b.isalpha() and len(b) <= 2):
            codes.append(a + b)
    return [c for c in dict.fromkeys(codes) if any(ch.isdigit() for ch in c) and len(c) >= 3]


def within_edits(a: str, b: str, limit: int) -> bool:
    """True when a and b are at most `limit` edits apart (insert, delete, substitute, swap)."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if previous2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def typo_budget(word: str) -> int:
    return 0 if len(word) <= 3 else 1 if len(word) <= 6 else 2


def shorten(text: str, limit: int) -> str:
    """One line of at most `limit` characters, an ellipsis marking what was cut."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
