"""The message catalogue (crm/i18n.py, locales/): every message in every language, the same
placeholders everywhere, every message id the code names present, and a third language added by
adding a catalogue only."""

import ast
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.pofile import read_po

from crm import i18n

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("bot", "actions", "crm") for p in (ROOT / folder).glob("*.py")]


def catalogue(path: Path):
    with path.open("rb") as f:
        return {m.id: m.string for m in read_po(f) if m.id}


def test_every_language_has_every_message_of_the_template_with_the_same_placeholders():
    template = catalogue(i18n.LOCALES / "messages.pot")
    french = catalogue(i18n.po_path("fr"))
    assert len(template) > 300 and set(template) == set(french)
    for language in i18n.languages():
        messages = catalogue(i18n.po_path(language))
        assert set(messages) == set(template), f"{language}: {set(template) ^ set(messages)}"
        for message_id, text in messages.items():
            assert text.strip(), f"{language}: {message_id} is empty"
            assert i18n.placeholders(text) == i18n.placeholders(french[message_id]), (language, message_id)


def _prefixes(tree) -> dict[str, str]:
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call) \
                and getattr(node.value.func, "id", None) == "Texts":
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            found[target.id] = node.value.args[0].value
    return found


def _names_in_code():
    """(file, message id) for every literal id the code names: t("a.b"), TEXTS.t("key") and
    TEXTS.t("key") where TEXTS = Texts("prefix") in that file or imported from another;
    and "prefix.*" for each Texts("prefix")."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in SOURCES}
    declared = {f"{p.parent.name}.{p.stem}": _prefixes(tree) for p, tree in trees.items()}
    for path, tree in trees.items():
        prefixes = dict(declared[f"{path.parent.name}.{path.stem}"])
        yield from ((path, prefix + ".*") for prefix in prefixes.values())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in declared:
                for alias in node.names:
                    if alias.name in declared[node.module]:
                        prefixes[alias.asname or alias.name] = declared[node.module][alias.name]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first, func = node.args[0], node.func
            if isinstance(func, ast.Name) and func.id == "t" and isinstance(first, ast.Constant):
                yield path, first.value
            elif isinstance(func, ast.Attribute) and func.attr == "t" and isinstance(first, ast.Constant) \
                    and getattr(func.value, "id", None) in prefixes:
                yield path, f"{prefixes[func.value.id]}.{first.value}"


def test_every_message_the_code_names_is_in_the_catalogue():
    named = list(_names_in_code())
    assert len(named) > 250, "the scan must see the code's messages"
    ids = set(catalogue(i18n.po_path("fr")))
    missing = []
    for path, message_id in named:
        if message_id.endswith(".*"):
            if not any(i.startswith(message_id[:-1]) for i in ids):
                missing.append((path.name, message_id))
        elif message_id not in ids:
            missing.append((path.name, message_id))
    assert not missing


def test_no_bilingual_text_is_left_in_the_code():
    for path in SOURCES:
        if path.name == "i18n.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and {getattr(k, "value", None) for k in node.keys} == {"fr", "en"} \
                    and all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in node.values):
                pytest.fail(f"{path.name}:{node.lineno}: a French/English text belongs in locales/")


def test_unknown_message_ids_are_errors_and_a_missing_translation_falls_back_to_french():
    with pytest.raises(KeyError):
        i18n.t("no.such.message", "fr")
    assert i18n.t("chat.orders.which_product", "de") == i18n.t("chat.orders.which_product", "fr")
    assert i18n.normalise_language("en-GB") == "en" and i18n.normalise_language(None) == "fr"


def test_money_and_dates_come_from_babel_in_each_language():
    assert i18n.format_money(Decimal("1099.5"), "EUR", "fr") == "1\u202f099,50 €"
    assert i18n.format_money(Decimal("1099.5"), "EUR", "en") == "€1,099.50"
    when = datetime(2027, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert i18n.format_when(when, "fr") == "mardi 2 mars à 10 h 00"
    assert i18n.format_when(when, "en") == "Tuesday 2 March at 10:00"
    assert i18n.format_when(when, "fr", "date.short") == "mar. 02/03 10:00"


@pytest.fixture
def with_german(tmp_path, monkeypatch):
    """A third language, added the way the README says: a copy of a catalogue, translated."""
    shutil.copytree(i18n.LOCALES, tmp_path / "locales")
    german = tmp_path / "locales" / "de" / "LC_MESSAGES"
    german.mkdir(parents=True)
    text = i18n.po_path("en").read_text(encoding="utf-8").replace("Language: en", "Language: de")
    text = text.replace('msgstr "Several products match. Which one do you want?"',
                        'msgstr "Mehrere Produkte passen. Welches möchten Sie?"')
    text = text.replace("msgstr \"EEEE d MMMM 'at' HH:mm\"", "msgstr \"EEEE, d. MMMM 'um' HH:mm\"")
    text = text.replace('msgstr "¤#,##0.00"', 'msgstr "#,##0.00 ¤"')
    (german / "messages.po").write_text(text, encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES", tmp_path / "locales")
    i18n.languages.cache_clear()
    i18n._loaded.clear()
    yield
    i18n.languages.cache_clear()
    i18n._loaded.clear()


def test_a_third_language_is_a_catalogue_and_nothing_else(with_german):
    from crm.clients import language_from_code

    assert i18n.languages() == ("fr", "de", "en")
    assert i18n.language_name("de") == "Deutsch", "the /language picker offers it by its own name"
    assert language_from_code("de-AT") == "de"
    assert i18n.t("chat.orders.which_product", "de") == "Mehrere Produkte passen. Welches möchten Sie?"
    when = datetime(2027, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert i18n.format_when(when, "de") == "Dienstag, 2. März um 10:00"
    assert i18n.format_money(Decimal("1099.5"), "EUR", "de") == "1.099,50 €"
