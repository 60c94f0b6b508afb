"""The review queue (crm/review.py), on SQLite and PostgreSQL: what is kept and how it is masked,
counted once per message, claimed by one reviewer at a time, labelled once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from crm import review
from crm.db import unit_of_work
from crm.models import ConversationMessage, ReviewItem
from crm.review import ReviewError
from crm.staff import add_staff
from tests.harness import at_once

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)
GUESS = [("order_status", 0.41), ("complain", 0.22), ("ask_delivery", 0.1), ("greet", 0.01)]


@pytest.mark.parametrize("text,masked", [
    ("Élodie Martin ici, mon colis CMD-000123 n'est pas arrivé", "[name] [name] ici, mon colis [order] n'est pas arrivé"),
    ("écrivez-moi à elodie.martin@dupont.fr ou au 06 12 34 56 78", "écrivez-moi à [email] ou au [phone]"),
    ("rappelez le +33 (0)6.12.34.56.78 svp", "rappelez le [phone] svp"),
    ("ma réclamation rec 45 et ma carte 4970101234567890", "ma réclamation [complaint] et ma carte [number]"),
    ("il m'en faut 12 pour le 3 mars", "il m'en faut 12 pour le 3 mars"),
    ("livrez au 17 allée des Tilleuls, 35000 Rennes svp", "livrez au [address], [address] svp"),
    ("I live at 221 Baker Street, London", "I live at [address], London"),
    ("ok pour 15 routeurs et 3 places", "ok pour 15 routeurs et 3 places"),
])
def test_personal_data_is_masked(text, masked):
    assert review.mask(text, names=("Élodie", "Martin")) == masked


def test_a_message_is_kept_once_masked_with_its_guesses_and_counted_once_per_message(session):
    assert review.note(session, "Où en est ma CMD-000123 ? Élodie", "fallback", GUESS, names=("Élodie",),
                       message_id="m1", now=NOW)
    assert review.note(session, "où en est ma  cmd-000999, élodie", "low_confidence", GUESS, names=("Élodie",),
                       message_id="m1", now=NOW), "the same message seen by a second action"
    assert review.note(session, "OÙ EN EST MA CMD-4 ?? ÉLODIE", "fallback", GUESS, names=("Élodie",),
                       message_id="m2", now=NOW + timedelta(hours=1))
    [item] = session.query(ReviewItem).all()
    assert item.text == "Où en est ma [order] ? [name]"
    assert item.count == 2, "m1 once, m2 once"
    assert item.predictions == [["order_status", 0.41], ["complain", 0.22], ["ask_delivery", 0.1]]
    for nothing in ("", "   ", "/choose_slot{\"meeting_slot\": \"x\"}", "0612345678", "CMD-000123"):
        assert not review.note(session, nothing, "fallback", GUESS, now=NOW), nothing
    with pytest.raises(ValueError):
        review.note(session, "bonjour", "because", GUESS)


def test_two_reviewers_never_get_the_same_message_and_only_the_holder_labels_it(session):
    claire = add_staff(session, 1, "manager", "Claire Dubois")
    john = add_staff(session, 2, "admin", "John Smith")
    for i, (text, times) in enumerate([("truc rare", 1), ("le plus fréquent", 3), ("le deuxième", 2)]):
        for n in range(times):
            review.note(session, text, "fallback", GUESS, message_id=f"{i}-{n}", now=NOW)
    first = review.next_item(session, claire.id, NOW)
    assert first.text == "le plus fréquent" and first.count == 3
    assert review.next_item(session, claire.id, NOW) == first, "asking again shows the same one"
    second = review.next_item(session, john.id, NOW)
    assert second.text == "le deuxième"
    with pytest.raises(ReviewError) as refused:
        review.label(session, first.id, "order_status", john.id, NOW)
    assert refused.value.key == "not_yours"
    with pytest.raises(ReviewError) as refused:
        review.label(session, first.id, "no_such_intent", claire.id, NOW)
    assert refused.value.key == "unknown_intent"
    labelled = review.label(session, first.id, "order_status", claire.id, NOW)
    assert (labelled.status, labelled.label) == ("labelled", "order_status")
    with pytest.raises(ReviewError):
        review.label(session, first.id, "complain", claire.id, NOW)  # never overwritten
    assert review.next_item(session, claire.id, NOW).text == "truc rare"
    review.label(session, second.id, "skip", john.id, NOW)
    assert review.next_item(session, john.id, NOW) is None, "skipped: not shown again until it comes back"
    review.note(session, "le deuxième", "fallback", GUESS, message_id="again", now=NOW)
    assert review.next_item(session, john.id, NOW).text == "le deuxième"
    # Reviewers who walked away: after the claim's time, the next ones get what they held.
    later = NOW + review.CLAIM + timedelta(seconds=1)
    marc, lea = add_staff(session, 3, "manager", "Marc Petit"), add_staff(session, 4, "manager", "Léa Roux")
    assert {review.next_item(session, marc.id, later).text, review.next_item(session, lea.id, later).text} == {
        "truc rare", "le deuxième"}
    assert review.counts(session) == {"pending": 2, "labelled": 1, "off_topic": 0, "skipped": 0}
    assert review.labelled_examples(session) == {"order_status": ["le plus fréquent"]}


def test_reviewers_racing_for_the_queue_and_its_labels_lose_and_double_nothing(engine):
    with unit_of_work(engine) as s:
        staff = [add_staff(s, 100 + i, "manager", f"Manager {i}").id for i in range(6)]
        for i in range(4):
            review.note(s, f"phrase numéro {'abcd'[i]}", "fallback", GUESS, message_id=str(i), now=NOW)

    def claim(i):
        with unit_of_work(engine) as s:
            item = review.next_item(s, staff[i], NOW)
            return item.id if item else None

    claimed = at_once(6, claim)
    got = [c for c in claimed if c is not None]
    assert sorted(got) == sorted(set(got)) and len(got) == 4, "each item to one reviewer, two left without"

    def label_all(i):
        with unit_of_work(engine) as s:
            return review.label(s, got[0], "complain", None, NOW).status

    outcomes = at_once(6, label_all)
    assert sum(o == "labelled" for o in outcomes) == 1
    assert all(isinstance(o, ReviewError) for o in outcomes if o != "labelled")


def user(text, intent, confidence, at, message_id):
    ranking = [{"name": intent, "confidence": confidence}, {"name": "complain", "confidence": 0.2},
               {"name": "ask_delivery", "confidence": 0.1}]
    return {"event": "user", "text": text, "timestamp": at, "message_id": message_id,
            "parse_data": {"intent": {"name": intent, "confidence": confidence}, "intent_ranking": ranking},
            "metadata": {"first_name": "Élodie", "last_name": "Martin", "language": "fr"}}


def turn(*events):
    from rasa_sdk import Tracker

    latest = dict(events[-1])
    return Tracker(sender_id="1001", slots={"language": "fr"}, latest_message=latest, events=list(events),
                   paused=False, followup_action=None, active_loop={}, latest_action_name="action_listen")


@pytest.mark.parametrize("events,expected", [
    ([user("blorp zorg", "nlu_fallback", 0.3, 0, "a")], [("a", "fallback")]),
    ([user("je voudrais un truc", "ask_catalog", 0.45, 0, "a")], [("a", "low_confidence")]),
    ([user("où en est mon colis", "order_status", 0.93, 0, "a")], []),
    ([user("ma commande arrive quand", "ask_delivery", 0.9, 0, "a"),
      user("je veux parler à quelqu'un", "request_human", 0.95, 30, "b")], [("a", "asked_human")]),
    ([user("ma commande arrive quand", "ask_delivery", 0.9, 0, "a"),
      user("je veux parler à quelqu'un", "request_human", 0.95, 300, "b")], []),
    ([user("ma commande CMD-000123 arrive quand", "ask_delivery", 0.9, 0, "a"),
      user("quand arrive ma commande CMD-000123 ?", "order_status", 0.9, 20, "b")], [("a", "rephrased")]),
    ([user("bonjour", "greet", 0.99, 0, "a"), user("avez-vous des écrans", "ask_catalog", 0.9, 5, "b")], []),
    ([user("/choose_slot{}", "choose_slot", 1.0, 0, "a")], []),
])
def test_the_action_server_keeps_what_the_model_missed(events, expected):
    from actions.review import to_review

    assert [(event["message_id"], reason) for event, reason in to_review(turn(*events))] == expected


async def test_an_action_run_puts_a_fallback_in_the_queue_masked(engine, monkeypatch):
    from rasa_sdk.executor import CollectingDispatcher

    from actions.desk import ActionRephraseOrHandOver
    from crm.settings import install as install_settings

    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    install_settings(None)
    with unit_of_work(engine) as s:
        [row, other] = _client_messages(s, 1001, NOW, [True, True])
    said = user("Élodie Martin, 06 12 34 56 78, le machin bidule chouette", "nlu_fallback", 0.2, 0, "x")
    said["metadata"]["message"] = row  # the bot's row of this message
    await ActionRephraseOrHandOver().run(CollectingDispatcher(), turn(said), {})
    with unit_of_work(engine) as s:
        [item] = review.pending(s)
        assert s.get(ConversationMessage, row).understood is False, "counted as misunderstood"
    assert (item.text, item.reason) == ("[name] [name], [phone], le machin bidule chouette", "fallback")
    assert item.predictions[0] == ("complain", 0.2), "the fallback is not a guess"
    for tampered in (str(other), True, -other, [other], None):  # only an int row id of this client
        said = user("un autre truc bizarre", "nlu_fallback", 0.2, 0, f"t{tampered}")
        said["metadata"]["message"] = tampered
        await ActionRephraseOrHandOver().run(CollectingDispatcher(), turn(said), {})
    with unit_of_work(engine) as s:
        assert s.get(ConversationMessage, other).understood is True


def _client_messages(session, telegram_id: int, when: datetime, understood: list[bool | None]) -> list[int]:
    from crm.clients import TelegramProfile, record_message, register_client

    client, _ = register_client(session, TelegramProfile(telegram_id, f"Client {telegram_id}", "", None, "fr"))
    rows = []
    for verdict in understood:
        row = record_message(session, client, "in", "texte")
        row.understood, row.created_at = verdict, when
        rows.append(row.id)
    session.flush()
    return rows


def test_the_understanding_rate_and_how_it_moved_after_each_retraining(session):
    swap_at = NOW - timedelta(days=3)
    # The week before the swap: 2 of 4 understood; after it: 3 of 4; a photo or a button (None) never counts.
    before = _client_messages(session, 1001, swap_at - timedelta(days=2), [True, True, True, True, None])
    after = _client_messages(session, 1002, swap_at + timedelta(days=1), [True, True, True, True])
    _client_messages(session, 1003, NOW - timedelta(days=30), [False, False])  # long before: out of every window
    for row in before[:2]:
        assert review.note_fallback(session, row, 1001), "the action server's mark"
    assert review.note_fallback(session, after[0], 1002)
    assert not review.note_fallback(session, after[1], 1001), "another client's row is refused"
    assert not review.note_fallback(session, 10**9, 1001), "no such row"
    review.record_retraining(session, dict(swapped=True, reason="not_worse", model="m2.tar.gz", labels=12,
                                           trained_on=10, kept_aside=2, before_held_out=0.91, after_held_out=0.93,
                                           before_aside=0.5, after_aside=1.0), now=swap_at)
    review.record_retraining(session, dict(swapped=False, reason="worse_held_out", model="m3.tar.gz", labels=14,
                                           trained_on=12, kept_aside=2, before_held_out=0.93,
                                           after_held_out=0.80), now=NOW - timedelta(hours=1))
    stats = review.stats(session, NOW)
    assert (stats.last_week.messages, stats.last_week.understood) == (8, 5)
    assert stats.last_week.rate == 5 / 8
    refused, swapped = stats.retrainings
    assert (refused.swapped, refused.reason, swapped.swapped) == (False, "worse_held_out", True)
    assert (swapped.week_before.messages, swapped.week_before.rate) == (4, 0.5)
    assert (swapped.week_after.messages, swapped.week_after.rate) == (4, 0.75)
    assert review.understanding(session, NOW, NOW + timedelta(days=1)).rate is None, "no data is not 0 %"
    from bot.review import stats_text
    text = stats_text(stats, "fr").replace("\u202f", " ").replace("\xa0", " ")
    assert "Taux de compréhension sur 7 jours : 62 % (5 messages compris sur 8)." in text
    assert text.splitlines()[-1].endswith(
        "mis en service. Jeu de test : 91 % → 93 %. Compréhension : 50 % la semaine d'avant → 75 % depuis.")
    assert text.splitlines()[-2].endswith("refusé (moins bon sur le jeu de test). Jeu de test : 93 % → 80 %.")


def test_the_command_line_lists_and_labels(tmp_path):
    from bot.cli import prepare_database
    from crm.db import engine_for
    from tests.test_settings_cli import cli

    url = f"sqlite:///{tmp_path / 'review.db'}"
    prepare_database(url, demo=False)
    with unit_of_work(engine_for(url)) as s:
        review.note(s, "le bidule pour agrafer", "fallback", GUESS, message_id="1", now=NOW)
        review.note(s, "le bidule pour agrafer", "fallback", GUESS, message_id="2", now=NOW)
        review.note(s, "mon 06 12 34 56 78 svp rappel", "asked_human", GUESS, message_id="3", now=NOW)
    off = {"DEMO_DATA": "off"}  # an empty catalogue stays empty: stdout is the list alone
    listed = cli("review", "list", database_url=url, extra_env=off)
    assert listed.returncode == 0, listed.stderr
    first, second = listed.stdout.splitlines()
    assert first.split("\t")[1:3] == ["×2", "fallback"] and first.endswith("le bidule pour agrafer")
    assert second.endswith("mon [phone] svp rappel")
    item_id = int(first.split("\t")[0])
    wrong = cli("review", "label", str(item_id), "buy_stapler", database_url=url, extra_env=off)
    assert wrong.returncode == 1 and '"buy_stapler" is not an intent the assistant knows' in wrong.stderr
    done = cli("review", "label", str(item_id), "ask_catalog", database_url=url, extra_env=off)
    assert done.returncode == 0 and done.stdout.strip() == f"Message {item_id} labelled ask_catalog."
    again = cli("review", "label", str(item_id), "complain", database_url=url, extra_env=off)
    assert again.returncode == 1, "a label is never overwritten"
    stats = cli("review", "stats", database_url=url, extra_env=off)
    assert stats.stdout.splitlines() == [
        "📊 Review: 1 to review, 1 labelled, 0 off topic, 0 skipped.",
        "Labels given: 1, 1 of them since the last retraining.",
        "Understanding rate over 7 days: no data (0 of 0 messages understood).", "No retraining yet."]
    assert cli("review", "stats", "--language", "fr", database_url=url, extra_env=off).stdout.startswith(
        "📊 Revue : 1 à revoir")


def test_the_nightly_retraining_is_claimed_once_after_its_hour_when_enough_labels_came(engine, monkeypatch):
    import time_machine

    import crm.review
    from crm.company import company_profile

    profile = company_profile()
    monkeypatch.setattr(crm.review, "company_profile", lambda: {
        **profile, "review": {**profile["review"], "retrain_after_labels": 3, "retrain_at": "03:00"}})
    paris_2h = datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc)  # 02:00 in Paris
    with unit_of_work(engine) as s:
        reviewer = add_staff(s, 1, "manager", "Claire Dubois").id
    with time_machine.travel(paris_2h, tick=False):
        with unit_of_work(engine) as s:
            for n in range(3):
                review.note(s, f"phrase à apprendre {'abc'[n]}", "fallback", GUESS, message_id=str(n))
                review.label(s, review.next_item(s, reviewer).id, "ask_catalog", reviewer)
            assert not review.claim_nightly_retraining(s), "before 03:00, desk time"
    with time_machine.travel(paris_2h + timedelta(hours=1, minutes=5), tick=False):
        with unit_of_work(engine) as s:
            assert review.claim_nightly_retraining(s), "past 03:00 with 3 new labels"
        with unit_of_work(engine) as s:
            assert not review.claim_nightly_retraining(s), "once a night, whatever the processes"
    with time_machine.travel(paris_2h + timedelta(days=1, hours=1, minutes=5), tick=False):
        with unit_of_work(engine) as s:
            assert not review.claim_nightly_retraining(s), "no new label since last night"
            review.note(s, "encore une phrase", "fallback", GUESS, message_id="x")
            review.label(s, review.next_item(s, reviewer).id, "complain", reviewer)
            review.note_retraining(s)  # an admin's /retrain: new labels count from here
            for n in range(3):
                review.note(s, f"nouvelle phrase {'abc'[n]}", "fallback", GUESS, message_id=f"n{n}")
            assert not review.claim_nightly_retraining(s), "no label since the manual retraining"
