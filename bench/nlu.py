"""Understanding: accuracy and macro-F1 of the trained model on the project's held-out set and on
each file of ../shared/benchmarks/ (measured on, never trained on; for their out_of_scope rows,
nlu_fallback counts as correct), with per-intent scores, the most frequent confusions and the
parse time; the same for the previous pipeline (bench/baseline_config.yml, trained on the same
data in the same run); and a 5-fold cross-validation of nlu/ that also sweeps the fallback
thresholds, which is how config.yml's values were chosen."""

from __future__ import annotations

import hashlib
import random
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

from bot.nlu_eval import nlu_examples, parse_files, score
from bot.rasa_model import MODELS, RASA, rasa_environment, train_if_needed, training_files
from crm.settings import ROOT

HELD_OUT = ROOT / "tests" / "nlu" / "heldout.yml"
SHARED = ROOT.parent / "shared" / "benchmarks"
BASELINE_CONFIG = ROOT / "bench" / "baseline_config.yml"
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
AMBIGUITIES = (0.0, 0.05, 0.1)
# A fallback asks the client to rephrase; a wrong answer sends them the wrong way. Among the
# thresholds whose cross-validated accuracy is within this of the best, the highest is chosen.
TOLERANCE = 0.005


def evaluation_files() -> list[Path]:
    return [HELD_OUT] + (sorted(SHARED.glob("*.yml")) if SHARED.is_dir() else [])


def set_name(path: Path) -> str:
    return "held-out (tests/nlu/heldout.yml)" if path == HELD_OUT else f"shared/benchmarks/{path.name}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def rounded(d: dict) -> dict:
    return {k: {m: round(v, 3) if isinstance(v, float) else v for m, v in inner.items()} for k, inner in d.items()}


def scores_by_file(files: list[Path], model: Path) -> list[dict]:
    rows = parse_files(files, model)
    out = []
    for path in files:
        mine = [r for r in rows if r["file"] == str(path)]
        scores = score([(r["intent"], r["prediction"]) for r in mine])
        times = [r["ms"] for r in mine if "ms" in r]
        out.append({"set": set_name(path), "examples": scores["examples"], "accuracy": round(scores["accuracy"], 3),
                    "macro_f1": round(scores["macro_f1"], 3), "per_intent": rounded(scores["per_intent"]),
                    "confusions": scores["confusions"],
                    "parse_ms_p50": round(percentile(times, 0.5), 1), "parse_ms_p95": round(percentile(times, 0.95), 1)})
    return out


def train_nlu(config: Path, nlu: Path, out: Path, name: str) -> Path:
    """An NLU-only model (no dialogue): enough to parse messages."""
    result = subprocess.run([str(RASA), "train", "nlu", "--config", str(config), "--nlu", str(nlu),
                             "--out", str(out), "--fixed-model-name", name],
                            cwd=ROOT, env=rasa_environment(), capture_output=True, text=True)
    model = out / f"{name}.tar.gz"
    if result.returncode != 0 or not model.exists():
        raise RuntimeError(f"training {config.name} failed:\n{(result.stderr or result.stdout)[-1500:]}")
    return model


def baseline_model() -> tuple[Path, float | None]:
    """The previous pipeline trained on today's nlu/, cached by a hash of both."""
    digest = hashlib.sha256(BASELINE_CONFIG.read_bytes())
    for path in training_files():
        if path.parent.name == "nlu":
            digest.update(path.read_bytes())
    folder = MODELS / "bench"
    name = f"baseline-{digest.hexdigest()[:16]}"
    model = folder / f"{name}.tar.gz"
    if model.exists():
        return model, None
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("baseline-*"):
        old.unlink()
    started = time.perf_counter()
    train_nlu(BASELINE_CONFIG, ROOT / "nlu", folder, name)
    return model, round(time.perf_counter() - started, 1)


# --- cross-validation ---------------------------------------------------------------------------


def stratified_folds(examples: list[tuple[str, str]], folds: int, seed: int = 7) -> list[list[tuple[str, str]]]:
    """Each intent's examples shuffled and dealt in turn, so every fold holds about 1/folds of each."""
    by_intent: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for example in examples:
        by_intent[example[1]].append(example)
    out: list[list[tuple[str, str]]] = [[] for _ in range(folds)]
    turn = 0
    for intent in sorted(by_intent):
        items = sorted(by_intent[intent])
        random.Random(f"{seed}-{intent}").shuffle(items)
        for item in items:
            out[turn % folds].append(item)
            turn += 1
    return out


def write_nlu_file(path: Path, examples: list[tuple[str, str]]) -> None:
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    path.write_text(yaml.safe_dump({"version": "3.1", "nlu": [
        {"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)} for intent, texts in sorted(by_intent.items())
    ]}, allow_unicode=True, width=1000), encoding="utf-8")


def decide(row: dict, threshold: float, ambiguity: float) -> str:
    """What the FallbackClassifier would answer with these thresholds."""
    ranking = row.get("ranking") or []
    if not ranking:
        return "nlu_fallback"
    first = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    return "nlu_fallback" if first < threshold or first - second < ambiguity else ranking[0][0]


def sweep(rows: list[dict]) -> list[dict]:
    out = []
    for threshold in THRESHOLDS:
        for ambiguity in AMBIGUITIES:
            s = score([(r["intent"], decide(r, threshold, ambiguity)) for r in rows])
            out.append({"threshold": threshold, "ambiguity": ambiguity,
                        "accuracy": round(s["accuracy"], 4), "macro_f1": round(s["macro_f1"], 4)})
    return out


def choose(swept: list[dict]) -> dict:
    best = max(s["accuracy"] for s in swept)
    close = [s for s in swept if s["accuracy"] >= best - TOLERANCE]
    return max(close, key=lambda s: (s["threshold"], s["ambiguity"]))


def configured_thresholds() -> tuple[float, float]:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    fallback = next(c for c in config["pipeline"] if c["name"] == "FallbackClassifier")
    return float(fallback["threshold"]), float(fallback.get("ambiguity_threshold", 0.1))


def cross_validation(folds: int = 5) -> dict:
    """Train on all folds but one, parse the one left out, in turn; pool the parsed rows."""
    examples = sorted({e for path in sorted((ROOT / "nlu").glob("*.yml")) for e in nlu_examples(path)})
    dealt = stratified_folds(examples, folds)
    rows: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        for k in range(folds):
            train_file, test_file = base / f"train-{k}.yml", base / f"test-{k}.yml"
            write_nlu_file(train_file, [e for i, fold in enumerate(dealt) if i != k for e in fold])
            write_nlu_file(test_file, dealt[k])
            try:
                model = train_nlu(ROOT / "config.yml", train_file, base, f"fold-{k}")
            except RuntimeError as error:
                return {"folds": folds, "error": str(error)}
            fold_rows = parse_files([test_file], model)
            for row in fold_rows:
                row["fold"] = k
            rows += fold_rows
    threshold, ambiguity = configured_thresholds()
    pooled = score([(r["intent"], decide(r, threshold, ambiguity)) for r in rows])
    per_fold = [score([(r["intent"], decide(r, threshold, ambiguity)) for r in rows if r["fold"] == k])["accuracy"]
                for k in range(folds)]
    mean = sum(per_fold) / folds
    swept = sweep(rows)
    return {
        "folds": folds, "examples": len(rows), "seconds": round(time.perf_counter() - started, 1),
        "threshold": threshold, "ambiguity_threshold": ambiguity,
        "accuracy": round(pooled["accuracy"], 3), "macro_f1": round(pooled["macro_f1"], 3),
        "accuracy_mean_std_over_folds": [round(mean, 3),
                                         round((sum((a - mean) ** 2 for a in per_fold) / folds) ** 0.5, 3)],
        "per_intent": rounded(pooled["per_intent"]), "confusions": pooled["confusions"],
        "threshold_sweep": swept, "chosen_by_rule": choose(swept),
    }


def run(folds: int = 5) -> dict:
    files = evaluation_files()
    baseline, baseline_training = baseline_model()
    baseline_sets = {s["set"]: s for s in scores_by_file(files, baseline)}
    sets = scores_by_file(files, train_if_needed())
    for s in sets:
        before = baseline_sets.get(s["set"], {})
        s["baseline"] = {k: before.get(k) for k in ("accuracy", "macro_f1", "parse_ms_p50", "parse_ms_p95")}
    return {"benchmark": "nlu", "sets": sets, "baseline_training_seconds": baseline_training,
            "cross_validation": cross_validation(folds) if folds else None}
