"""Demo data: the catalogue of an office and IT supplier, loaded into an empty database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.catalog import import_catalog
from crm.models import Product
from crm.promotions import add_promotion, today

DEMO_CATALOG = Path(__file__).resolve().parent / "demo_catalog.csv"


def load_demo_if_empty(session: Session) -> bool:
    """Load the demo catalogue, and two promotions running from today, when there is no product
    at all. Returns whether it loaded."""
    if session.scalar(select(func.count(Product.id))):
        return False
    import_catalog(session, DEMO_CATALOG)
    start = today()
    add_promotion(session, title_fr="Semaine de la souris", title_en="Mouse week",
                  text_fr="La souris ergonomique la plus demandée.", text_en="Our most requested ergonomic mouse.",
                  discount_percent=Decimal(15), starts_on=start, ends_on=start + timedelta(days=30),
                  product_sku="PER-LOG-MXM3")
    add_promotion(session, title_fr="Mobilier de bureau", title_en="Office furniture",
                  text_fr="Chaises, bureaux et rangements.", text_en="Chairs, desks and storage.",
                  discount_percent=Decimal(10), starts_on=start, ends_on=start + timedelta(days=30),
                  category="Mobilier de bureau")
    return True
