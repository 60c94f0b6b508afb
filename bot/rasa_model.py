"""The trained model, cached by a hash of what it is trained from: train only when that changed."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from crm.settings import ROOT

MODELS = ROOT / "models"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
# The encoders' versions (requirements-rasa.txt) change the sentence vectors, so the model too.
TRAINING_INPUTS = ["config.yml", "domain.yml", "data", "nlu", "nlu_components", "requirements-rasa.txt"]


def rasa_environment(extra: dict | None = None) -> dict:
    """The environment of every Rasa process we start: our components (nlu_components/) on the
    path, and Rasa's telemetry off. Rasa 3.6 reports usage and crashes to its own servers unless
    told not to: nothing of a company's conversations leaves the machine."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), **(extra or {})}


def training_files(labelled: Path | None = None) -> list[Path]:
    """What the model is trained from; `labelled`: the managers' labelled examples (crm/review.py),
    a file outside the repository, when there are some."""
    files: list[Path] = []
    for name in TRAINING_INPUTS:
        path = ROOT / name
        if path.is_dir():  # the training data, and the code of our own pipeline components
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".py"))
        else:
            files.append(path)
    if labelled is not None and labelled.is_file():
        files.append(labelled)
    return files


def training_hash(labelled: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in training_files(labelled):
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "labelled examples"
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(labelled: Path | None = None) -> Path:
    return MODELS / f"{training_hash(labelled)}.tar.gz"


def train_if_needed(labelled: Path | None = None, keep: Path | None = None, nice: bool = False) -> Path:
    """Train unless the model for the current training data already exists. Returns its path.
    `labelled`: the managers' labelled examples, added to the repository's data (their model is
    another one; the tests and benchmarks use the repository's data alone). `keep`: a model not
    to remove from models/ (the one Rasa serves); `nice`: train at a low priority (beside a
    running assistant)."""
    labelled = labelled if labelled is not None and labelled.is_file() else None
    path = model_path(labelled)
    if path.exists():
        print(f"Model up to date: {path.relative_to(ROOT)}")
        return path
    MODELS.mkdir(exist_ok=True)
    print(f"Training {path.name} (the training data, domain or config changed)...", flush=True)
    command = [
        *(["nice", "-n", "15"] if nice and shutil.which("nice") else []), str(RASA), "train",
        "--config", "config.yml", "--domain", "domain.yml", "--data", "data", "nlu",
        *([str(labelled)] if labelled else []), "--out", str(MODELS), "--fixed-model-name", path.name.removesuffix(".tar.gz"),
    ]
    # Rasa reuses components trained before (.rasa/cache): a training time then means little.
    cached = any((ROOT / ".rasa" / "cache").glob("*")) if (ROOT / ".rasa" / "cache").is_dir() else False
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=rasa_environment())
    if result.returncode != 0 or not path.exists():
        sys.exit(f"Training failed (exit code {result.returncode}); see the output above.")
    # How long it took, for the benchmarks' cost table (the model is trained once, then cached).
    training_record(path).write_text(json.dumps({
        "model": path.name, "seconds": round(time.perf_counter() - started, 1), "component_cache": cached,
        "machine": platform.platform(), "processors": _processors()}))
    keep_only(path, model_path(), *([keep] if keep else []))
    return path


def keep_only(*models: Path) -> None:
    """Keep the cache small: the model just trained, and the one of the repository's data alone
    (the tests'). Folders (models/bench/, the benchmark's baseline model) are not ours to clean."""
    kept = {p for model in models for p in (model, training_record(model))}
    for old in models[0].parent.iterdir():
        if old.is_file() and old not in kept:
            old.unlink()


def training_record(model: Path) -> Path:
    return model.with_name(model.name.removesuffix(".tar.gz") + ".training.json")


def _processors() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
