"""Every text a client or staff member reads, in one message catalogue per language.

The catalogues are gettext files managed with Babel: `locales/messages.pot` (the template: every
message id, with the French text as a note for translators) and `locales/<language>/LC_MESSAGES/
messages.po`. `make setup` compiles each to `messages.mo` (`pybabel compile`); a missing or older
`.mo` is compiled in memory from its `.po`, so a fresh checkout works before any build step.
French is the default language, and the fallback for a message a catalogue lacks (a test checks
that none does). A message id names its place: "chat.orders.which_product", "orders.status.new".

`t(message_id, language, **values)` is the one way to a text. A part of the code keeps its
messages under a prefix: `TEXTS = Texts("chat.orders")`, then `TEXTS.t("which_product", language)`.
Dates, times and money are formatted by Babel in each language, with patterns from the catalogue.

Adding a language is adding a catalogue (see the README): `languages()` lists those present.
"""

from __future__ import annotations

import gettext
import io
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_percent as babel_percent

LOCALES = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
DEFAULT_LANGUAGE = "fr"
_PLACEHOLDER = re.compile(r"(?<!\{)\{([a-z_][a-z0-9_]*)[^{}]*\}(?!\})")

_lock = threading.Lock()
_loaded: dict[str, gettext.GNUTranslations] = {}


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """The languages with a catalogue, the default first."""
    found = sorted(p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return tuple(sorted(found, key=lambda code: code != DEFAULT_LANGUAGE))


def normalise_language(language: str | None) -> str:
    """A language we have a catalogue for ("en", "en-GB" -> "en"); else the default."""
    code = (language or "").lower().replace("_", "-").split("-")[0]
    return code if code in languages() else DEFAULT_LANGUAGE


def language_name(code: str) -> str:
    """A language's name in that language, as a language picker shows it: "Français", "English"."""
    return Locale.parse(code).get_display_name(code).capitalize()


def po_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def _catalogue(language: str) -> gettext.GNUTranslations:
    with _lock:
        if language not in _loaded:
            po, mo = po_path(language), po_path(language).with_suffix(".mo")
            if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                data = mo.read_bytes()
            else:  # not compiled yet (a fresh checkout) or compiled from an older .po
                with po.open("rb") as source:
                    buffer = io.BytesIO()
                    write_mo(buffer, read_po(source, locale=language))
                data = buffer.getvalue()
            _loaded[language] = gettext.GNUTranslations(io.BytesIO(data))
        return _loaded[language]


def has_message(message_id: str, language: str = DEFAULT_LANGUAGE) -> bool:
    return message_id in _catalogue(normalise_language(language))._catalog


def t(message_id: str, language: str | None, **values) -> str:
    """The text of a message in a language (the default language's when that catalogue lacks
    it), with its {placeholders} filled. An unknown message id is a programming error: KeyError."""
    for code in dict.fromkeys((normalise_language(language), DEFAULT_LANGUAGE)):
        text = _catalogue(code)._catalog.get(message_id)
        if text:
            return text.format(**values) if values or "{" in text else text
    raise KeyError(f"no message {message_id!r} in the catalogues ({', '.join(languages())})")


class Texts(Mapping):
    """The messages of one part of the code, under a prefix: `Texts("chat.orders")`.

    texts["which_product"] gives that message in every language ({"fr": ..., "en": ...}), for
    code that sends it to several people in their own languages."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def t(self, key: str, language: str | None, **values) -> str:
        return t(f"{self.prefix}.{key}", language, **values)

    def __getitem__(self, key: str) -> dict[str, str]:
        message_id = f"{self.prefix}.{key}"
        if not has_message(message_id):
            raise KeyError(message_id)
        return {code: t(message_id, code) for code in languages()}

    def __iter__(self) -> Iterator[str]:
        start = f"{self.prefix}."
        for message_id in _catalogue(DEFAULT_LANGUAGE)._catalog:
            if isinstance(message_id, str) and message_id.startswith(start) and "." not in message_id[len(start):]:
                yield message_id[len(start):]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and has_message(f"{self.prefix}.{key}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def format_when(instant: datetime, language: str | None, pattern: str = "date.when") -> str:
    """A date and time in words ("mardi 1 décembre à 10 h 00"), the pattern from the catalogue."""
    code = normalise_language(language)
    return format_datetime(instant, t(pattern, code), tzinfo=instant.tzinfo, locale=code)


def format_percent(share: float, language: str | None) -> str:
    """"41 %" / "41%": a share (0.41) as the language writes a percentage (Babel)."""
    return babel_percent(share, locale=normalise_language(language))


def format_money(amount: Decimal, currency: str, language: str | None) -> str:
    """"1 099,00 €" / "€1,099.00": Babel's digits, separators and symbols, our pattern."""
    code = normalise_language(language)
    return format_currency(amount, currency, format=t("money.pattern", code), locale=code,
                           currency_digits=False)


class Refusal(ValueError):
    """A business rule refusing something, readable in every language: `texts` holds its
    messages; str() is the English one (the command line is an operator's tool)."""

    texts: Texts

    def __init__(self, key: str, **values):
        self.key, self.values = key, values
        super().__init__(self.text("en"))

    def text(self, language: str | None) -> str:
        return self.texts.t(self.key, language, **self.values)
