"""`make nlu-eval`: evaluate the current model on any Rasa-format NLU file.

Rasa writes its standard reports under results/; the scores printed here count a prediction of
`nlu_fallback` as `out_of_scope` (rejecting what the assistant does not handle is right).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

from bot.rasa_model import RASA, train_if_needed
from crm.settings import ROOT

RESULTS = ROOT / "results"


def normalise(intent: str | None) -> str:
    return "out_of_scope" if intent in (None, "", "nlu_fallback") else intent


def score(pairs: list[tuple[str, str]]) -> dict:
    """Accuracy and macro-F1 over the labels present (gold or predicted), fallback = out_of_scope."""
    pairs = [(normalise(g), normalise(p)) for g, p in pairs]
    if not pairs:
        return {"examples": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_intent": {}}
    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    tp, fp, fn = Counter(), Counter(), Counter()
    for gold, predicted in pairs:
        if gold == predicted:
            tp[gold] += 1
        else:
            fp[predicted] += 1
            fn[gold] += 1
    per_intent = {}
    for label in labels:
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[label] = {"precision": precision, "recall": recall, "f1": f1,
                             "support": tp[label] + fn[label]}
    return {
        "examples": len(pairs),
        "accuracy": sum(tp.values()) / len(pairs),
        "macro_f1": sum(v["f1"] for v in per_intent.values()) / len(labels),
        "per_intent": per_intent,
    }


def read_predictions(out: Path) -> list[tuple[str, str]]:
    pairs = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = out / name
        if path.exists():
            for row in json.loads(path.read_text()):
                pairs.append((row["intent"], (row.get("intent_prediction") or {}).get("name")))
    return pairs


def evaluate(nlu_file: Path, out: Path = RESULTS) -> dict:
    if not nlu_file.exists():
        raise SystemExit(f"NLU_TEST file not found: {nlu_file}")
    model = train_if_needed()
    out.mkdir(parents=True, exist_ok=True)
    command = [str(RASA), "test", "nlu", "--nlu", str(nlu_file), "--model", str(model),
               "--out", str(out), "--no-plot", "--successes"]
    env = {**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise SystemExit(f"rasa test nlu failed (exit code {result.returncode})")
    scores = score(read_predictions(out))
    (out / "scores.json").write_text(json.dumps(scores, indent=2))
    return scores
