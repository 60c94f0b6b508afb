"""A client's data in Telegram (the Bot API emulator, a stub Rasa): /mydata sends the file,
/forget asks and erases only on the client's own button, admins erase with /forget ID, and
pressing twice, a forged button, a stranger or a client with nothing each get a clear answer."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.emulator import User
from crm.clients import TelegramProfile, record_message, register_client
from crm.models import Client, Erasure, Handoff, Notification, Staff, StaffTopic
from crm.staff import add_staff
from tests.harness import BotHarness, StubRasa, make_settings
from tests.test_desk import first
from tests.test_privacy import rasa_tracker_store, tracker_senders
from tests.test_review_telegram import answered
from tests.test_telegram_edge import crm, database_url  # noqa: F401  (fixtures)

ELODIE = User(id=721, first_name="Élodie", last_name="Martin", username="elomartin", language_code="fr")
JOHN = User(id=722, first_name="John", last_name="Smith", language_code="en")
NOBODY = User(id=723, first_name="Nouveau", language_code="fr")
ADMIN = User(id=821, first_name="Alice", language_code="fr")
MANAGER = User(id=822, first_name="Claire", language_code="fr")


def replies(sender, message, metadata):
    """The assistant's answers: a privacy payload when asked in words, else an echo."""
    if "données" in message or "data" in message:
        kind = "forget" if message.startswith(("effacez", "erase")) else "export"
        return [{"recipient_id": sender, "custom": {"privacy": kind}}]
    return [{"recipient_id": sender, "text": f"echo {message}"}]


@pytest.fixture
def stub():
    rasa = StubRasa(replies)
    yield rasa
    rasa.close()


@pytest.fixture
async def bot(database_url, stub, tmp_path):  # noqa: F811
    tracker = rasa_tracker_store(tmp_path / "tracker.db", {"721": [1.0, 2.0], "722": [1.0]})
    settings = make_settings(database_url, stub.url, rasa_tracker_db=tmp_path / "tracker.db")
    async with BotHarness(settings) as harness:
        harness.tracker_url = tracker
        with crm(harness) as s:
            add_staff(s, ADMIN.id, "admin", "Alice Admin")
            add_staff(s, MANAGER.id, "manager", "Claire Dubois")
            for user in (ELODIE, JOHN):
                client, _ = register_client(s, TelegramProfile(user.id, user.first_name, user.last_name,
                                                               user.username, user.language_code))
                client.phone = "+33 6 12 34 56 78" if user is ELODIE else "+44 7700 900123"
                client.language = user.language_code
                record_message(s, client, "in", f"bonjour, ici {user.first_name}")
        yield harness


async def test_mydata_sends_the_clients_own_file_and_nothing_to_a_stranger(bot, stub):
    [sent] = await bot.say(ELODIE, "/mydata")
    assert sent.method == "sendDocument" and sent.params["document"] == "<upload mes-donnees.json>"
    assert sent.params["caption"].startswith("📄 Vos données chez Bureau Plus : tout ce que nous conservons")
    document = json.loads(sent.params["document_content"])
    assert document["profile"]["phone"] == "+33 6 12 34 56 78"
    assert document["messages"][0]["text"] == "bonjour, ici Élodie"
    assert "John" not in sent.params["document_content"]
    [sent] = await bot.say(JOHN, "/mydata")
    assert sent.params["document"] == "<upload my-data.json>" and json.loads(sent.params["document_content"])[
        "profile"]["first_name"] == "John"
    [nothing] = await bot.say(NOBODY, "/mydata")
    assert nothing.text == "Nous ne conservons aucune donnée vous concernant."
    [in_words] = await bot.say(ELODIE, "envoyez-moi mes données")
    assert in_words.method == "sendDocument", "asked in words: the assistant's payload, the same file"
    assert stub.received[-1]["message"] == "envoyez-moi mes données"
    with crm(bot) as s:
        assert s.scalar(select(Client.id).where(Client.telegram_id == NOBODY.id)) is None, "asking registers nobody"


async def test_forget_asks_then_erases_on_the_clients_own_button_only(bot):
    [asked] = await bot.say(ELODIE, "/forget")
    assert asked.text.startswith("⚠️ Effacer vos données ?") and "10 ans (Code de commerce)" in asked.text
    assert asked.button_titles == ["🗑 Effacer mes données", "Annuler"]
    bot.emulator.user_presses(ELODIE, asked, index=1)
    await first(bot, ELODIE, "D'accord, rien n'a été effacé.")
    with crm(bot) as s:
        elodie_id, john_id = (s.scalar(select(Client.id).where(Client.telegram_id == u.id)) for u in (ELODIE, JOHN))
    assert elodie_id is not None, "cancelled: nothing erased"
    # Someone else pressing her button, and a forged one naming John's file: refused, nothing erased.
    bot.emulator.user_presses(JOHN, asked, index=0)
    await answered(bot, "This button is not valid.")
    for forged in (f"fg:{john_id}:yes", f"fg:{elodie_id}:maybe", "fg:x:yes", f"fg:{elodie_id}"):
        bot.emulator.user_presses(ELODIE, asked, data=forged)
    await asyncio.sleep(1)
    with crm(bot) as s:
        assert not s.scalars(select(Erasure)).all()
    bot.emulator.user_presses(ELODIE, asked, index=0)
    done = await first(bot, ELODIE, "✅ Vos données ont été effacées.")
    assert "nouveau client" in done.text
    await first(bot, ELODIE, "🗑 Données effacées.")
    assert tracker_senders(bot.tracker_url) == ["722"], "her conversation in Rasa's store is gone, John's stays"
    with crm(bot) as s:
        erased = s.get(Client, elodie_id)
        assert (erased.first_name, erased.phone, erased.telegram_id) == ("", None, -elodie_id)
        [log] = s.scalars(select(Erasure)).all()
        assert (log.by, log.categories["conversation_events"]) == ("client", 2)
    bot.emulator.user_presses(ELODIE, asked, index=0)  # pressed twice
    await answered(bot, "Ces données ont déjà été effacées.")
    [again] = await bot.say(ELODIE, "/forget")
    assert again.text == "Nous ne conservons aucune donnée vous concernant : il n'y a rien à effacer."
    [hello] = await bot.say(ELODIE, "bonjour")
    assert hello.text == "echo bonjour"
    with crm(bot) as s:
        fresh = s.scalar(select(Client).where(Client.telegram_id == ELODIE.id))
        assert fresh.id != elodie_id, "a new, empty client"


async def test_an_admin_erases_a_client_who_is_told_and_whose_manager_is_told(bot):
    with crm(bot) as s:
        john = s.scalar(select(Client).where(Client.telegram_id == JOHN.id))
        claire = s.scalar(select(Staff).where(Staff.telegram_id == MANAGER.id))
        s.add(Handoff(client_id=john.id, reason="request", status="active", manager_id=claire.id))
        s.add(StaffTopic(client_id=john.id, chat_id=-1001234567890, thread_id=77))
    bot.emulator.topics.setdefault(-1001234567890, {})[77] = "John Smith"
    [refused] = await bot.say(MANAGER, f"/forget {JOHN.id}")
    assert refused.text.startswith("Effacer les données d'un autre client est réservé aux administrateurs.")
    [usage] = await bot.say(ADMIN, "/forget John")
    assert usage.text.startswith("Usage : /forget ID")
    [unknown] = await bot.say(ADMIN, "/forget 999999")
    assert unknown.text == "Aucun client n'a l'identifiant Telegram 999999."
    [asked] = await bot.say(ADMIN, f"/forget {JOHN.id}")
    assert asked.text.startswith(f"⚠️ Effacer les données de John Smith (Telegram {JOHN.id}) ?")
    bot.emulator.user_presses(MANAGER, asked, index=0)  # not an admin
    await answered(bot, "Ce bouton n'est pas valable.")
    bot.emulator.user_presses(ADMIN, asked, index=0)
    told = await first(bot, JOHN, "✅ Your data was erased.")
    assert told.chat_id == JOHN.id
    done = await first(bot, ADMIN, f"✅ Données du client {JOHN.id} effacées :")
    assert "messages 1" in done.text and "conversations avec un conseiller 1" in done.text
    assert 77 not in bot.emulator.topics[-1001234567890], "the copies in the staff group's topic go too"
    closed = await first(bot, MANAGER, "🗑 Le client de la conversation n° ")
    assert "la conversation est close" in closed.text
    with crm(bot) as s:
        [log] = s.scalars(select(Erasure)).all()
        assert log.by == f"staff:{ADMIN.id}"
        assert not s.scalars(select(Notification).where(Notification.chat_id == JOHN.id)).all()
    await asyncio.sleep(1)
    assert [m.text for m in bot.emulator.messages_to(JOHN.id)] == [told.text], "nothing more reaches them"


async def test_asked_in_words_the_erasure_is_confirmed_by_button_too(bot, stub):
    [asked] = await bot.say(JOHN, "erase my data")
    assert asked.text.startswith("⚠️ Erase your data?") and asked.button_titles == ["🗑 Erase my data", "Cancel"]
    with crm(bot) as s:
        assert s.scalar(select(Client.first_name).where(Client.telegram_id == JOHN.id)) == "John", "not yet"


def test_the_local_chat_saves_the_file_beside_the_crm_for_the_owner_only(tmp_path, monkeypatch):
    import stat

    import bot.console
    from bot.emulator import Sent

    monkeypatch.setattr(bot.console, "private_var", lambda: tmp_path)
    sent = Sent("sendDocument", 1, 1, params={"document": "<upload mes-donnees.json>", "document_content": "{}"})
    path = bot.console.save_document(sent)
    assert path == tmp_path / "downloads" / "mes-donnees.json" and path.read_text() == "{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sneaky = Sent("sendDocument", 1, 2, params={"document": "<upload ../../etc/x.json>", "document_content": "x"})
    assert bot.console.save_document(sneaky) == tmp_path / "downloads" / "x.json", "never outside its folder"
