"""The company profile (company.yml): policy answers and business rules, editable without
retraining. Re-read whenever the file changes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import yaml

from crm.settings import ROOT

POLICY_TOPICS = ("ask_delivery", "ask_payment", "ask_returns", "ask_contract", "ask_contact",
                 "ask_loyalty", "book_meeting")

_lock = threading.Lock()
_cache: dict[Path, tuple[float, dict]] = {}


class ProfileError(ValueError):
    pass


def profile_path() -> Path:
    return Path(os.environ.get("COMPANY_PROFILE") or ROOT / "company.yml")


def validate(profile: dict) -> dict:
    answers = profile.get("answers") or {}
    missing = [f"{topic}.{lang}" for topic in POLICY_TOPICS for lang in ("fr", "en")
               if not isinstance((answers.get(topic) or {}).get(lang), str)]
    if missing:
        raise ProfileError(f"company profile: missing answers {', '.join(missing)}")
    return profile


def company_profile() -> dict:
    path = profile_path()
    mtime = path.stat().st_mtime
    with _lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
    with path.open(encoding="utf-8") as f:
        profile = validate(yaml.safe_load(f) or {})
    with _lock:
        _cache[path] = (mtime, profile)
    return profile


def policy_answer(topic: str, language: str) -> str:
    return company_profile()["answers"][topic]["en" if language == "en" else "fr"]
