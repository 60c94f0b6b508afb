"""Every text a client or staff member reads exists in French and English; French is the default.

Each part keeps its own table of texts ({key: {"fr": ..., "en": ...}}); `translate` picks one.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LANGUAGE = "fr"


def normalise_language(language: str | None) -> str:
    return "en" if language == "en" else DEFAULT_LANGUAGE


def translate(texts: Mapping[str, Mapping[str, str]], key: str, language: str | None, **values) -> str:
    variants = texts[key]
    return variants[normalise_language(language)].format(**values)


class Refusal(ValueError):
    """A business rule refusing something, readable in French or English: `texts` holds the
    variants of each key; str() is the English one (the command line is an operator's tool)."""

    texts: Mapping[str, Mapping[str, str]] = {}

    def __init__(self, key: str, **values):
        self.key, self.values = key, values
        super().__init__(self.text("en"))

    def text(self, language: str | None) -> str:
        return translate(self.texts, self.key, language, **self.values)
