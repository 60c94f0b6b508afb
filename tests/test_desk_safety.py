"""The desk's dead ends and wrong turns (issue 12): a reply that could reach the wrong client, a
manager who leaves with conversations in hand, a client stuck in the queue, a desk bypassed by
/start or an old button, a client who unblocks the bot. Over the Bot API emulator, stub Rasa."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from crm.handoffs import dismiss_staff, expire_queued, update_staff
from crm.models import Client, Handoff, Staff
from tests.test_desk import CLAIRE, CLIENT, JOHN, OTHER, desk, first, notices, request  # noqa: F401
from tests.test_telegram_edge import crm, database_url, stub  # noqa: F401  (fixtures)


async def take(bot, manager, handoff_id, prefix="Vous avez la conversation"):
    bot.emulator.user_says(manager, f"/take {handoff_id}")
    return await first(bot, manager, prefix)


async def after(bot, user, since: int, prefix: str, timeout: float = 15.0):
    """The first message to `user` after their `since` first ones that starts with `prefix`."""
    def found(_):
        return any((m.text or "").startswith(prefix) for m in bot.emulator.messages_to(user.id)[since:])

    await asyncio.to_thread(bot.emulator.wait_for, found, timeout)
    return next(m for m in bot.emulator.messages_to(user.id)[since:] if (m.text or "").startswith(prefix))


def copies_to(bot, user) -> list:
    return [m for m in bot.emulator.messages_to(user.id) if m.method == "copyMessage"]


async def test_a_reply_to_an_ended_conversation_never_reaches_another_client(desk, stub):
    # The repro of the review: /done client B, take client A, reply to an old message of B.
    paul = request(desk, OTHER)
    await notices(desk)
    await take(desk, CLAIRE, paul)
    desk.emulator.user_says(OTHER, "ma question")
    from_paul = await first(desk, CLAIRE, f"💬 Paul (n° {paul}) :")
    desk.emulator.user_says(CLAIRE, "/done")
    await first(desk, CLAIRE, f"Conversation n° {paul} terminée")
    elodie = request(desk, CLIENT)
    take_notice = await first(desk, CLAIRE, f"🔔 Conversation à prendre (n° {elodie})")
    await take(desk, CLAIRE, elodie, f"Vous avez la conversation n° {elodie}")

    [refused] = await desk.say(CLAIRE, "Voici votre avoir", reply_to=from_paul)
    assert refused.text.startswith(f"Ce message appartient à la conversation n° {paul}, qui n'est plus en cours")
    [refused] = await desk.say(CLAIRE, "Et voilà", reply_to=take_notice)
    assert refused.text.startswith("Ce message n'est pas un message relayé d'un client : rien n'a été transmis.")
    [refused] = await desk.say(CLAIRE, f"/done {paul}")
    assert refused.text.startswith(f"Vous ne tenez pas la conversation n° {paul} : rien n'a été fait.")
    await asyncio.sleep(0.3)
    assert copies_to(desk, CLIENT) == [] and copies_to(desk, OTHER) == [], "nothing sent to anybody"
    with crm(desk) as s:
        assert s.get(Handoff, elodie).status == "active", "the wrong /done N closed nothing"

    desk.emulator.user_says(CLAIRE, "Bonjour Élodie")  # the only live conversation: it goes there
    assert (await first(desk, CLIENT, "Bonjour Élodie")).method == "copyMessage"


@pytest.mark.parametrize("leave", ["removed", "marketer"])
async def test_a_manager_who_leaves_the_desk_gives_the_conversation_back(desk, stub, leave):
    handoff_id = request(desk)
    await notices(desk)
    await take(desk, CLAIRE, handoff_id)
    await first(desk, CLIENT, "Claire (conseiller) prend le relais.")
    seen_by_john = len(desk.emulator.messages_to(JOHN.id))
    with crm(desk) as s:  # what `python -m bot staff remove` / `staff add --role marketer` do
        dismiss_staff(s, CLAIRE.id) if leave == "removed" else update_staff(s, CLAIRE.id, "marketer", "Claire Dubois")

    told = await first(desk, CLIENT, "Votre conseiller n'est plus disponible.")
    assert "un autre conseiller va vous répondre ici" in told.text
    notice = await after(desk, JOHN, seen_by_john, f"🔔 Conversation to take (no. {handoff_id})")
    assert "↩️ Back in the queue: Claire Dubois no longer holds this conversation." in notice.text
    assert notice.button_titles == ["Take"]
    with crm(desk) as s:
        handoff = s.get(Handoff, handoff_id)
        assert (handoff.status, handoff.manager_id) == ("queued", None)
    if leave == "marketer":  # still staff: told why their conversations went
        await first(desk, CLAIRE, f"Vous n'êtes plus conseiller : vos conversations ({handoff_id})")
    before = len(desk.emulator.messages_to(CLAIRE.id))
    desk.emulator.user_says(CLIENT, "toujours là ?")
    await asyncio.sleep(0.5)
    assert len(desk.emulator.messages_to(CLAIRE.id)) == before, "nothing goes to the manager who left"

    desk.emulator.user_presses(JOHN, notice, index=0)
    await first(desk, CLIENT, "John (conseiller) prend le relais.")
    welcome = await first(desk, JOHN, f"You have conversation no. {handoff_id}")
    assert "→ toujours là ?" in welcome.text, "what the client wrote meanwhile is shown"
    desk.emulator.user_says(JOHN, "Je reprends votre dossier.")
    await first(desk, CLIENT, "Je reprends votre dossier.")


async def test_an_admin_takes_over_or_ends_any_conversation(desk, stub):
    held = request(desk)
    waiting = request(desk, OTHER)
    await desk.wait(JOHN, 2)
    await take(desk, CLAIRE, held)
    await first(desk, CLIENT, "Claire (conseiller) prend le relais.")

    [mine] = await desk.say(CLAIRE, f"/take {held}")
    assert mine.text == f"Vous tenez déjà la conversation n° {held}."
    desk.emulator.user_says(JOHN, f"/take {held}")
    took = await first(desk, JOHN, f"You have conversation no. {held} with Élodie Martin.")
    assert "Claire Dubois held it and has been told." in took.text
    await first(desk, CLAIRE, f"↪️ John Smith a repris la conversation n° {held} avec Élodie Martin")
    await first(desk, CLIENT, "John (conseiller) prend le relais.")
    desk.emulator.user_says(CLIENT, "merci")
    await first(desk, JOHN, f"💬 Élodie Martin (no. {held}):\nmerci")
    assert not any("merci" in (m.text or "") for m in desk.emulator.messages_to(CLAIRE.id))

    desk.emulator.user_says(JOHN, f"/done {waiting}")  # a queued one, nobody's
    await first(desk, JOHN, f"Conversation no. {waiting} closed (Paul); the client has been told.")
    await first(desk, JOHN, f"✖️ Conversation no. {waiting} (Paul) closed by the team.")  # its notice, edited
    await first(desk, OTHER, "Notre équipe a clos votre demande ; je reprends la main.")
    [done] = await desk.say(JOHN, f"/done {waiting}")
    assert done.text == f"Conversation no. {waiting} is already closed."
    [refused] = await desk.say(CLAIRE, f"/take {held}")  # a manager cannot take it from a colleague
    assert refused.text == "Déjà prise par John Smith."
    [refused] = await desk.say(CLAIRE, f"/done {held}")  # nor end it
    assert refused.text == f"Vous ne tenez pas la conversation n° {held} : rien n'a été fait. /queue pour la file."
    with crm(desk) as s:
        john = s.scalar(select(Staff.id).where(Staff.telegram_id == JOHN.id))
        assert (s.get(Handoff, held).status, s.get(Handoff, held).manager_id) == ("active", john)
        assert (s.get(Handoff, waiting).status, s.get(Handoff, waiting).closed_by) == ("closed", "admin")


async def test_a_queued_client_can_leave_the_queue(desk, stub):
    handoff_id = request(desk)
    claire_notice, _ = await notices(desk)
    [ack] = await desk.say(CLIENT, "bonjour")
    assert ack.button_titles == ["Annuler ma demande"]
    desk.emulator.user_presses(OTHER, ack, index=0)  # someone else's button: nothing happens
    await asyncio.to_thread(desk.emulator.wait_for, lambda _: any(
        a.get("text") == "Ce bouton n'est plus valable." for a in desk.emulator.callback_answers), 10)
    desk.emulator.user_presses(CLIENT, ack, data="hleave:999999")  # tampered
    await asyncio.to_thread(desk.emulator.wait_for, lambda _: len(desk.emulator.callback_answers) >= 2, 10)
    with crm(desk) as s:
        assert s.get(Handoff, handoff_id).status == "queued"

    desk.emulator.user_presses(CLIENT, ack, index=0)
    await first(desk, CLIENT, "C'est noté : votre demande est annulée et je reprends la main.")
    await asyncio.to_thread(desk.emulator.wait_for, lambda sent: any(
        s.method == "editMessageText" and s.chat_id == CLAIRE.id and s.message_id == claire_notice.message_id
        for s in sent), 10)
    edited = [s for s in desk.emulator.sent if s.method == "editMessageText" and s.chat_id == CLAIRE.id]
    assert edited[-1].text == f"↩️ Conversation n° {handoff_id} : Élodie Martin a retiré sa demande."
    await first(desk, CLAIRE, f"↩️ Élodie Martin a retiré sa demande (n° {handoff_id})")
    with crm(desk) as s:
        assert (s.get(Handoff, handoff_id).status, s.get(Handoff, handoff_id).closed_by) == ("closed", "client")
    [back] = await desk.say(CLIENT, "avez-vous des écrans ?")
    assert back.text == "[fr] avez-vous des écrans ?", "the assistant answers again"

    again = request(desk)  # the typed way
    [left] = await desk.say(CLIENT, "Annuler ma demande")
    assert left.text.startswith("C'est noté : votre demande est annulée")
    with crm(desk) as s:
        assert s.get(Handoff, again).status == "closed"


async def test_annuler_is_passed_on_once_a_manager_holds_the_conversation(desk, stub):
    handoff_id = request(desk)
    await notices(desk)
    await take(desk, CLAIRE, handoff_id)
    desk.emulator.user_says(CLIENT, "annuler")
    await first(desk, CLAIRE, f"💬 Élodie Martin (n° {handoff_id}) :\nannuler")
    with crm(desk) as s:
        assert s.get(Handoff, handoff_id).status == "active", "the manager decides with the client"


async def test_nobody_takes_it_in_time_the_client_may_still_be_called_back(desk, stub):
    handoff_id = request(desk, OTHER)
    await notices(desk)
    with crm(desk) as s:
        assert expire_queued(s, datetime.now(timezone.utc) + timedelta(days=10)) == 1
    told = await first(desk, OTHER, "Désolé : aucun conseiller n'a pu prendre votre demande à temps.")
    assert told.params["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    await first(desk, CLAIRE, f"⌛ Conversation n° {handoff_id} (Paul) fermée : personne ne l'a prise en 120 min")
    with crm(desk) as s:
        handoff = s.get(Handoff, handoff_id)
        assert (handoff.status, handoff.closed_by, handoff.detail) == ("closed", "expired", "je veux parler à quelqu'un")
    [back] = await desk.say(OTHER, "bonjour")
    assert back.text == "[fr] bonjour", "the assistant answers meanwhile"

    desk.emulator.user_sends(OTHER, contact={"phone_number": "+33 6 12 34 56 78", "first_name": "Paul",
                                             "user_id": OTHER.id})
    noted = await first(desk, OTHER, "C'est noté : un conseiller vous appellera au +33612345678")
    assert noted.params["reply_markup"] == {"remove_keyboard": True}
    await first(desk, CLAIRE, f"📞 Paul (n° {handoff_id}) demande à être rappelé au +33612345678")
    with crm(desk) as s:
        assert s.get(Handoff, handoff_id).callback_phone == "+33612345678"


async def test_while_the_desk_holds_the_conversation_nothing_reaches_rasa(desk, stub):
    stub.reply = lambda s, m, md: [{"text": "Confirmez-vous la commande ?", "buttons": [
        {"title": "Confirmer", "payload": "/affirm"}]}]
    [question] = await desk.say(CLIENT, "je commande 3 souris")
    received = len(stub.received)
    handoff_id = request(desk)
    await notices(desk)

    desk.emulator.user_presses(CLIENT, question, index=0)  # the old "Confirm"
    await asyncio.to_thread(desk.emulator.wait_for, lambda _: any(
        (a.get("text") or "").startswith("Votre demande attend un conseiller") for a in desk.emulator.callback_answers), 10)
    [start] = await desk.say(CLIENT, "/start")
    assert start.text.startswith("Votre demande attend un conseiller : écrivez-lui ici")
    await take(desk, CLAIRE, handoff_id)
    await first(desk, CLIENT, "Claire (conseiller) prend le relais.")
    [start] = await desk.say(CLIENT, "/start")
    assert start.text == "Un conseiller s'occupe de votre demande : écrivez-lui ici, il vous répond."
    assert len(stub.received) == received, "neither /start nor the old button reached Rasa"

    from crm.meetings import offer_slots

    with crm(desk) as s:  # what Claire's "📅 Propose a meeting" does during the conversation
        assert offer_slots(s, s.scalar(select(Client).where(Client.telegram_id == CLIENT.id))) > 0
    proposal = await first(desk, CLIENT, "Voici les prochains créneaux libres")
    desk.emulator.user_presses(CLIENT, proposal, index=0)
    await asyncio.to_thread(_until, lambda: len(stub.received) == received + 1)
    assert stub.received[-1]["message"].startswith('/choose_slot{"meeting_slot":'), "the desk's own buttons work"


def test_a_button_sent_before_the_desk_took_the_conversation_stays_old_though_written_down_after(
        session, time_machine):
    """The bot writes an answer's buttons down after sending them: a button made before the desk
    took the conversation is refused as one, whenever its row was written."""
    from crm.buttons import keep_buttons, payload_for, plan_buttons

    sent = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
    time_machine.move_to(sent, tick=False)
    rows = plan_buttons(CLIENT.id, [{"title": "Confirmer", "payload": "/affirm"}])
    time_machine.move_to(sent + timedelta(seconds=2), tick=False)  # the handoff came in between
    keep_buttons(session, rows)
    session.flush()
    token = rows[0]["token"]
    assert payload_for(session, CLIENT.id, token) == "/affirm"
    assert payload_for(session, CLIENT.id, token, sent_after=sent + timedelta(seconds=1)) is None
    assert payload_for(session, CLIENT.id, token, sent_after=sent - timedelta(seconds=1)) == "/affirm"


async def test_a_client_who_unblocks_the_bot_is_reachable_again(desk, stub):
    def unreachable() -> bool:
        with crm(desk) as s:
            return s.scalar(select(Client.unreachable).where(Client.telegram_id == OTHER.id))

    def member_update(status: str) -> dict:
        chat = {"id": OTHER.id, "type": "private", "first_name": OTHER.first_name}
        member = {"user": {"id": 1, "is_bot": True, "first_name": "Assistant"}}
        return {"my_chat_member": {"chat": chat, "from": OTHER.as_json(), "date": 1,
                                   "old_chat_member": {**member, "status": "member"},
                                   "new_chat_member": {**member, "status": status,
                                                       **({"until_date": 0} if status == "kicked" else {})}}}

    desk.emulator.push_update(member_update("kicked"))  # the client blocked the bot
    await asyncio.to_thread(lambda: _until(unreachable))
    with crm(desk) as s:  # a broadcast or the outbox found them blocked before: same flag
        s.get(Client, s.scalar(select(Client.id).where(Client.telegram_id == OTHER.id))).unreachable = True
    await desk.say(OTHER, "re-bonjour")  # any update clears it
    await asyncio.to_thread(lambda: _until(lambda: not unreachable()))

    desk.emulator.push_update(member_update("kicked"))
    await asyncio.to_thread(lambda: _until(unreachable))
    desk.emulator.push_update(member_update("member"))  # unblocked, before writing anything
    await asyncio.to_thread(lambda: _until(lambda: not unreachable()))


def _until(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)
