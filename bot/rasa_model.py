"""The trained model, cached by a hash of what it is trained from: train only when that changed."""

from __future__ import annotations

import hashlib
import json
import os
import platform
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


def training_files() -> list[Path]:
    files: list[Path] = []
    for name in TRAINING_INPUTS:
        path = ROOT / name
        if path.is_dir():  # the training data, and the code of our own pipeline components
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".py"))
        else:
            files.append(path)
    return files


def training_hash() -> str:
    digest = hashlib.sha256()
    for path in training_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path() -> Path:
    return MODELS / f"{training_hash()}.tar.gz"


def train_if_needed() -> Path:
    """Train unless the model for the current training data already exists. Returns its path."""
    path = model_path()
    if path.exists():
        print(f"Model up to date: {path.relative_to(ROOT)}")
        return path
    MODELS.mkdir(exist_ok=True)
    print(f"Training {path.name} (the training data, domain or config changed)...", flush=True)
    command = [
        str(RASA), "train",
        "--config", "config.yml", "--domain", "domain.yml", "--data", "data", "nlu",
        "--out", str(MODELS), "--fixed-model-name", path.name.removesuffix(".tar.gz"),
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
    keep_only(path)
    return path


def keep_only(model: Path) -> None:
    """Keep the cache small: one model per training state. Folders (models/bench/, the
    benchmark's baseline model) are not ours to clean."""
    for old in model.parent.iterdir():
        if old.is_file() and old not in (model, training_record(model)):
            old.unlink()


def training_record(model: Path) -> Path:
    return model.with_name(model.name.removesuffix(".tar.gz") + ".training.json")


def _processors() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
