"""Orders: placing one (stock taken atomically), following and cancelling one's own, and staff
changing the status (the client is told in their language)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm.company import company_profile
from crm.i18n import Refusal, Texts, format_money
from crm.models import ORDER_STATUSES, Client, Order, OrderLine, Product
from crm.outbox import enqueue
from crm.promotions import price_of, running_promotions

ORDER_NUMBER = re.compile(r"\bCMD[-\s]?0*(\d{1,9})\b", re.IGNORECASE)
MAX_QUANTITY = 100_000

STATUS_LABELS = Texts("orders.status")
TEXTS = Texts("orders")


ERRORS = Texts("orders.error")


class OrderError(Refusal):
    texts = ERRORS


class NotEnoughStock(OrderError):
    def __init__(self, available: int):
        super().__init__("stock", available=available)
        self.available = available


def order_number(order_id: int) -> str:
    return f"CMD-{order_id:06d}"


def parse_order_number(text: str | None) -> str | None:
    match = ORDER_NUMBER.search(text or "")
    return order_number(int(match.group(1))) if match else None


def status_label(status: str, language: str) -> str:
    return STATUS_LABELS.t(status, language)


@dataclass(frozen=True)
class Quote:
    product: Product
    quantity: int
    unit_price: Decimal
    total: Decimal
    promotion_title: str | None


def quote(session: Session, product: Product, quantity: int, language: str) -> Quote:
    price = price_of(product, running_promotions(session))
    title = None
    if price.promotion is not None:
        title = price.promotion.title_en if language == "en" else price.promotion.title_fr
    return Quote(product, quantity, price.unit, price.unit * quantity, title)


def place_order(session: Session, client: Client, product_id: int, quantity: int, address: str) -> Order:
    """Take the stock and record the order in one transaction. The stock decrement is a single
    conditional UPDATE, so two clients racing for the last item can never both get it."""
    if not 0 < quantity <= MAX_QUANTITY:
        raise OrderError("quantity")
    product = session.get(Product, product_id)
    if product is None or not product.active:
        raise OrderError("unavailable")
    taken = session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock >= quantity)
        .values(stock=Product.stock - quantity)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        session.refresh(product)
        raise NotEnoughStock(product.stock)
    session.refresh(product)
    priced = quote(session, product, quantity, client.language)
    order = Order(client_id=client.id, status="confirmed", delivery_address=address.strip(),
                  total=priced.total, currency=product.currency)
    session.add(order)
    session.flush()
    order.number = order_number(order.id)
    session.add(OrderLine(order_id=order.id, product_id=product.id, quantity=quantity,
                          unit_price=priced.unit_price))
    session.flush()
    return order


def last_address(session: Session, client: Client) -> str | None:
    return session.scalar(
        select(Order.delivery_address).where(Order.client_id == client.id)
        .order_by(Order.id.desc()).limit(1)
    )


def client_orders(session: Session, client: Client, limit: int = 5) -> list[Order]:
    return list(session.scalars(
        select(Order).where(Order.client_id == client.id).order_by(Order.id.desc()).limit(limit)
    ))


def client_orders_naming(session: Session, client: Client, text: str, limit: int = 5) -> list[Order]:
    """The client's recent orders that hold a product the text names ("ma commande de souris",
    "the Dell screen I received is broken"); none when the text names no product for sure. Inactive
    products count: an order keeps what it was."""
    from crm.catalog import search_products

    result = search_products(session, text, limit=50, strict=False)
    if not result.products or not result.strong:
        return []
    ids = [p.id for p in result.products]
    return list(session.scalars(
        select(Order).where(Order.client_id == client.id,
                            Order.id.in_(select(OrderLine.order_id).where(OrderLine.product_id.in_(ids))))
        .order_by(Order.id.desc()).limit(limit)))


def find_client_order(session: Session, client: Client, number: str) -> Order | None:
    """The client's own order by number; another client's order is simply not found."""
    return session.scalar(select(Order).where(Order.number == number, Order.client_id == client.id))


def order_lines(session: Session, order: Order) -> list[tuple[OrderLine, Product]]:
    return list(session.execute(
        select(OrderLine, Product).join(Product, Product.id == OrderLine.product_id)
        .where(OrderLine.order_id == order.id).order_by(OrderLine.id)
    ).tuples())


def cancellable(order: Order) -> bool:
    return order.status in company_profile().get("orders", {}).get(
        "cancellable_statuses", ["confirmed", "preparing"])


def cancel_order(session: Session, order: Order) -> None:
    """Cancel and give the stock back. The caller checked `cancellable` and ownership."""
    if not cancellable(order):
        raise OrderError("not_cancellable", number=order.number, status=order.status)
    statuses = company_profile().get("orders", {}).get("cancellable_statuses", ["confirmed", "preparing"])
    # Conditional: a client's cancel and a manager's at the same instant give the stock back once.
    won = session.execute(update(Order).where(Order.id == order.id, Order.status.in_(statuses))
                          .values(status="cancelled").execution_options(synchronize_session=False)).rowcount
    session.refresh(order)
    if won != 1:
        raise OrderError("not_cancellable", number=order.number, status=order.status)
    for line, _ in order_lines(session, order):
        session.execute(
            update(Product).where(Product.id == line.product_id)
            .values(stock=Product.stock + line.quantity).execution_options(synchronize_session="fetch")
        )
    session.flush()


def set_order_status(session: Session, number: str, status: str) -> Order:
    """Staff change an order's status; the client is told at once, in their language."""
    if status not in ORDER_STATUSES:
        raise OrderError("status", statuses=", ".join(ORDER_STATUSES), status=status)
    order = session.scalar(select(Order).where(Order.number == number))
    if order is None:
        raise OrderError("unknown", number=number)
    if order.status == status:
        return order
    if order.status == "cancelled":
        raise OrderError("cancelled", number=number)
    if status == "cancelled":
        cancel_order(session, order)  # gives the stock back; refused once shipped
    else:
        order.status = status
    client = session.get(Client, order.client_id)
    enqueue(session, client.telegram_id, TEXTS.t(
        "status_changed", client.language, number=order.number,
        status=status_label(status, client.language)), client_id=client.id)
    session.flush()
    return order


def order_summary_line(order: Order, language: str) -> str:
    total = format_money(order.total, order.currency, language)
    return f"{order.number} — {order.created_at:%d/%m/%Y} — {total} — {status_label(order.status, language)}"
