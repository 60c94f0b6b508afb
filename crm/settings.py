"""Settings shared by every process: read from the environment, or a `.env` file when present."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


class SettingError(ValueError):
    """A setting has a wrong value; the message names the setting."""


def load_env() -> None:
    """Read `.env` at the repository root; the real environment wins over the file."""
    load_dotenv(ROOT / ".env", override=False)


def database_url() -> str:
    load_env()
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        VAR.mkdir(exist_ok=True)
        return f"sqlite:///{VAR / 'crm.db'}"
    if not url.startswith(("sqlite", "postgresql")):
        raise SettingError(
            f"DATABASE_URL must start with sqlite:// or postgresql:// (got {url.split(':', 1)[0]!r})"
        )
    return url


def staff_chat() -> tuple[int, str] | None:
    """The staff forum supergroup (STAFF_CHAT_ID) and the language of its messages
    (STAFF_CHAT_LANGUAGE), or None: then managers are notified in their private chats."""
    load_env()
    value = os.environ.get("STAFF_CHAT_ID", "").strip()
    if not value:
        return None
    if not value.startswith("-100") or not value[1:].isdigit():
        raise SettingError(f"STAFF_CHAT_ID must be a supergroup id such as -1001234567890 (got {value!r})")
    language = os.environ.get("STAFF_CHAT_LANGUAGE", "fr").strip() or "fr"
    if language not in ("fr", "en"):
        raise SettingError(f"STAFF_CHAT_LANGUAGE must be fr or en (got {language!r})")
    return int(value), language
