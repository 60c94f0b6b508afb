"""Retraining with the managers' labels (bot/retrain.py): the split, the gate, and the loop with
Rasa, training and evaluation stood in for (the real ones run end to end in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import retrain
from bot.retrain import Figures, Outcome
from crm import review
from crm.db import unit_of_work
from crm.models import Notification, ReviewItem
from crm.staff import add_staff


def test_one_labelled_example_in_five_is_kept_aside_the_same_way_every_time():
    examples = {"order_status": [f"où est mon colis numéro {n}" for n in range(40)], "complain": ["cassé"]}
    train, aside = retrain.split(examples)
    assert retrain.split(examples) == (train, aside), "stable"
    kept = sum(len(t) for t in aside.values())
    assert kept == 9 and kept + sum(len(t) for t in train.values()) == 41
    assert not set(aside.get("order_status", [])) & set(train["order_status"])
    train, aside = retrain.split({"greet": ["salut", "coucou"]})
    assert (sorted(train["greet"]), aside) == (["coucou", "salut"], {}), "under five labels, all are trained on"


@pytest.mark.parametrize("before,after,verdict", [
    (Figures(0.95, 0.5), Figures(0.95, 1.0), None),
    (Figures(0.95, 0.5), Figures(0.945, 0.5), None),                 # within the margin, as good aside
    (Figures(0.95, 0.5), Figures(0.93, 1.0), "worse_held_out"),
    (Figures(0.95, 0.75), Figures(0.96, 0.5), "worse_aside"),
    (Figures(0.95, None), Figures(0.95, None), None),
])
def test_the_gate(before, after, verdict):
    assert retrain.gate(before, after) == verdict


@pytest.fixture
def loop(engine, tmp_path, monkeypatch):
    """The review queue with labels, and stand-ins for Rasa, training and evaluation."""
    with unit_of_work(engine) as s:
        add_staff(s, 900, "admin", "Alice Admin")
        add_staff(s, 901, "manager", "Marc Manager")
        for n in range(6):
            review.note(s, f"le bidule numéro {'abcdef'[n]} svp", "fallback", [("greet", 0.3)], message_id=str(n))
            item = review.next_item(s, _staff_id(s))
            review.label(s, item.id, "ask_catalog", _staff_id(s))
    current, candidate = tmp_path / "models" / "current.tar.gz", tmp_path / "models" / "candidate.tar.gz"
    current.parent.mkdir()
    current.write_bytes(b"current")
    candidate.write_bytes(b"candidate")
    calls = {"swap": [], "trained": []}
    monkeypatch.setattr(retrain, "VAR", tmp_path / "var")
    monkeypatch.setattr(retrain, "REFUSED", tmp_path / "models" / "refused")
    monkeypatch.setattr(retrain, "served_model", lambda url, token: current)
    monkeypatch.setattr(retrain, "train_if_needed", lambda labels=None, keep=None, nice=False: current
                        if labels is None else calls["trained"].append((labels.read_text(encoding="utf-8"), keep, nice))
                        or candidate)
    monkeypatch.setattr(retrain, "swap", lambda url, token, model, previous: calls["swap"].append(model) or True)
    return engine, current, candidate, calls


def _staff_id(session):
    from sqlalchemy import select

    from crm.models import Staff
    return session.scalar(select(Staff.id).where(Staff.telegram_id == 901))


def told(engine) -> list[str]:
    with unit_of_work(engine) as s:
        return [n.text for n in s.query(Notification).filter(Notification.chat_id == 900)]


def test_a_candidate_not_worse_is_swapped_in_and_the_admins_told(loop, monkeypatch, tmp_path):
    engine, current, candidate, calls = loop
    monkeypatch.setattr(retrain, "figures", lambda model, aside: Figures(0.95, 0.5) if model == current
                        else Figures(0.955, 1.0))
    outcome = retrain.retrain_and_tell(engine, "http://rasa", "token")
    assert (outcome.swapped, outcome.reason, outcome.labels) == (True, "not_worse", 6)
    assert outcome.trained_on + outcome.kept_aside == 6 and outcome.kept_aside >= 1
    [(training, keep, nice)] = calls["trained"]
    assert "intent: ask_catalog" in training and keep == current and nice, "in the background, current kept"
    assert calls["swap"] == [candidate]
    [message] = told(engine)
    assert message.startswith("🧠 Nouveau modèle en service (candidate.tar.gz)")
    assert "95 %" in message.replace("\u202f", " ").replace("\xa0", " ")
    with unit_of_work(engine) as s:
        [kept] = review.stats(s).retrainings
    assert (kept.swapped, kept.before_held_out, kept.after_held_out) == (True, 0.95, 0.955)


def test_a_worse_candidate_is_refused_kept_for_inspection_and_the_admins_told(loop, monkeypatch, tmp_path):
    engine, current, candidate, calls = loop
    monkeypatch.setattr(retrain, "figures", lambda model, aside: Figures(0.95, 1.0) if model == current
                        else Figures(0.80, 0.0))
    outcome = retrain.retrain_and_tell(engine, "http://rasa", "token")
    assert (outcome.swapped, outcome.reason) == (False, "worse_held_out")
    assert calls["swap"] == [], "never loaded into Rasa"
    assert (tmp_path / "models" / "refused" / "candidate.tar.gz").read_bytes() == b"candidate"
    [message] = told(engine)
    assert message.startswith("🧠 Nouveau modèle refusé (moins bon sur le jeu de test)")


def test_a_training_that_fails_leaves_the_model_in_service_and_says_so(loop, monkeypatch):
    engine, current, candidate, calls = loop

    def broken(labels, keep, nice):
        raise SystemExit("Training failed (exit code 1); see the output above.")

    monkeypatch.setattr(retrain, "train_if_needed", broken)
    assert retrain.retrain_and_tell(engine, "http://rasa", "token") is None
    assert calls["swap"] == []
    [message] = told(engine)
    assert message == "🧠 L'entraînement a échoué (Training failed (exit code 1); see the output above.) ; " \
                      "le modèle actuel reste en service."


def test_nothing_labelled_nothing_trained(engine, monkeypatch):
    monkeypatch.setattr(retrain, "train_if_needed", lambda *a, **k: pytest.fail("trained"))
    outcome = retrain.retrain(lambda: unit_of_work(engine), "http://rasa", "token", Path("/nonexistent/x.yml"))
    assert outcome == Outcome(False, "no_labels", 0, 0, 0)


def test_a_start_serves_the_labelled_model_only_when_the_gate_lets_it_in(loop, monkeypatch, tmp_path):
    engine, base, candidate, calls = loop  # `current` stands for the repository's own model here
    labels_file = tmp_path / "var" / "review" / "candidate.yml"
    monkeypatch.setattr(retrain, "figures", lambda model, aside: Figures(0.95, 0.5) if model == base
                        else Figures(0.96, 1.0))
    assert retrain.startup_model(lambda: unit_of_work(engine), labels_file) == (candidate, "not_worse")
    [(training, keep, nice)] = calls["trained"]
    assert keep == base and not nice and training == labels_file.read_text(encoding="utf-8")
    monkeypatch.setattr(retrain, "figures", lambda model, aside: Figures(0.95, 0.5) if model == base
                        else Figures(0.90, 1.0))
    assert retrain.startup_model(lambda: unit_of_work(engine), labels_file) == (base, "worse_held_out"), \
        "labels the gate refuses never reach the assistant, not even at a restart"
    with unit_of_work(engine) as s:
        s.query(ReviewItem).delete()
    assert retrain.startup_model(lambda: unit_of_work(engine), labels_file) == (base, "no_labels")


def test_a_model_is_judged_once_per_test_set(tmp_path, monkeypatch):
    model = tmp_path / "m.tar.gz"
    model.write_bytes(b"model")
    aside = retrain.write_nlu({"greet": ["coucou les amis"]}, tmp_path / "aside.yml")
    parsed = []

    def parse(files, path):
        parsed.append(files)
        return [{"file": str(f), "intent": "greet", "prediction": "greet" if f == aside else "thank"} for f in files]

    monkeypatch.setattr(retrain, "parse_files", parse)
    assert retrain.figures(model, aside) == Figures(0.0, 1.0)
    assert retrain.figures(model, aside) == Figures(0.0, 1.0) and len(parsed) == 1, "kept in its training record"
    retrain.write_nlu({"greet": ["salut"]}, aside)
    retrain.figures(model, aside)
    assert len(parsed) == 2, "another aside set is parsed again"
