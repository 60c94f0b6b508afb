import pytest

from crm.clients import TelegramProfile, language_from_code, record_message, register_client, set_language, unanswered_messages
from crm.staff import StaffError, add_staff, list_staff, remove_staff, staff_role


def test_registration_is_idempotent_and_keeps_language(session):
    client, created = register_client(session, TelegramProfile(42, "Élodie", "Martin", "elo", "fr-FR"))
    assert created and client.language == "fr" and client.display_name == "Élodie Martin"
    set_language(session, client, "en")
    again, created = register_client(session, TelegramProfile(42, "Elodie", "Martin", "elo", "fr"))
    assert not created and again.id == client.id
    assert again.language == "en", "a language the client chose survives their next visit"
    assert again.first_name == "Elodie"


@pytest.mark.parametrize("code,expected", [("en", "en"), ("en-GB", "en"), ("fr", "fr"), ("de", "fr"), (None, "fr")])
def test_language_from_telegram(code, expected):
    assert language_from_code(code) == expected


def test_unanswered_messages_are_kept(session):
    client, _ = register_client(session, TelegramProfile(7))
    record_message(session, client, "in", "bonjour")
    record_message(session, client, "in", "vous êtes là ?", answered=False)
    assert [m.text for m in unanswered_messages(session, client)] == ["vous êtes là ?"]


def test_an_owed_message_is_not_answered_after_a_later_one_of_the_same_client(session):
    """Rasa was down for "vous êtes là ?" (owed); the client wrote again: their later message is
    answered first, so the owed one may no longer be claimed (its answer would come after)."""
    from crm.clients import claim_unanswered, settle

    client, _ = register_client(session, TelegramProfile(8))
    other, _ = register_client(session, TelegramProfile(9))
    owed = record_message(session, client, "in", "vous êtes là ?", answered=False)
    elsewhere = record_message(session, other, "in", "allô ?", answered=False)
    settle(session, owed.id, answered=False)
    settle(session, elsewhere.id, answered=False)
    record_message(session, other, "in", "toujours là ?", answered=True)  # another client's: no matter
    assert claim_unanswered(session, owed.id)
    settle(session, owed.id, answered=False)
    record_message(session, client, "in", "bon, je repasse", answered=False)
    assert not claim_unanswered(session, owed.id)


def test_staff_roles(session):
    add_staff(session, 100, "manager", "Claire")
    add_staff(session, 101, "marketer", "Hugo")
    assert staff_role(session, 100) == "manager"
    assert staff_role(session, 999) is None
    with pytest.raises(StaffError):
        add_staff(session, 102, "boss", "X")
    remove_staff(session, 100)
    assert staff_role(session, 100) is None
    with pytest.raises(StaffError):
        remove_staff(session, 100)
    assert {m.name for m in list_staff(session)} == {"Claire", "Hugo"}
