from decimal import Decimal

import pytest
from sqlalchemy import func, select

from crm.catalog import (
    CatalogImportError,
    categories,
    format_money,
    import_catalog,
    search_products,
)
from crm.demo import load_demo_if_empty
from crm.models import Product


@pytest.fixture
def demo(session):
    assert load_demo_if_empty(session)
    return session


def names(result):
    return [p.name for p in result.products]


def test_demo_catalogue_is_realistic(demo):
    assert demo.scalar(select(func.count(Product.id))) >= 40
    assert len(categories(demo)) >= 6
    assert demo.scalar(select(func.count(Product.id)).where(Product.stock == 0)) >= 3
    assert not load_demo_if_empty(demo), "demo data must only load into an empty database"


@pytest.mark.parametrize(
    "question",
    ["avez-vous des imprimantes ?", "vous avez des imprimantes", "do you have printers?",
     "IMPRIMANTES", "imprimante svp", "imprimente"],
)
def test_category_questions_find_printers(demo, question):
    result = search_products(demo, question)
    assert result.total == 5
    assert all(p.category == "Imprimantes" for p in result.products)
    assert result.category == "Imprimantes"


def test_typos_accents_and_models(demo):
    assert names(search_products(demo, "ecran 27 pouce"))[0].startswith("Écran LG 27UP850")
    assert "Lenovo ThinkPad" in names(search_products(demo, "thinkpad"))[0]
    assert names(search_products(demo, "ORD-LEN-T14"))[0].startswith("Ordinateur portable Lenovo")
    assert "Souris" in names(search_products(demo, "souri logitec"))[0]
    assert "Clavier" in names(search_products(demo, "keyboard"))[0]


def test_in_stock_products_come_first_at_equal_score(demo):
    result = search_products(demo, "écrans")
    stocks = [p.stock for p in result.products]
    assert stocks[-1] == 0 and all(s > 0 for s in stocks[:-1])


def test_unknown_product_finds_nothing(demo):
    result = search_products(demo, "avez-vous des réfrigérateurs ?")
    assert result.total == 0 and result.products == []


def test_products_added_later_are_found(demo):
    assert search_products(demo, "plastifieuse").total == 0
    import_catalog(demo, "sku,name,category,description,price,stock\n"
                         "FOU-PLA-A3,Plastifieuse GBC A3,Fournitures de bureau,Pochettes 80 à 125 microns,89.00,4\n")
    demo.flush()
    assert names(search_products(demo, "plastifieuses"))[0] == "Plastifieuse GBC A3"


def test_import_upserts_by_sku(session):
    report = import_catalog(session, "sku,name,category,description,price,stock\nA-1,Agrafes,Fournitures,x,\"2,50\",10\n")
    assert (report.created, report.updated) == (1, 0)
    report = import_catalog(session, "sku,name,category,description,price,stock\nA-1,Agrafes 24/6,Fournitures,x,3.10,4\n")
    assert (report.created, report.updated) == (0, 1)
    product = session.scalar(select(Product).where(Product.sku == "A-1"))
    assert product.name == "Agrafes 24/6" and product.price == Decimal("3.10") and product.stock == 4


def test_a_bad_row_rejects_the_whole_file_with_every_error(session):
    text = (
        "sku,name,category,description,price,stock\n"
        "OK-1,Bon produit,Cat,desc,10.00,5\n"
        "BAD-1,Prix faux,Cat,desc,dix euros,5\n"
        "BAD-2,Stock faux,Cat,desc,10.00,-3\n"
        ",Sans sku,Cat,desc,10.00,2.5\n"
        "OK-1,Doublon,Cat,desc,1,1\n"
        "TOO,few,columns\n"
    )
    with pytest.raises(CatalogImportError) as err:
        import_catalog(session, text)
    lines = err.value.errors
    assert [e.split(":")[0] for e in lines] == ["line 3", "line 4", "line 5", "line 6", "line 7"]
    assert "price 'dix euros'" in lines[0] and "stock '-3'" in lines[1]
    assert "sku is empty" in lines[2] and "stock '2.5'" in lines[2]
    assert "already appears on line 2" in lines[3]
    assert session.scalar(select(func.count(Product.id))) == 0


@pytest.mark.parametrize("text", ["", "nom,prix\nx,1\n"])
def test_missing_or_wrong_header_is_rejected(session, text):
    with pytest.raises(CatalogImportError) as err:
        import_catalog(session, text)
    assert err.value.errors[0].startswith("line 1:")


def test_money_is_written_the_local_way():
    assert format_money(Decimal("1299.5"), "EUR", "fr") == "1\u202f299,50 €"
    assert format_money(Decimal("1299.5"), "EUR", "en") == "€1,299.50"


def test_misspelled_names_are_found_in_a_generated_catalogue():
    """What bench/search.py times must also be right: the misspelled product is in the answer."""
    from bench.search import run

    [row] = run(sizes=(300,), queries=20)
    assert row["found_in_top8"] >= 0.9
