"""Our Rasa pipeline components (nlu_components/), trained and loaded by the real Rasa engine in
.venv-rasa (tests/nlu/components_probe.py), with every network connection refused."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from bot.nlu_eval import RASA_PYTHON
from bot.rasa_model import rasa_environment
from crm.settings import ROOT

pytestmark = pytest.mark.skipif(not RASA_PYTHON.exists(), reason=".venv-rasa is not set up (make setup)")

# French only, a few phrasings each: what the classifier must still understand comes from the
# pretrained encoders, not from shared words.
TRAINING = {
    "greet": ["bonjour", "salut", "bonsoir", "coucou", "bonjour à vous", "hello"],
    "order_status": ["où en est ma commande ?", "ma commande est-elle partie ?", "suivi de commande",
                     "quand vais-je recevoir mon colis ?", "je n'ai pas reçu ma commande", "état de ma commande"],
    "request_human": ["je veux parler à un conseiller", "passez-moi un humain", "un vrai conseiller svp",
                      "je voudrais parler à quelqu'un", "mettez-moi en relation avec une personne",
                      "appelez un responsable"],
    "ask_payment": ["quels moyens de paiement acceptez-vous ?", "je peux payer par carte ?",
                    "paiement par virement possible ?", "vous prenez les chèques ?", "paiement en trois fois ?",
                    "comment régler ma commande ?"],
    "out_of_scope": ["quel temps fait-il ?", "raconte une blague", "mets de la musique",
                     "quelle est la capitale du Japon ?", "règle un réveil à 7 h", "qui a gagné le match ?"],
}
CONFIG = {
    "recipe": "default.v1", "language": "fr", "assistant_id": "probe",
    "pipeline": [
        {"name": "WhitespaceTokenizer"},
        {"name": "CountVectorsFeaturizer"},
        {"name": "nlu_components.encoders.SentenceEncoderFeaturizer", "encoders": ["e5", "use"], "threads": 2},
        {"name": "nlu_components.classifier.LinearIntentClassifier"},
        {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.0},
    ],
    "policies": [],
}


def probe(tmp_path, texts: list[str], config: dict = CONFIG) -> subprocess.CompletedProcess:
    (tmp_path / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "nlu.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": intent, "examples": "".join(f"- {t}\n" for t in examples)} for intent, examples in TRAINING.items()
    ]}, allow_unicode=True), encoding="utf-8")
    return subprocess.run(
        [str(RASA_PYTHON), str(ROOT / "tests" / "nlu" / "components_probe.py"), str(tmp_path / "config.yml"),
         str(tmp_path / "nlu.yml"), str(tmp_path / "out")],
        input=json.dumps(texts), cwd=ROOT, env=rasa_environment(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    texts = [
        "pourrais-je m'entretenir avec une personne de votre équipe ?",  # no word in common with training
        "mon paquet n'est toujours pas livré",
        "where is my parcel?",  # English, trained on French only
        "can I talk to a real person?",
        "do you accept credit cards?",
        "quelle heure est-il à New York ?",
        "",
        "   ",
        "commande " * 4000,  # 36,000 characters
    ]
    result = probe(tmp_path_factory.mktemp("probe"), texts)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    return output, {r["text"]: r for r in output["results"]}


def test_a_paraphrase_with_no_word_in_common_is_understood(parsed):
    _, by_text = parsed
    assert by_text["pourrais-je m'entretenir avec une personne de votre équipe ?"]["intent"] == "request_human"
    assert by_text["mon paquet n'est toujours pas livré"]["intent"] == "order_status"


def test_english_is_understood_from_french_training_data(parsed):
    _, by_text = parsed
    assert by_text["where is my parcel?"]["intent"] == "order_status"
    assert by_text["can I talk to a real person?"]["intent"] == "request_human"
    assert by_text["do you accept credit cards?"]["intent"] == "ask_payment"


def test_out_of_scope_and_empty_messages_fall_back(parsed):
    _, by_text = parsed
    assert by_text["quelle heure est-il à New York ?"]["intent"] in ("out_of_scope", "nlu_fallback")
    assert by_text[""]["intent"] == "nlu_fallback"
    assert by_text["   "]["intent"] == "nlu_fallback"


def test_a_huge_message_is_classified_without_error(parsed):
    _, by_text = parsed
    huge = by_text[("commande " * 4000)[:80]]
    assert huge["intent"] and huge["ranking"]


def test_nothing_is_fetched_from_the_network(parsed):
    output, _ = parsed
    assert output["network_attempts"] == []


def test_an_unknown_encoder_is_refused_with_its_name(tmp_path):
    config = json.loads(json.dumps(CONFIG))
    config["pipeline"][2]["encoders"] = ["bert-large"]
    result = probe(tmp_path, ["bonjour"], config)
    assert result.returncode != 0
    assert "'encoders' must list one or more of ['e5', 'use']" in result.stderr + result.stdout


def test_the_encoders_run_no_more_threads_than_the_cores_the_process_was_given():
    """The replica layout gives each Rasa worker its share of the cores (OMP_NUM_THREADS): the
    configured 2 threads become 1 there, and stay 2 where nothing says otherwise. e5's idle
    threads spin briefly before sleeping, unless the operator says otherwise."""
    script = ("import os, json\n"
              "from nlu_components.encoders import SPIN_COUNT, encoder, threads_allowed\n"
              "found = {}\n"
              "for share in (None, '1', '4', '0', 'two'):\n"
              "    os.environ.pop('OMP_NUM_THREADS', None)\n"
              "    if share is not None:\n"
              "        os.environ['OMP_NUM_THREADS'] = share\n"
              "    found[str(share)] = threads_allowed(2)\n"
              "encoder('e5', 2)\n"
              "found['spin'] = os.environ.get('GOMP_SPINCOUNT') == SPIN_COUNT\n"
              "print(json.dumps(found))\n")
    env = {name: value for name, value in rasa_environment().items() if name != "GOMP_SPINCOUNT"}
    result = subprocess.run([str(RASA_PYTHON), "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "None": 2, "1": 1, "4": 2, "0": 2, "two": 2, "spin": True}
