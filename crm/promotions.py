"""Promotions: which are running, which applies to a product, and the price after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm import desk_hours
from crm.models import Product, Promotion


@dataclass(frozen=True)
class Price:
    unit: Decimal  # what the client pays
    list_price: Decimal
    promotion: Promotion | None = None


def today() -> date:
    """Promotions run by the desk's calendar days (a promotion "until 31/12" ends at midnight in Paris)."""
    return desk_hours.today()


def running_promotions(session: Session, on: date | None = None) -> list[Promotion]:
    on = on or today()
    return list(session.scalars(
        select(Promotion)
        .where(Promotion.active.is_(True), Promotion.starts_on <= on, Promotion.ends_on >= on)
        .order_by(Promotion.ends_on, Promotion.id)
    ))


def applies_to(promotion: Promotion, product: Product) -> bool:
    if promotion.product_id is not None:
        return promotion.product_id == product.id
    if promotion.category:
        return promotion.category == product.category
    return True


def price_of(product: Product, promotions: list[Promotion]) -> Price:
    """The best running promotion for the product (the biggest discount) applied to its price."""
    best = max((p for p in promotions if applies_to(p, product)),
               key=lambda p: p.discount_percent, default=None)
    if best is None:
        return Price(product.price, product.price)
    unit = (product.price * (Decimal(100) - best.discount_percent) / Decimal(100)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP)
    return Price(unit, product.price, best)


def add_promotion(session: Session, *, title_fr: str, title_en: str, discount_percent: Decimal,
                  starts_on: date, ends_on: date, text_fr: str = "", text_en: str = "",
                  product_sku: str | None = None, category: str | None = None) -> Promotion:
    if not Decimal(0) < discount_percent < Decimal(100):
        raise ValueError("the discount must be between 0 and 100 %")
    if ends_on < starts_on:
        raise ValueError("the promotion must end on or after its first day")
    product_id = None
    if product_sku:
        product = session.scalar(select(Product).where(Product.sku == product_sku))
        if product is None:
            raise ValueError(f"no product with SKU {product_sku!r}")
        product_id = product.id
    promotion = Promotion(title_fr=title_fr, title_en=title_en, text_fr=text_fr, text_en=text_en,
                          discount_percent=discount_percent, starts_on=starts_on, ends_on=ends_on,
                          product_id=product_id, category=category or None, active=True)
    session.add(promotion)
    session.flush()
    return promotion
