"""Product search by meaning (crm/meaning.py) beside search by letters: vectors stored at import,
only changed products encoded again, the hybrid ranking, and letters alone when the encoder is
missing."""

import numpy as np
import pytest
from sqlalchemy import select

from crm import catalog, meaning
from crm.catalog import import_catalog, search_index, search_products
from crm.demo import DEMO_CATALOG, load_demo_if_empty
from crm.models import Product


@pytest.fixture
def demo(session):
    assert load_demo_if_empty(session)
    return session


def first_sku(session, text):
    result = search_products(session, text)
    return result.products[0].sku if result.products else None


def test_import_stores_a_vector_per_product_and_encodes_only_what_changed(demo, monkeypatch):
    products = list(demo.scalars(select(Product)))
    assert products and all(p.embedding_key and meaning.unpack(p.embedding) is not None for p in products)
    vector = meaning.unpack(products[0].embedding)
    assert vector.shape == (meaning.DIMENSIONS,) and abs(float(np.linalg.norm(vector)) - 1) < 0.01

    encoded = []
    real = meaning.passage_vectors
    monkeypatch.setattr(meaning, "passage_vectors", lambda texts: encoded.append(len(texts)) or real(texts))
    text = DEMO_CATALOG.read_text(encoding="utf-8")
    import_catalog(demo, text)
    assert encoded == [], "an unchanged catalogue is not encoded again"
    changed = text.replace("Puce M3, 16 Go de mémoire unifiée", "Puce M3, 24 Go de mémoire unifiée")
    import_catalog(demo, changed)
    assert encoded == [1]


@pytest.mark.parametrize("question, sku", [
    ("ink bottles for ecotank", "CON-EPS-104"),
    ("mac laptop", "ORD-APL-MBA13"),
    ("bureau réglable en hauteur", "MOB-BUR-ELEC"),
])
def test_meaning_finds_what_the_words_alone_do_not(demo, question, sku):
    assert first_sku(demo, question) == sku


def test_without_the_encoder_the_same_questions_find_nothing_rather_than_fail(demo, monkeypatch):
    monkeypatch.setattr(meaning, "encode", lambda texts: None)
    monkeypatch.setattr(meaning, "passage_vectors", lambda texts: None)
    catalog._index_cache.clear()
    try:
        assert first_sku(demo, "mac laptop") is None
        assert first_sku(demo, "ink bottles for ecotank") is None
        assert first_sku(demo, "clavier logitech") == "PER-LOG-MXK", "letters alone still work"
    finally:
        catalog._index_cache.clear()


@pytest.mark.parametrize("question", [
    "coffee machine", "paper cups", "smartphone samsung galaxy", "aspirateur", "une tablette ipad",
    "vidéoprojecteur", "tableau blanc", "car tyres", "plante verte pour le bureau",
    "enceinte bluetooth", "micro-ondes pour la cuisine",
])
def test_meaning_never_offers_a_product_the_company_does_not_sell(demo, question):
    assert first_sku(demo, question) is None


def test_products_added_without_a_vector_are_found_by_meaning(session):
    session.add(Product(sku="GOB-20", name="Gobelets carton 20 cl (lot de 1000)", category="Cuisine",
                        category_en="Kitchen", description="Gobelets jetables pour boissons chaudes.",
                        price=25, stock=10, active=True))
    session.add(Product(sku="ASP-1", name="Aspirateur balai sans fil", category="Entretien",
                        description="Autonomie 40 minutes.", price=199, stock=3, active=True))
    session.flush()
    index = search_index(session)
    assert index.vectors is not None and len(index.vector_ids) == 2
    close = index.closeness("disposable cups for hot drinks")
    cups = session.scalar(select(Product.id).where(Product.sku == "GOB-20"))
    assert close.get(cups) == max(close.get(pid) for pid in index.vector_ids)


def test_meaning_orders_ties_among_what_the_words_found_but_never_outranks_a_better_name(demo, monkeypatch):
    skus = {p.id: p.sku for p in demo.scalars(select(Product))}
    leaning = {"ORD-ASU-B1": 0.9}  # as if the question meant the Asus most

    def closeness(self, text):
        return {pid: leaning.get(sku, 0.1) for pid, sku in skus.items()}

    monkeypatch.setattr(catalog.SearchIndex, "closeness", closeness)
    # every laptop is an "ordinateur portable" alike: meaning decides
    assert first_sku(demo, "ordinateur portable") == "ORD-ASU-B1"
    # a laptop named by one more word keeps the lead over the closest by meaning
    assert first_sku(demo, "ordinateur portable lenovo") == "ORD-LEN-T14"


def test_a_huge_question_is_cut_before_encoding(demo):
    result = search_products(demo, "clavier, " + "bla " * 5_000)
    assert result.products and result.products[0].sku in {"PER-LOG-MXK", "PER-MS-DESK"}
