"""Business rules of orders, promotions, complaints, the outbox and consent, on each database."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from crm import clock
from crm.clients import TelegramProfile, register_client
from crm.complaints import (
    ComplaintError,
    open_complaint,
    parse_complaint_number,
    rate_complaint,
    resolve_complaint,
)
from crm.consent import has_consent, set_consent
from crm.db import unit_of_work
from crm.demo import load_demo_if_empty
from crm.models import Client, Notification, Product
from crm.orders import (
    NotEnoughStock,
    OrderError,
    cancel_order,
    cancellable,
    find_client_order,
    last_address,
    parse_order_number,
    place_order,
    set_order_status,
)
from crm.outbox import claim_due, enqueue, failures, mark_blocked, mark_failed, mark_sent, pending, recover
from crm.promotions import add_promotion, price_of, running_promotions
from crm.promotions import today as promotions_today
from crm.staff import add_staff
from tests.harness import at_once


@pytest.fixture
def shop(session):
    load_demo_if_empty(session)
    alice, _ = register_client(session, TelegramProfile(1001, "Alice", language_code="fr"))
    bob, _ = register_client(session, TelegramProfile(1002, "Bob", language_code="en"))
    return session, alice, bob


def product(session, sku):
    return session.scalar(select(Product).where(Product.sku == sku))


def test_an_order_takes_the_stock_and_gets_a_readable_number(shop):
    session, alice, _ = shop
    m404 = product(session, "IMP-HP-M404")
    order = place_order(session, alice, m404.id, 3, "12 rue de la Paix, 75002 Paris")
    assert order.number == f"CMD-{order.id:06d}" and order.total == Decimal("867.00")
    assert product(session, "IMP-HP-M404").stock == 11
    assert last_address(session, alice) == "12 rue de la Paix, 75002 Paris"


def test_more_than_the_stock_is_refused_and_changes_nothing(shop):
    session, alice, _ = shop
    xerox = product(session, "IMP-XER-C235")
    with pytest.raises(NotEnoughStock) as err:
        place_order(session, alice, xerox.id, 4, "1 place Bellecour, Lyon")
    assert err.value.available == 3 and product(session, "IMP-XER-C235").stock == 3
    for bad in (0, -3, 10**9):
        with pytest.raises(OrderError):
            place_order(session, alice, xerox.id, bad, "1 place Bellecour, Lyon")


def test_another_clients_order_is_not_found(shop):
    session, alice, bob = shop
    order = place_order(session, alice, product(session, "PER-LOG-MXM3").id, 1, "Adresse d'Alice 1")
    assert find_client_order(session, alice, order.number) is order
    assert find_client_order(session, bob, order.number) is None
    assert find_client_order(session, bob, "CMD-999999") is None


def test_cancel_until_shipped_restores_the_stock(shop):
    session, alice, _ = shop
    mouse = product(session, "PER-LOG-MXM3")
    order = place_order(session, alice, mouse.id, 5, "Adresse d'Alice 1")
    cancel_order(session, order)
    assert order.status == "cancelled" and product(session, "PER-LOG-MXM3").stock == 45
    shipped = place_order(session, alice, mouse.id, 1, "Adresse d'Alice 1")
    set_order_status(session, shipped.number, "shipped")
    assert not cancellable(shipped)
    with pytest.raises(OrderError):
        cancel_order(session, shipped)


def test_a_status_change_tells_the_client_in_their_language(shop):
    session, _, bob = shop
    order = place_order(session, bob, product(session, "PER-LOG-MXM3").id, 1, "10 Downing Street")
    set_order_status(session, order.number, "shipped")
    [note] = pending(session)
    assert note.chat_id == 1002 and note.text == f"Your order {order.number} is now shipped."
    with pytest.raises(OrderError):
        set_order_status(session, order.number, "lost")
    with pytest.raises(OrderError):
        set_order_status(session, "CMD-424242", "shipped")


@pytest.mark.parametrize("text,number", [("où en est CMD-000123 ?", "CMD-000123"), ("cmd 45", "CMD-000045"),
                                         ("ma commande cmd-7", "CMD-000007"), ("rien", None)])
def test_order_numbers_are_read_loosely(text, number):
    assert parse_order_number(text) == number


def test_the_best_running_promotion_applies(shop):
    session, alice, _ = shop
    today = promotions_today()  # the desk's calendar day, not the machine's
    add_promotion(session, title_fr="Rentrée", title_en="Back to school", discount_percent=Decimal(10),
                  starts_on=today - timedelta(days=1), ends_on=today + timedelta(days=10), category="Imprimantes")
    add_promotion(session, title_fr="M404", title_en="M404", discount_percent=Decimal(15),
                  starts_on=today, ends_on=today, product_sku="IMP-HP-M404")
    add_promotion(session, title_fr="Passée", title_en="Past", discount_percent=Decimal(50),
                  starts_on=today - timedelta(days=10), ends_on=today - timedelta(days=1))
    promos = running_promotions(session)
    titles = [p.title_fr for p in promos]
    assert {"M404", "Rentrée", "Semaine de la souris"} <= set(titles) and "Passée" not in titles
    assert price_of(product(session, "IMP-HP-M404"), promos).unit == Decimal("245.65")
    assert price_of(product(session, "IMP-CAN-LBP233"), promos).unit == Decimal("197.10")
    assert price_of(product(session, "PER-LOG-MXM3"), promos).unit == Decimal("84.15"), "the demo's mouse week"
    assert price_of(product(session, "ORD-LEN-T14"), promos).promotion is None
    order = place_order(session, alice, product(session, "IMP-HP-M404").id, 2, "Adresse d'Alice 1")
    assert order.total == Decimal("491.30")
    with pytest.raises(ValueError):
        add_promotion(session, title_fr="x", title_en="x", discount_percent=Decimal(120),
                      starts_on=today, ends_on=today)


def test_complaint_severity_follows_the_documented_rules(shop):
    session, alice, bob = shop
    add_staff(session, 9001, "manager", "Claire")
    add_staff(session, 9002, "marketer", "Hugo")
    normal = open_complaint(session, alice, "delivery", "Le carton était abîmé.")
    assert (normal.severity, normal.number) == ("normal", f"REC-{normal.id:06d}")
    urgent = open_complaint(session, alice, "service", "C'est urgent, personne ne répond !")
    assert urgent.severity == "high" and urgent.severity_reasons == "urgent_words"
    legal = open_complaint(session, bob, "product", "The charger caught fire, my lawyer will call you")
    assert legal.severity == "critical"
    repeated = open_complaint(session, alice, "invoice", "Encore une erreur sur la facture, inadmissible")
    assert repeated.severity == "critical" and set(repeated.severity_reasons.split(",")) == {"urgent_words", "repeated"}
    alerts = [n for n in pending(session) if n.chat_id == 9001]
    assert len(alerts) == 3, "every severe complaint alerts the managers, never the marketers"
    assert all(n.chat_id != 9002 for n in pending(session))


def test_a_complaint_on_someone_elses_order_is_refused(shop):
    session, alice, bob = shop
    order = place_order(session, alice, product(session, "PER-LOG-MXM3").id, 1, "Adresse d'Alice 1")
    with pytest.raises(ComplaintError):
        open_complaint(session, bob, "product", "broken", order)


def test_resolution_asks_for_a_score_that_only_the_client_can_give(shop):
    session, alice, bob = shop
    complaint = open_complaint(session, alice, "delivery", "Colis en retard")
    assert rate_complaint(session, 1001, complaint.id, 5) is None, "not resolved yet"
    resolve_complaint(session, complaint.number, "Un nouveau colis part aujourd'hui.")
    [note] = pending(session)
    assert note.text.startswith(f"Votre réclamation {complaint.number} est résolue : Un nouveau colis")
    assert [(b["action"], b["args"]) for b in note.buttons] == [("rate_complaint", [complaint.id, n]) for n in range(1, 6)]
    assert rate_complaint(session, 1002, complaint.id, 1) is None, "another client"
    assert rate_complaint(session, 1001, complaint.id, 9) is None, "tampered"
    assert rate_complaint(session, 1001, complaint.id, 4).satisfaction == 4
    assert parse_complaint_number("où en est la REC-12 ?") == "REC-000012"
    with pytest.raises(ComplaintError):
        resolve_complaint(session, complaint.number, "again")


def test_outbox_gives_up_on_blocked_clients_and_retries_others(shop):
    session, alice, _ = shop
    order = place_order(session, alice, product(session, "PER-LOG-MXM3").id, 1, "Adresse d'Alice 1")
    set_order_status(session, order.number, "preparing")
    set_order_status(session, order.number, "shipped")
    first, second = claim_due(session)
    assert claim_due(session) == [], "claimed rows are nobody else's"
    mark_blocked(session, first.id, "Forbidden: bot was blocked by the user")
    later = clock.now()
    for attempt in range(1, 5):
        mark_failed(session, second.id, "Bad Gateway", retry=True, now=later)
        assert pending(session, now=later) == [], "not before its back-off"
        later += timedelta(seconds=61)
        [again] = claim_due(session, now=later)
        assert again.id == second.id and again.attempts == attempt
    mark_failed(session, second.id, "Bad Gateway", retry=True, now=later)
    assert pending(session, now=later + timedelta(days=1)) == [], "given up after MAX_ATTEMPTS"
    session.expire_all()
    assert [session.get(Notification, n).status for n in (first.id, second.id)] == ["blocked", "failed"]
    assert [n.id for n in failures(session)] == [second.id]


def test_a_message_telegram_refuses_is_failed_with_its_reason_not_blocked(shop):
    session, alice, _ = shop
    enqueue(session, alice.telegram_id, "x" * 5000)
    [row] = claim_due(session)
    mark_failed(session, row.id, "Message is too long")
    session.refresh(row)
    assert (row.status, row.last_error) == ("failed", "Message is too long")
    assert not session.get(Client, alice.id).unreachable


def test_a_sender_that_died_mid_send_leaves_its_row_unconfirmed_never_resent(shop):
    session, alice, _ = shop
    enqueue(session, alice.telegram_id, "Votre commande est expédiée.")
    [row] = claim_due(session)
    assert recover(session) == 0, "a live claim is not taken back"
    assert recover(session, now=clock.now() + timedelta(minutes=2)) == 1
    session.refresh(row)
    assert row.status == "unconfirmed" and pending(session) == [] and failures(session) == [row]


def test_two_senders_against_one_database_send_each_row_once(engine):
    with unit_of_work(engine) as s:
        client, _ = register_client(s, TelegramProfile(3101, "Alice"))
        for i in range(200):
            enqueue(s, client.telegram_id, f"message {i}")
    sent: list[int] = []
    lock = threading.Lock()

    def sender(i):
        while True:
            with unit_of_work(engine) as s:
                rows = [n.id for n in claim_due(s, limit=7)]
            if not rows:
                return
            for row in rows:  # "sending" happens here, outside any transaction
                with lock:
                    sent.append(row)
                with unit_of_work(engine) as s:
                    mark_sent(s, row)

    assert at_once(2, sender) == [None, None]
    assert len(sent) == 200 and len(set(sent)) == 200, "every row once, none twice"
    with unit_of_work(engine) as s:
        assert {n.status for n in s.scalars(select(Notification))} == {"sent"}


def test_consent_history(shop):
    session, alice, _ = shop
    assert not has_consent(session, alice)
    assert set_consent(session, alice, True, "command")
    assert not set_consent(session, alice, True, "conversation"), "no duplicate row"
    assert set_consent(session, alice, False, "button") and not has_consent(session, alice)


def test_two_clients_racing_for_the_last_item_never_both_get_it(engine):
    """Run on PostgreSQL (and SQLite): many threads, each its own transaction."""
    with unit_of_work(engine) as session:
        load_demo_if_empty(session)
        target = product(session, "ECR-LG-27UP")
        target.stock = 1
        product_id = target.id
        for i in range(8):
            register_client(session, TelegramProfile(2000 + i, f"Client {i}"))
    results, barrier = [], threading.Barrier(8)

    def buy(i):
        barrier.wait()
        try:
            with unit_of_work(engine) as s:
                client, _ = register_client(s, TelegramProfile(2000 + i, f"Client {i}"))
                place_order(s, client, product_id, 1, "1 rue du Test, Lyon")
            results.append("ok")
        except NotEnoughStock:
            results.append("refused")

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7
    with unit_of_work(engine) as session:
        assert product(session, "ECR-LG-27UP").stock == 0
