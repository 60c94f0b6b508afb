"""Understanding: accuracy and macro-F1 of the trained model on the project's held-out set and on
each file of ../shared/benchmarks/ (measured on, never trained on; for their out_of_scope rows,
nlu_fallback counts as correct), with per-intent scores and the most frequent confusions; plus a
5-fold cross-validation of the training data (Rasa's, one model per fold)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from bot.nlu_eval import RASA_PYTHON, parse_files, score
from bot.rasa_model import train_if_needed
from crm.settings import ROOT

HELD_OUT = ROOT / "tests" / "nlu" / "heldout.yml"
SHARED = ROOT.parent / "shared" / "benchmarks"
CV_EPOCHS = int(os.environ.get("BENCH_CV_EPOCHS", "25"))


def evaluation_files() -> list[Path]:
    return [HELD_OUT] + (sorted(SHARED.glob("*.yml")) if SHARED.is_dir() else [])


def evaluate() -> list[dict]:
    files = evaluation_files()
    rows = parse_files(files, train_if_needed())
    out = []
    for path in files:
        scores = score([(r["intent"], r["prediction"]) for r in rows if r["file"] == str(path)])
        name = "held-out (tests/nlu/heldout.yml)" if path == HELD_OUT else f"shared/benchmarks/{path.name}"
        out.append({"set": name, "examples": scores["examples"], "accuracy": round(scores["accuracy"], 3),
                    "macro_f1": round(scores["macro_f1"], 3),
                    "per_intent": {k: {m: round(v, 3) if isinstance(v, float) else v for m, v in d.items()}
                                   for k, d in scores["per_intent"].items()},
                    "confusions": scores["confusions"]})
    return out


def cv_config(folder: Path, epochs: int) -> Path:
    """config.yml with DIET trained for `epochs` (the full 70 per fold would not fit the
    benchmark's time budget on 2 cores); everything else identical."""
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"] == "DIETClassifier":
            component["epochs"] = epochs
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def cross_validation(folds: int = 5, epochs: int = CV_EPOCHS) -> dict:
    """`rasa test nlu --cross-validation` on nlu/: its pooled test-fold report."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        rasa = RASA_PYTHON.parent / "rasa"
        env = {**os.environ, "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        config = cv_config(Path(folder), epochs)
        result = subprocess.run([str(rasa), "test", "nlu", "--nlu", "nlu", "--config", str(config),
                                 "--cross-validation", "--folds", str(folds), "--out", str(Path(folder) / "out")],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        report_path = Path(folder) / "out" / "intent_report.json"
        if result.returncode != 0 or not report_path.exists():
            return {"folds": folds, "error": (result.stderr or result.stdout)[-1500:]}
        report = json.loads(report_path.read_text())
        errors_path = Path(folder) / "out" / "intent_errors.json"
        errors = json.loads(errors_path.read_text()) if errors_path.exists() else []
    per_fold = re.search(r"test Accuracy: ([\d.]+) \(([\d.]+)\)", result.stdout + result.stderr)
    confusions = Counter((e["intent"], (e.get("intent_prediction") or {}).get("name")) for e in errors)
    per_intent = {k: v for k, v in report.items() if isinstance(v, dict) and "f1-score" in v
                  and k not in ("macro avg", "weighted avg", "micro avg")}
    return {
        "folds": folds, "diet_epochs": epochs, "seconds": round(seconds, 1),
        "accuracy": round(report.get("accuracy", report.get("micro avg", {}).get("f1-score", 0.0)), 3),
        "macro_f1": round(report["macro avg"]["f1-score"], 3),
        "accuracy_mean_std_over_folds": [float(per_fold.group(1)), float(per_fold.group(2))] if per_fold else None,
        "per_intent": {k: {m: round(v, 3) if isinstance(v, float) else v for m, v in d.items()
                           if m in ("precision", "recall", "f1-score", "support")} for k, d in per_intent.items()},
        "confusions": [{"intent": g, "predicted": p, "count": n} for (g, p), n in confusions.most_common(10)],
    }


def run(folds: int = 5) -> dict:
    return {"benchmark": "nlu", "sets": evaluate(), "cross_validation": cross_validation(folds) if folds else None}
