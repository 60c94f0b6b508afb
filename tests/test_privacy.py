"""Clients' personal data (crm/privacy.py, crm/trackers.py), on SQLite and PostgreSQL: a client's
export holds every category and nothing of anyone else; after an erasure no table holds their
name, phone, e-mail, address or Telegram id, and the orders still add up for accounting."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from crm import privacy
from crm.clients import TelegramProfile, record_message, register_client
from crm.models import (
    Base,
    Broadcast,
    BroadcastDelivery,
    ButtonPayload,
    ClientNote,
    ClientTag,
    Complaint,
    Consent,
    Erasure,
    Handoff,
    HandoffNotice,
    InboundUpdate,
    Lead,
    Meeting,
    Notification,
    Order,
    OrderLine,
    Product,
    RelayedMessage,
    StaffTopic,
)
from crm.outbox import enqueue
from crm.staff import add_staff

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)
ELODIE = dict(telegram_id=555123456, first="Élodie", last="Martin", username="elomartin", phone="+33 6 12 34 56 78",
              email="elodie.martin@exemple.fr", company="Martin Conseil", address="12 rue des Lilas, 69003 Lyon")
JEAN = dict(telegram_id=777000111, first="Jean", last="Autre", username="jeanautre", phone="+33 7 99 88 77 66",
            email="jean.autre@exemple.fr", company="Autre SA", address="3 place Bellecour, 69002 Lyon")


def a_client_with_everything(session, who: dict, product: Product, manager, broadcast: Broadcast):
    client, _ = register_client(session, TelegramProfile(who["telegram_id"], who["first"], who["last"],
                                                          who["username"], "fr"))
    client.phone, client.email, client.company, client.vip = who["phone"], who["email"], who["company"], True
    client.account_manager_id = manager.id
    session.add(ClientTag(client_id=client.id, tag="salon-2026"))
    session.add(Consent(client_id=client.id, granted=True, source="command", created_at=NOW - timedelta(days=30)))
    order = Order(number=f"CMD-{who['telegram_id'] % 1000:06d}", client_id=client.id, status="delivered",
                  delivery_address=who["address"], total=Decimal("59.80"))
    session.add(order)
    session.flush()
    session.add(OrderLine(order_id=order.id, product_id=product.id, quantity=2, unit_price=Decimal("29.90")))
    session.add(Complaint(number=f"REC-{who['telegram_id'] % 1000:06d}", client_id=client.id, order_id=order.id,
                          category="delivery", description=f"Colis abîmé, appelez-moi au {who['phone']}"))
    lead = Lead(client_id=client.id, company=who["company"], need="20 écrans", phone=who["phone"], email=who["email"])
    session.add(lead)
    session.flush()
    session.add(Meeting(client_id=client.id, manager_id=manager.id, lead_id=lead.id, starts_at=NOW + timedelta(days=2),
                        ends_at=NOW + timedelta(days=2, minutes=30), slot_key=f"{manager.id}:{who['telegram_id']}"))
    for direction, said in (("in", f"Bonjour, c'est {who['first']} {who['last']}, mon mail {who['email']}"),
                            ("out", f"Bonjour {who['first']} !")):
        record_message(session, client, direction, said)
    handoff = Handoff(client_id=client.id, reason="request", detail=f"{who['first']} veut un devis", status="active",
                      manager_id=manager.id, satisfaction=None, callback_phone=who["phone"])
    session.add(handoff)
    session.flush()
    session.add(HandoffNotice(handoff_id=handoff.id, chat_id=manager.telegram_id, message_id=41))
    session.add(RelayedMessage(handoff_id=handoff.id, staff_chat_id=manager.telegram_id, staff_message_id=42))
    session.add(StaffTopic(client_id=client.id, chat_id=-1001234567890, thread_id=who["telegram_id"] % 1000))
    session.add(ClientNote(client_id=client.id, staff_id=manager.id, text=f"Rappeler {who['first']} lundi"))
    enqueue(session, who["telegram_id"], "Votre commande est livrée.", client_id=client.id)
    enqueue(session, manager.telegram_id, f"🔔 {who['first']} {who['last']}, {who['phone']}", handoff_id=handoff.id,
            client_id=client.id)
    session.add(ButtonPayload(token=f"tok{who['telegram_id']}", chat_id=who["telegram_id"], title="Oui",
                              payload="/affirm"))
    session.add(InboundUpdate(update_id=who["telegram_id"], chat_id=who["telegram_id"],
                              payload={"message": {"text": f"je suis {who['first']} {who['last']}"}}))
    session.add(BroadcastDelivery(broadcast_id=broadcast.id, client_id=client.id, status="pending"))
    session.flush()
    return client


@pytest.fixture
def two_clients(session):
    return build_two_clients(session)


@pytest.fixture
def saved_clients(engine):
    """The two clients, committed (for what works in its own units of work)."""
    from crm.db import unit_of_work

    with unit_of_work(engine) as s:
        return build_two_clients(s)


def build_two_clients(session):
    manager = add_staff(session, 42, "manager", "Claire Dubois")
    product = Product(sku="ECR-24", name="Écran 24 pouces", category="Écrans", price=Decimal("29.90"), stock=5)
    broadcast = Broadcast(text_fr="Promo", state="running")
    session.add_all([product, broadcast])
    session.flush()
    elodie = a_client_with_everything(session, ELODIE, product, manager, broadcast)
    jean = a_client_with_everything(session, JEAN, product, manager, broadcast)
    return elodie, jean


def test_an_export_holds_every_category_and_nothing_of_another_client(session, two_clients):
    elodie, jean = two_clients
    document = privacy.export_client(session, elodie, NOW)
    assert document["format"] == privacy.EXPORT_FORMAT and document["exported_at"] == NOW.isoformat()
    profile = document["profile"]
    assert (profile["first_name"], profile["phone"], profile["email"], profile["vip"], profile["account_manager"]) \
        == ("Élodie", ELODIE["phone"], ELODIE["email"], True, "Claire Dubois")
    for category in ("consents", "orders", "complaints", "leads", "meetings", "messages", "handoffs", "tags", "notes",
                     "notifications", "promotions"):
        assert document[category], f"{category} is exported"
    assert document["orders"][0]["delivery_address"] == ELODIE["address"]
    assert document["orders"][0]["lines"] == [dict(sku="ECR-24", product="Écran 24 pouces", quantity=2,
                                                   unit_price="29.90")]
    assert document["consents"][0]["granted"] is True and document["consents"][0]["at"].startswith("2026-11-03")
    assert document["handoffs"][0]["callback_phone"] == ELODIE["phone"]
    assert document["leads"][0]["history"] == [], "no status change recorded for this lead"
    assert {n["to_client"] for n in document["notifications"]} == {True, False}, "to them, and about them"
    assert document["notes"] == [dict(by="Claire Dubois", text="Rappeler Élodie lundi", at=document["notes"][0]["at"])]
    dumped = json.dumps(document, ensure_ascii=False)
    for value in (JEAN["first"], JEAN["last"], JEAN["phone"], JEAN["email"], JEAN["address"], str(JEAN["telegram_id"])):
        assert value not in dumped, value


def test_an_export_of_a_client_with_nothing_is_a_valid_document(session):
    client, _ = register_client(session, TelegramProfile(31337, "Nouveau", "", None, "en"))
    document = privacy.export_client(session, client, NOW)
    assert document["profile"]["first_name"] == "Nouveau"
    assert all(document[c] == [] for c in ("orders", "messages", "leads", "consents", "notes"))


def scan(session, needles: list[str], telegram_id: int) -> list[str]:
    """Every table and column holding one of `needles` (any case) or the Telegram id."""
    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).mappings():
            for column, value in row.items():
                if value is None:
                    continue
                if isinstance(value, int) and not isinstance(value, bool):
                    if value == telegram_id:
                        found.append(f"{table.name}.{column} = {value}")
                    continue
                written = (json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str)
                           else value).casefold()
                found += [f"{table.name}.{column} holds {n!r}" for n in needles
                          if n.casefold() in written or str(telegram_id) in written]
    return found


def test_after_an_erasure_nothing_identifies_the_client_and_the_orders_still_add_up(session, two_clients):
    elodie, jean = two_clients
    totals = session.execute(text("select count(*), sum(total) from orders")).one()
    needles = [ELODIE[k] for k in ("first", "last", "username", "phone", "email", "company", "address")]
    assert scan(session, needles, ELODIE["telegram_id"]), "the scan finds them before"
    erased = privacy.erase_client(session, elodie, "cli", NOW)
    assert erased.managers == (42,), "the manager holding the conversation is to be told"
    assert erased.counts["messages"] == 2 and erased.counts["orders_kept"] == 1 and erased.counts["handoffs"] == 1
    assert erased.counts["notifications"] == 2 and erased.counts["promotions_pending"] == 1
    assert scan(session, needles, ELODIE["telegram_id"]) == []
    assert session.execute(text("select count(*), sum(total) from orders")).one() == totals, "accounting intact"
    kept = session.scalar(select(Order).where(Order.client_id == elodie.id))
    assert (kept.number, kept.total, kept.delivery_address) == ("CMD-000456", Decimal("59.80"), "")
    [withdrawal] = session.scalars(select(Consent).where(Consent.client_id == elodie.id)).all()
    assert (withdrawal.granted, withdrawal.source) == (False, "erasure"), "the proof that promotions stopped"
    delivery = session.scalar(select(BroadcastDelivery).where(BroadcastDelivery.client_id == elodie.id))
    assert delivery.status == "cancelled", "a running broadcast never reaches them"
    [log] = session.scalars(select(Erasure)).all()
    assert (log.by, log.client_ref, log.categories["messages"]) == ("cli", elodie.id, 2)
    # Jean's file is whole.
    assert privacy.export_client(session, jean, NOW)["messages"] and scan(session, [JEAN["email"]], JEAN["telegram_id"])
    with pytest.raises(privacy.PrivacyError) as twice:
        privacy.erase_client(session, session.get(type(elodie), elodie.id), "cli", NOW)
    assert twice.value.text("en") == f"Client {elodie.id} was erased already."
    again, created = register_client(session, TelegramProfile(ELODIE["telegram_id"], "Élodie", "", None, "fr"))
    assert created and again.id != elodie.id, "writing again starts a new, empty client"
    assert privacy.export_client(session, again, NOW)["orders"] == []


def rasa_tracker_store(path, conversations: dict[str, list[float]]) -> str:
    """A SQLite tracker store with Rasa 3.6's `events` table, holding `conversations`: sender id ->
    event timestamps (each event's data carries the sender's words, as Rasa's do)."""
    from sqlalchemy import create_engine

    url = f"sqlite:///{path}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create table events (id integer primary key, sender_id varchar(255) not null, "
                          "type_name varchar(255) not null, timestamp float, intent_name varchar(255), "
                          "action_name varchar(255), data text)"))
        for sender, stamps in conversations.items():
            for stamp in stamps:
                conn.execute(text("insert into events (sender_id, type_name, timestamp, data) values (:s, 'user', :t, :d)"),
                             dict(s=sender, t=stamp, d=json.dumps({"text": f"message de {sender}"})))
    engine.dispose()
    return url


def tracker_senders(url: str) -> list[str]:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.connect() as conn:
        found = [row[0] for row in conn.execute(text("select sender_id from events order by id"))]
    engine.dispose()
    return found


def test_forget_empties_the_rasa_conversation_then_the_crm_and_tells_the_manager(engine, saved_clients, tmp_path):
    from crm.db import unit_of_work

    stamp = NOW.timestamp()
    url = rasa_tracker_store(tmp_path / "tracker.db", {str(ELODIE["telegram_id"]): [stamp, stamp + 1, stamp + 2],
                                                        str(JEAN["telegram_id"]): [stamp]})
    elodie_id = saved_clients[0].id
    erased = privacy.forget(engine, ELODIE["telegram_id"], "staff:42", url, NOW)
    assert erased.counts["conversation_events"] == 3
    assert tracker_senders(url) == [str(JEAN["telegram_id"])], "only hers"
    with unit_of_work(engine) as s:
        [log] = s.scalars(select(Erasure)).all()
        assert (log.by, log.client_ref, log.categories["conversation_events"]) == ("staff:42", elodie_id, 3)
        [told] = s.scalars(select(Notification).where(Notification.chat_id == 42,
                                                      Notification.text.startswith("🗑"))).all()
        assert told.text.startswith("🗑 Le client de la conversation n° ")
    with pytest.raises(privacy.PrivacyError) as gone:
        privacy.forget(engine, ELODIE["telegram_id"], "cli", url, NOW)
    assert gone.value.text("fr") == f"Aucun client n° {ELODIE['telegram_id']}."


def test_forget_with_the_conversation_store_down_erases_nothing(engine, saved_clients):
    from crm.db import unit_of_work

    down = "postgresql+psycopg2://nobody@127.0.0.1:1/rasa?connect_timeout=2"
    with pytest.raises(privacy.PrivacyError) as refused:
        privacy.forget(engine, ELODIE["telegram_id"], "cli", down, NOW)
    assert refused.value.text("en").startswith("The assistant's conversation store cannot be reached (")
    with unit_of_work(engine) as s:
        assert s.get(type(saved_clients[0]), saved_clients[0].id).first_name == "Élodie", "nothing erased"
        assert not s.scalars(select(Erasure)).all()


def test_forget_without_any_conversation_store_yet(engine, saved_clients, tmp_path):
    erased = privacy.forget(engine, JEAN["telegram_id"], "client", f"sqlite:///{tmp_path / 'never-ran.db'}", NOW)
    assert erased.counts["conversation_events"] == 0 and erased.counts["messages"] == 2
    assert not (tmp_path / "never-ran.db").exists(), "no store is created by looking for one"


def test_old_conversation_events_are_purged_in_batches(tmp_path):
    from crm import trackers

    stamp = NOW.timestamp()
    url = rasa_tracker_store(tmp_path / "tracker.db", {"1": [stamp - 400 * 86400 + i for i in range(25)],
                                                        "2": [stamp - 10 * 86400, stamp]})
    store = trackers.tracker_engine(url)
    cutoff = NOW - timedelta(days=365)
    assert trackers.count_before(store, cutoff) == 25
    assert trackers.purge_before(store, cutoff, batch=10) == 25
    assert tracker_senders(url) == ["2", "2"] and trackers.count_before(store, cutoff) == 0


def test_the_command_line_exports_and_forgets(tmp_path):
    import stat

    from bot.cli import prepare_database
    from crm.db import engine_for, unit_of_work
    from tests.test_settings_cli import cli

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    prepare_database(url, demo=False)
    with unit_of_work(engine_for(url)) as s:
        build_two_clients(s)
    env = {"DEMO_DATA": "off", "RASA_TRACKER_DB": str(tmp_path / "tracker.db")}
    rasa_tracker_store(tmp_path / "tracker.db", {str(ELODIE["telegram_id"]): [NOW.timestamp()]})
    shown = cli("client", "export", str(ELODIE["telegram_id"]), database_url=url, extra_env=env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["profile"]["email"] == ELODIE["email"] and document["orders"][0]["number"] == "CMD-000456"
    written = cli("client", "export", str(ELODIE["telegram_id"]), "-o", str(tmp_path / "elodie.json"),
                  database_url=url, extra_env=env)
    assert written.returncode == 0 and json.loads((tmp_path / "elodie.json").read_text()) == {
        **document, "exported_at": json.loads((tmp_path / "elodie.json").read_text())["exported_at"]}
    assert stat.S_IMODE((tmp_path / "elodie.json").stat().st_mode) == 0o600
    asked = cli("client", "forget", str(ELODIE["telegram_id"]), database_url=url, extra_env=env)
    assert asked.returncode == 1 and "Add --yes to do it." in asked.stdout
    assert json.loads(cli("client", "export", str(ELODIE["telegram_id"]), database_url=url,
                          extra_env=env).stdout)["messages"], "nothing erased without --yes"
    done = cli("client", "forget", str(ELODIE["telegram_id"]), "--yes", database_url=url, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Client {ELODIE['telegram_id']} erased (messages 2,") and "conversation events 1" \
        in done.stdout
    assert tracker_senders(f"sqlite:///{tmp_path / 'tracker.db'}") == []
    for command in (("export",), ("forget", "--yes")):
        again = cli("client", command[0], str(ELODIE["telegram_id"]), *command[1:], database_url=url, extra_env=env)
        assert again.returncode == 1 and again.stderr.strip().startswith("Error: "), again.stderr
    wrong = cli("client", "export", "not-a-number", database_url=url, extra_env=env)
    assert wrong.returncode == 2 and "invalid int value" in wrong.stderr


def test_every_table_says_how_export_erasure_and_retention_cover_it():
    assert set(privacy.COVERAGE) == {table.name for table in Base.metadata.sorted_tables}


def test_an_erasure_during_a_running_broadcast_sends_nothing_more_to_the_client(session, two_clients):
    from crm import broadcasts

    elodie, jean = two_clients
    privacy.erase_client(session, elodie, "client", NOW)
    job = broadcasts.claim_next(session, NOW)
    assert job is not None and job.chat_id == JEAN["telegram_id"], "the others still get it"
    assert broadcasts.claim_next(session, NOW) is None, "nothing for the erased client"
