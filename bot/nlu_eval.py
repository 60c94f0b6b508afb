"""`make nlu-eval`: evaluate the current model on any Rasa-format NLU file.

Every example is parsed by the trained model as the server parses it (tools/rasa_parse.py, run in
.venv-rasa), so a low-confidence message really is `nlu_fallback` (`rasa test nlu` undoes the
fallback and skips files with a single intent). The reports are written under results/ in Rasa's
standard layout: intent_report.json, intent_errors.json, intent_successes.json. Scores count a
prediction of `nlu_fallback` as `out_of_scope`: rejecting what the assistant does not handle is
the right answer for those.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import yaml

from bot.rasa_model import rasa_environment, train_if_needed
from crm.settings import ROOT

RESULTS = ROOT / "results"
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"


def normalise(intent: str | None) -> str:
    return "out_of_scope" if intent in (None, "", "nlu_fallback") else intent


def score(pairs: list[tuple[str, str]]) -> dict:
    """Accuracy, and macro-F1 over the labels present in the file; fallback = out_of_scope."""
    pairs = [(normalise(g), normalise(p)) for g, p in pairs]
    if not pairs:
        return {"examples": 0, "accuracy": 0.0, "macro_f1": 0.0, "per_intent": {}, "confusions": []}
    gold_labels = {g for g, _ in pairs}
    labels = sorted(gold_labels | {p for _, p in pairs})
    tp, fp, fn = Counter(), Counter(), Counter()
    confusions = Counter()
    for gold, predicted in pairs:
        if gold == predicted:
            tp[gold] += 1
        else:
            fp[predicted] += 1
            fn[gold] += 1
            confusions[(gold, predicted)] += 1
    per_intent = {}
    for label in labels:
        precision = tp[label] / (tp[label] + fp[label]) if tp[label] + fp[label] else 0.0
        recall = tp[label] / (tp[label] + fn[label]) if tp[label] + fn[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_intent[label] = {"precision": precision, "recall": recall, "f1-score": f1,
                             "support": tp[label] + fn[label]}
    return {
        "examples": len(pairs),
        "accuracy": sum(tp.values()) / len(pairs),
        "macro_f1": sum(per_intent[g]["f1-score"] for g in gold_labels) / len(gold_labels),
        "per_intent": per_intent,
        "confusions": [{"intent": g, "predicted": p, "count": n}
                       for (g, p), n in confusions.most_common(10)],
    }


def nlu_examples(path: Path) -> list[tuple[str, str]]:
    """(text, intent) of every example of a Rasa NLU file of ours (plain texts, no entities)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [(line.strip()[2:].strip(), item["intent"]) for item in data.get("nlu") or [] if "intent" in item
            for line in (item.get("examples") or "").splitlines() if line.strip().startswith("- ")]


def parse_files(nlu_files: list[Path], model: Path) -> list[dict]:
    """Every example of the files, parsed with one load of the model; each row names its file."""
    command = [str(RASA_PYTHON), str(ROOT / "tools" / "rasa_parse.py"), str(model), *map(str, nlu_files)]
    result = subprocess.run(command, cwd=ROOT, env=rasa_environment(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"parsing {', '.join(map(str, nlu_files))} failed:\n{result.stderr[-2000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def write_reports(rows: list[dict], scores: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    as_rasa = [{"text": r["text"], "intent": r["intent"],
                "intent_prediction": {"name": r["prediction"], "confidence": r["confidence"]}}
               for r in rows]
    correct = [r for r in as_rasa
               if normalise(r["intent"]) == normalise(r["intent_prediction"]["name"])]
    wrong = [r for r in as_rasa if r not in correct]
    report = dict(scores["per_intent"])
    report["accuracy"] = scores["accuracy"]
    present = [v for v in scores["per_intent"].values() if v["support"]]  # the file's own intents
    report["macro avg"] = {
        key: sum(v[key] for v in present) / max(len(present), 1) for key in ("precision", "recall", "f1-score")
    } | {"support": scores["examples"]}
    (out / "intent_report.json").write_text(json.dumps(report, indent=2))
    (out / "intent_errors.json").write_text(json.dumps(wrong, indent=2, ensure_ascii=False))
    (out / "intent_successes.json").write_text(json.dumps(correct, indent=2, ensure_ascii=False))


def evaluate(nlu_file: Path, out: Path = RESULTS) -> dict:
    if not nlu_file.is_file():
        raise SystemExit(f"NLU_TEST file not found: {nlu_file}")
    rows = parse_files([nlu_file], train_if_needed())
    scores = score([(r["intent"], r["prediction"]) for r in rows])
    write_reports(rows, scores, out)
    return scores
