"""Demo data: the catalogue of an office and IT supplier, loaded into an empty database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm.catalog import import_catalog
from crm.models import Product

DEMO_CATALOG = Path(__file__).resolve().parent / "demo_catalog.csv"


def load_demo_if_empty(session: Session) -> bool:
    """Load the demo catalogue when there is no product at all. Returns whether it loaded."""
    if session.scalar(select(func.count(Product.id))):
        return False
    import_catalog(session, DEMO_CATALOG)
    return True
