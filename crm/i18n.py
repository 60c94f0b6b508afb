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
