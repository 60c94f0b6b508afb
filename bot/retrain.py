"""Retrain with the managers' labels, and swap the new model in only if it is not worse.

1. The labelled examples of the review queue (crm/review.py) are split: one in five (in the
   order of a hash of their text, so the same labels split the same way) is kept aside to judge
   the candidate, the rest trained on.
2. A candidate model is trained in a background process at a low priority (`nice`), so that the
   running assistant keeps its speed.
3. The candidate and the model Rasa serves now each parse the held-out set
   (tests/nlu/heldout.yml, never trained on) and the examples kept aside.
4. The gate: the candidate is swapped in only if its held-out accuracy is at most GATE_MARGIN
   below the current one (the noise of one or two sentences of the set), and it does at least as
   well on the examples kept aside (with fewer than five labels nothing is kept aside, and the
   held-out set alone decides).
5. The swap goes through Rasa's HTTP API (PUT /model), then GET /status must name the new
   model; otherwise the previous one is put back. A refused candidate is kept in models/refused/.

Every outcome is kept in the CRM (table retrainings: the figures before and after, for /review
stats), and the admins are told through the outbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from bot.nlu_eval import parse_files, score
from bot.rasa_model import MODELS, train_if_needed, training_record
from crm.alerts import tell_admins
from crm.db import unit_of_work
from crm.i18n import Texts, format_percent
from crm.review import labelled_examples, record_retraining, training_examples
from crm.settings import ROOT, VAR

log = logging.getLogger(__name__)
TEXTS = Texts("review.retrain")
HELD_OUT = ROOT / "tests" / "nlu" / "heldout.yml"
GATE_MARGIN = 0.01
ASIDE_EVERY = 5  # one labelled example in five judges the candidate
REFUSED = MODELS / "refused"


@dataclass(frozen=True)
class Figures:
    """Accuracy of a model on the held-out set and on the labelled examples kept aside."""

    held_out: float
    aside: float | None


@dataclass(frozen=True)
class Outcome:
    swapped: bool
    reason: str          # swapped: "not_worse"; refused: "worse_held_out", "worse_aside",
                         # "no_labels", "no_current_model", "swap_failed"
    labels: int          # labelled examples in the queue
    trained_on: int
    kept_aside: int
    before: Figures | None = None
    after: Figures | None = None
    model: str = ""      # the candidate's file name


def split(examples: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(to train on, kept aside): the examples ordered by a hash of their text, every fifth kept
    aside once there are at least ASIDE_EVERY of them (the same labels always split the same way)."""
    pairs = sorted(((intent, text) for intent, texts in examples.items() for text in texts),
                   key=lambda pair: hashlib.sha256(pair[1].encode()).hexdigest())
    train: dict[str, list[str]] = {}
    aside: dict[str, list[str]] = {}
    for n, (intent, text) in enumerate(pairs):
        (aside if len(pairs) >= ASIDE_EVERY and n % ASIDE_EVERY == 0 else train).setdefault(intent, []).append(text)
    return train, aside


def write_nlu(examples: dict[str, list[str]], path: Path) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    nlu = [{"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)} for intent, texts in sorted(examples.items())]
    path.write_text(yaml.safe_dump({"version": "3.1", "nlu": nlu}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def _digest(path: Path | None) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path is not None else "-"


def figures(model: Path, aside: Path | None) -> Figures:
    """The model's accuracies, parsed once per model, held-out set and aside set (kept in the
    model's training record: a restart or a second retraining does not parse them again)."""
    key = f"{_digest(HELD_OUT)}:{_digest(aside)}"
    record = training_record(model)
    try:
        known = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
    except ValueError:
        known = {}
    if isinstance(known.get("figures"), dict) and key in known["figures"]:
        return Figures(*known["figures"][key])
    files = [HELD_OUT] + ([aside] if aside else [])
    rows = parse_files(files, model)

    def accuracy(path: Path) -> float:
        return score([(r["intent"], r["prediction"]) for r in rows if r["file"] == str(path)])["accuracy"]

    found = Figures(accuracy(HELD_OUT), accuracy(aside) if aside else None)
    known.setdefault("figures", {})[key] = [found.held_out, found.aside]
    record.write_text(json.dumps(known), encoding="utf-8")
    return found


def gate(before: Figures, after: Figures) -> str | None:
    """None when the candidate may replace the current model, else why not."""
    if after.held_out < before.held_out - GATE_MARGIN:
        return "worse_held_out"
    if after.aside is not None and before.aside is not None and after.aside < before.aside:
        return "worse_aside"
    return None


def served_model(rasa_url: str, token: str) -> Path | None:
    """The model file Rasa serves now (GET /status names the file; ours live in models/)."""
    # Rasa answers /status between the messages it is working through: slow under a burst.
    response = httpx.get(f"{rasa_url}/status", params={"token": token}, timeout=60)
    response.raise_for_status()
    name = response.json().get("model_file")
    if not name:
        return None
    return Path(name) if Path(name).is_absolute() else MODELS / Path(name).name


def swap(rasa_url: str, token: str, model: Path, previous: Path | None) -> bool:
    """Load `model` into the running Rasa (PUT /model; requests that arrive meanwhile wait, none
    is dropped), and check it is the one served; if not, put `previous` back."""
    try:
        httpx.put(f"{rasa_url}/model", params={"token": token}, json={"model_file": str(model)},
                  timeout=300).raise_for_status()
        served = served_model(rasa_url, token)
        if served is not None and served.name == model.name:
            return True
        log.error("Rasa serves %s after the swap, not %s", served, model.name)
    except httpx.HTTPError as exc:
        log.error("swapping the model in failed: %s", exc)
    if previous is not None:
        try:
            httpx.put(f"{rasa_url}/model", params={"token": token}, json={"model_file": str(previous)},
                      timeout=300).raise_for_status()
        except httpx.HTTPError as exc:
            log.error("putting the previous model back failed: %s", exc)
    return False


def record(session, outcome: Outcome) -> None:
    """Keep the outcome in the CRM (retrainings): /review stats shows it."""
    before, after = outcome.before, outcome.after
    record_retraining(session, dict(
        swapped=outcome.swapped, reason=outcome.reason, model=outcome.model, labels=outcome.labels,
        trained_on=outcome.trained_on, kept_aside=outcome.kept_aside,
        before_held_out=before.held_out if before else None, before_aside=before.aside if before else None,
        after_held_out=after.held_out if after else None, after_aside=after.aside if after else None))


@dataclass(frozen=True)
class Labels:
    """The review queue's labelled examples as training sentences, split (see split())."""

    train: dict[str, list[str]]
    aside: dict[str, list[str]]

    @property
    def trained_on(self) -> int:
        return sum(len(t) for t in self.train.values())

    @property
    def kept_aside(self) -> int:
        return sum(len(t) for t in self.aside.values())


def read_labels(session_factory) -> Labels:
    with session_factory() as session:
        return Labels(*split(training_examples(labelled_examples(session))))


def write_labels(labels: Labels, labels_file: Path) -> Path | None:
    """The examples to train on at `labels_file`, those kept aside beside it (aside.yml);
    returns the aside file, or None when nothing is kept aside."""
    write_nlu(labels.train, labels_file)
    return write_nlu(labels.aside, labels_file.with_name("aside.yml")) if labels.aside else None


def retrain(session_factory, rasa_url: str, token: str, labels_file: Path) -> Outcome:
    """The whole loop, blocking (minutes): run it in a thread or a process of its own."""
    labels = read_labels(session_factory)
    total = labels.trained_on + labels.kept_aside
    if total == 0:
        return Outcome(False, "no_labels", 0, 0, 0)
    current = served_model(rasa_url, token)
    if current is None or not current.exists():
        return Outcome(False, "no_current_model", total, labels.trained_on, labels.kept_aside)
    aside_file = write_labels(labels, labels_file)
    candidate = train_if_needed(labels_file, keep=current, nice=True)
    before, after = figures(current, aside_file), figures(candidate, aside_file)
    refused = gate(before, after) if candidate != current else None
    if refused is None and candidate != current and not swap(rasa_url, token, candidate, current):
        refused = "swap_failed"
    if refused is not None:
        REFUSED.mkdir(parents=True, exist_ok=True)
        shutil.copy2(candidate, REFUSED / candidate.name)  # kept for inspection
    outcome = Outcome(refused is None, refused or "not_worse", total, labels.trained_on, labels.kept_aside,
                      before, after, candidate.name)
    with session_factory() as session:
        record(session, outcome)
    return outcome


def startup_model(session_factory, labels_file: Path) -> tuple[Path, str]:
    """The model `python -m bot run` starts Rasa with, and why: the repository's own model, or,
    when managers gave labels, the model trained with them (the same split and file as retrain(),
    so an accepted candidate is found in the cache) if the gate finds it not worse than the
    repository's own. Labels reach the assistant through the gate only, at a start as at a
    retraining."""
    base = train_if_needed(None)
    labels = read_labels(session_factory)
    if not labels.trained_on:
        return base, "no_labels"
    aside_file = write_labels(labels, labels_file)
    candidate = train_if_needed(labels_file, keep=base)
    refused = gate(figures(base, aside_file), figures(candidate, aside_file))
    return (base, refused) if refused else (candidate, "not_worse")


def outcome_text(outcome: Outcome, language: str) -> str:
    """What the admins are told, in their language."""
    if outcome.reason == "no_labels":
        return TEXTS.t("failed", language, error=TEXTS.t("reason.no_labels", language))

    def share(value: float | None) -> str:
        return format_percent(value, language) if value is not None else TEXTS.t("none", language)

    numbers = dict(
        model=outcome.model, trained=outcome.trained_on,
        before_held=share(outcome.before.held_out if outcome.before else None),
        after_held=share(outcome.after.held_out if outcome.after else None),
        before_aside=share(outcome.before.aside if outcome.before else None),
        after_aside=share(outcome.after.aside if outcome.after else None))
    if outcome.swapped:
        return TEXTS.t("swapped", language, **numbers)
    return TEXTS.t("refused", language, reason=TEXTS.t(f"reason.{outcome.reason}", language), **numbers)


def retrain_and_tell(engine, rasa_url: str, token: str) -> Outcome | None:
    """retrain(), then every admin is told the outcome (or the failure) through the outbox."""
    try:
        outcome = retrain(lambda: unit_of_work(engine), rasa_url, token, VAR / "review" / "candidate.yml")
    except (Exception, SystemExit) as exc:  # a failed training (SystemExit from train_if_needed) too
        log.exception("retraining failed")
        error = str(exc)[:200] or type(exc).__name__
        with unit_of_work(engine) as session:
            tell_admins(session, lambda language: TEXTS.t("failed", language, error=error))
        return None
    with unit_of_work(engine) as session:
        tell_admins(session, lambda language: outcome_text(outcome, language))
    return outcome
