"""Broadcasts in the CRM: segments (exact counts), consent at every step, delivery rows, claims,
outcomes, recovery after a crash, reports; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm import broadcasts
from crm.broadcasts import BroadcastError
from crm.clients import TelegramProfile, register_client
from crm.consent import set_consent
from crm.leads import save_lead
from crm.models import Broadcast, BroadcastDelivery, Client, ClientTag, Notification, Order, OrderLine, Product
from crm.staff import add_staff

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def shop(session):
    """Clients 1..8: 1-5 and 8 consent (8 then blocked the bot), 6 opted out, 7 never answered."""
    screen = Product(sku="ECR-1", name="Écran 24", category="Écrans", price=100, stock=50)
    paper = Product(sku="PAP-1", name="Ramette", category="Papeterie", price=5, stock=500)
    session.add_all([screen, paper])
    clients = {}
    for i, (lang, consent) in enumerate([("fr", True), ("en", True), ("fr", True), ("en", True), ("fr", True),
                                         ("fr", False), ("fr", None), ("fr", True)], start=1):
        client, _ = register_client(session, TelegramProfile(100 + i, f"Client{i}", "", None, lang))
        clients[i] = client
        if consent is not None:
            set_consent(session, client, True, "command")
            if consent is False:
                set_consent(session, client, False, "button")
    clients[8].unreachable = True
    clients[1].vip = True
    session.add(ClientTag(client_id=clients[2].id, tag="salon-2026"))
    session.flush()

    def order(client, product, days_ago):
        o = Order(client_id=client.id, delivery_address="x", total=product.price, created_at=NOW - timedelta(days=days_ago))
        session.add(o)
        session.flush()
        session.add(OrderLine(order_id=o.id, product_id=product.id, quantity=1, unit_price=product.price))

    order(clients[1], screen, 10)
    order(clients[2], paper, 200)
    order(clients[3], screen, 120)
    save_lead(session, clients[4], {"budget_eur": 25000, "role": "decision_maker", "timeline": "now",
                                    "need": "x", "size": "250+"}, complete=True)
    save_lead(session, clients[5], {"need": "x"}, complete=False)
    marketer = add_staff(session, 9009, "marketer", "Hugo Leroy")
    return session, clients, marketer


def ids(session, clients, spec):
    found = broadcasts.segment_client_ids(session, spec, NOW)
    return sorted(n for n, c in clients.items() if c.id in found)


@pytest.mark.parametrize("spec,expected", [
    ("", [1, 2, 3, 4, 5]),
    ("all", [1, 2, 3, 4, 5]),
    ("lang:fr", [1, 3, 5]),
    ("lang:en", [2, 4]),
    ("vip", [1]),
    ("tag:salon-2026", [2]),
    ("category:écrans", [1, 3]),
    ('category:"Papeterie"', [2]),
    ("product:ECR-1", [1, 3]),
    ("last_order>90", [2, 3]),
    ("last_order<30", [1]),
    ("no_order", [4, 5]),
    ("lead:hot", [4]),
    ("score>=70", [4]),
    ("score<70", [5]),
    ("lang:fr category:Écrans last_order>90", [3]),
])
def test_segments_are_exact_and_only_ever_consenting_reachable_clients(shop, spec, expected):
    session, clients, _ = shop
    assert ids(session, clients, spec) == expected


@pytest.mark.parametrize("spec", ["lang:de", "colour:blue", "score>>3", 'category:"unclosed'])
def test_a_wrong_segment_is_explained(shop, spec):
    session, _, _ = shop
    with pytest.raises(BroadcastError, match="segment") as refused:
        broadcasts.segment_client_ids(session, spec)
    assert refused.value.text("fr").startswith("segment : ") and refused.value.text("fr") != str(refused.value)


@pytest.mark.parametrize("text,error", [
    ("", "empty"), ("   ", "empty"), ("x" * 5000, "4,096"), ("<b>gras", "never closed"),
    ("<script>alert(1)</script>", "not allowed"), ("<b><i>x</b></i>", "does not close"),
    ("Soldes&nbsp;!", "Telegram does not know &nbsp;"), ('<span style="color:red">x</span>', "attribute 'style' of <span> is not allowed"),
    ("<span>x</span>", "only takes class"), ('<b class="big">x</b>', "attribute 'class' of <b> is not allowed"),
    ('<a href="javascript:alert(1)">x</a>', "needs href"), ("<a>x</a>", "needs href"),
    ("{first_name} " * 10 + "x" * 3500, r"with the first names \(10 × \{first_name\}, up to 64 characters each\), "
                                        "the message may reach 4150 characters"),
])
def test_bad_texts_are_refused_before_anything_is_sent(shop, text, error):
    session, _, marketer = shop
    with pytest.raises(BroadcastError, match=error):
        broadcasts.create(session, marketer, text)


def test_what_telegram_accepts_passes_the_check(shop):
    session, _, marketer = shop
    broadcast = broadcasts.create(session, marketer, 'Martin & Fils : <span class="tg-spoiler">-30&#160;%</span> '
                                  '<a href="https://example.org/soldes">ici</a> &lt;3 {first_name}')
    assert broadcast.text_fr.startswith("Martin &amp; Fils : "), "a bare & is written for Telegram"
    assert broadcasts.render(broadcast, "fr", "Zoé & Léa" + "x" * 100).endswith("&lt;3 Zoé &amp; Léa" + "x" * 55)
    with pytest.raises(BroadcastError, match="Telegram accepts 1024 at most"):  # with a photo: a caption
        broadcasts.create(session, marketer, "{first_name} " + "x" * 1000, photo="https://example.org/p.jpg")


def test_a_broadcast_from_start_to_report(shop):
    session, clients, marketer = shop
    broadcast = broadcasts.create(session, marketer, "Bonjour {prénom}, <b>-20 %</b> sur les écrans !",
                                  "Hello {first_name}, <b>20% off</b> screens!", "")
    broadcasts.schedule(session, broadcast, NOW)
    assert broadcasts.start_due(session, NOW - timedelta(minutes=1)) == [], "not yet"
    assert broadcasts.start_due(session, NOW) == [broadcast.id]
    assert broadcasts.start_due(session, NOW) == [], "started once"
    jobs = []
    set_consent(session, clients[3], False, "command")  # opts out after the start
    while (job := broadcasts.claim_next(session, NOW)) is not None:
        jobs.append(job)
    assert {j.chat_id for j in jobs} == {101, 102, 104, 105}
    by_chat = {j.chat_id: j for j in jobs}
    assert by_chat[101].text == "Bonjour Client1, <b>-20 %</b> sur les écrans !"
    assert by_chat[102].text == "Hello Client2, <b>20% off</b> screens!"
    broadcasts.mark_sent(session, by_chat[101].delivery_id)
    broadcasts.mark_sent(session, by_chat[101].delivery_id)  # twice: counted once
    broadcasts.mark_blocked(session, by_chat[102].delivery_id, "Forbidden: bot was blocked by the user")
    broadcasts.retry_later(session, by_chat[104].delivery_id, "Bad Gateway", NOW)
    assert broadcasts.claim_next(session, NOW) is None, "not before its backoff"
    again = broadcasts.claim_next(session, NOW + timedelta(seconds=3))
    assert again.chat_id == 104
    broadcasts.mark_sent(session, again.delivery_id)
    assert broadcasts.recover(session, NOW + timedelta(seconds=30)) == 0, "a live claim is left alone"
    assert broadcasts.recover(session, NOW + timedelta(minutes=5)) == 1, "105 died with its sender"
    assert broadcasts.follow_up(session, NOW + timedelta(minutes=5)) == [broadcast.id]
    numbers = broadcasts.counts(session, broadcast.id)
    assert (numbers["sent"], numbers["blocked"], numbers["unconfirmed"], numbers["opted_out"], numbers["total"]) == (
        2, 1, 1, 1, 5)
    assert session.get(Client, clients[2].id).unreachable
    report = session.scalars(select(Notification.text).where(Notification.chat_id == 9009)).all()[-1]
    assert report.startswith(f"📣 Diffusion n° {broadcast.id} terminée : 2 envoyés, 0 en échec, 1 bloqués")


def test_two_senders_finishing_at_once_report_once(engine):
    from crm.db import unit_of_work
    from tests.harness import at_once

    with unit_of_work(engine) as s:
        marketer = add_staff(s, 9009, "marketer", "Hugo Leroy")
        client, _ = register_client(s, TelegramProfile(101, "Client1"))
        set_consent(s, client, True, "command")
        broadcast = broadcasts.create(s, marketer, "Promo")
        broadcasts.schedule(s, broadcast, None)
        assert broadcasts.start_due(s) == [broadcast.id]
        broadcasts.mark_sent(s, broadcasts.claim_next(s).delivery_id)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)

    def follow(_):
        with unit_of_work(engine) as s:
            return broadcasts.follow_up(s, later)

    assert sorted(at_once(2, follow)) == [[], [broadcast.id]]
    with unit_of_work(engine) as s:
        reports = s.scalars(select(Notification.text).where(Notification.chat_id == 9009)).all()
    assert len([r for r in reports if "terminée" in r]) == 1


def test_retries_are_bounded(shop):
    session, clients, marketer = shop
    broadcast = broadcasts.create(session, marketer, "Promo", segment="vip")
    broadcasts.schedule(session, broadcast, NOW)
    broadcasts.start_due(session, NOW)
    moment = NOW
    for _ in range(broadcasts.MAX_ATTEMPTS):
        moment += timedelta(minutes=2)
        job = broadcasts.claim_next(session, moment)
        broadcasts.retry_later(session, job.delivery_id, "Internal Server Error", moment)
    row = session.scalar(select(BroadcastDelivery).where(BroadcastDelivery.broadcast_id == broadcast.id))
    assert (row.status, row.attempts) == ("failed", broadcasts.MAX_ATTEMPTS)


def test_cancel_and_an_opt_out_before_the_start(shop):
    session, clients, marketer = shop
    later = broadcasts.create(session, marketer, "Soldes", segment="lang:fr")
    broadcasts.schedule(session, later, NOW + timedelta(days=1))
    set_consent(session, clients[1], False, "button")  # between scheduling and sending
    broadcasts.start_due(session, NOW + timedelta(days=1))
    recipients = set(session.scalars(select(BroadcastDelivery.client_id).where(BroadcastDelivery.broadcast_id == later.id)))
    assert recipients == {clients[3].id, clients[5].id}
    broadcasts.cancel(session, later.id)
    assert broadcasts.claim_next(session, NOW + timedelta(days=1)) is None
    assert broadcasts.counts(session, later.id)["cancelled"] == 2
    with pytest.raises(BroadcastError, match="already cancelled"):
        broadcasts.cancel(session, later.id)
    with pytest.raises(BroadcastError):
        broadcasts.cancel(session, 424242)
    assert session.get(Broadcast, later.id).state == "cancelled"


def test_the_composer_takes_each_button_at_its_step_only_from_the_drafts_author(shop):
    session, _, marketer = shop
    other = add_staff(session, 9010, "marketer", "Léa Martin")
    draft = broadcasts.start_draft(session, marketer.id)
    assert broadcasts.waiting_draft(session, marketer.id) == draft and draft.step == "text_fr"
    assert broadcasts.waiting_draft(session, other.id) is None
    assert not broadcasts.accepts(session, draft.id, marketer.id, "ok"), "confirm before any text"
    assert broadcasts.accepts(session, draft.id, marketer.id, "drop"), "dropped at any step"
    assert broadcasts.save_text(session, draft.id, "text_fr", "<b>Promo</b> -20 %") == "text_en"
    assert broadcasts.accepts(session, draft.id, marketer.id, "same")
    assert not broadcasts.accepts(session, draft.id, other.id, "same"), "another marketer's draft"
    assert not broadcasts.accepts(session, draft.id, marketer.id, "seg:vip"), "not at the segment yet"
    broadcasts.set_step(session, draft.id, "segment")
    preview = broadcasts.choose_segment(session, draft.id, "vip", "fr")
    assert (preview.text, preview.count) == ("<b>Promo</b> -20 %", 1)
    assert broadcasts.waiting_draft(session, marketer.id) is None, "a button answers next, not a message"
    assert not broadcasts.accepts(session, draft.id, marketer.id, "seg:all"), "the segment is chosen"
    assert broadcasts.choose_time(session, draft.id, None) == 1
    assert broadcasts.accepts(session, draft.id, marketer.id, "ok")
    broadcasts.confirm(session, draft.id)
    assert not broadcasts.accepts(session, draft.id, marketer.id, "ok"), "confirmed once"
    assert not broadcasts.accepts(session, 424242, marketer.id, "cancel"), "an unknown broadcast"
    second = broadcasts.start_draft(session, marketer.id)
    third = broadcasts.start_draft(session, marketer.id)
    assert session.get(Broadcast, second.id).state == "cancelled", "one draft at a time"
    assert broadcasts.waiting_draft(session, marketer.id) == third
